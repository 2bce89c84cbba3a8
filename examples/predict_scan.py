"""From a scan folder to class probabilities in a few lines.

    python examples/predict_scan.py SCAN_DIR --pretrained ccii-depth4

``--tiny`` predicts a synthetic phantom scan with a freshly initialised export (so the
probabilities mean nothing; it shows the calls and runs in CI), in a temporary folder that
it removes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import resnet3d
from resnet3d.engine.device import PRECISIONS
from resnet3d.engine.runtime import resolve_runtime
from resnet3d.workflows import predict_scans


def write_tiny_inputs(work: Path) -> tuple[Path, str]:
    """A phantom scan folder of 8 PNG slices and an untrained export in ``work``."""
    from PIL import Image

    scan = resnet3d.data.phantom.generate_scan("NCP", seed=0, n_slices=8, size=32)
    folder = work / "scan"
    folder.mkdir()
    for i, image in enumerate(scan.slices):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    model = resnet3d.create_model("resnet10")
    model.save_pretrained(
        work / "model",
        preprocessing=resnet3d.SliceStacker(depth=4, size=32).to_dict(),
        labels=["NCP", "CP", "Normal"],
    )
    return folder, str(work / "model")


def predict(scan: Path, pretrained: str, device: str | None, precision: str) -> None:
    print(resolve_runtime(device, precision).describe())
    # The three lines that matter:
    model = resnet3d.from_pretrained(pretrained)  # weights + preprocessing spec
    (result,) = predict_scans(model, [scan], device=device, precision=precision)
    print(result.label, {k: round(float(v), 4) for k, v in zip(result.labels, result.probs)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scan", nargs="?", type=Path, help="folder of slices")
    parser.add_argument("--pretrained", default="ccii-depth4")
    parser.add_argument("--device", help="cuda or cpu (default: CUDA if present)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="(default fp32)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on a phantom scan")
    args = parser.parse_args()
    if args.tiny:
        with tempfile.TemporaryDirectory(prefix="resnet3d-predict-") as work:
            scan, pretrained = write_tiny_inputs(Path(work))
            predict(scan, pretrained, args.device, args.precision)
        return 0
    if args.scan is None:
        parser.error("SCAN_DIR is required (or --tiny)")
    predict(args.scan, args.pretrained, args.device, args.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
