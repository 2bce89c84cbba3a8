"""From a scan folder to class probabilities in a few lines.

    python examples/predict_scan.py SCAN_DIR --pretrained ccii-depth4

``--tiny`` predicts a synthetic phantom scan with a freshly initialised export (so the
probabilities mean nothing; it shows the calls and runs in CI).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import resnet3d
from resnet3d.workflows import predict_scans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scan", nargs="?", type=Path, help="folder of slices")
    parser.add_argument("--pretrained", default="ccii-depth4")
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args()
    if args.tiny:
        work = Path(tempfile.mkdtemp(prefix="resnet3d-predict-"))
        scan = resnet3d.phantom.generate_scan("NCP", seed=0, n_slices=8, size=32)
        args.scan = work / "scan"
        args.scan.mkdir()
        from PIL import Image

        for i, image in enumerate(scan.slices):
            Image.fromarray(image).save(args.scan / f"{i:04d}.png")
        model = resnet3d.create_model("resnet10")
        model.save_pretrained(
            work / "model",
            preprocessing=resnet3d.SliceStacker(depth=4, size=32).to_dict(),
            labels=["NCP", "CP", "Normal"],
        )
        args.pretrained = str(work / "model")
    if args.scan is None:
        parser.error("SCAN_DIR is required (or --tiny)")

    # The three lines that matter:
    model = resnet3d.from_pretrained(args.pretrained)  # weights + preprocessing spec
    (result,) = predict_scans(model, [args.scan])  # volumes -> mean probabilities
    print(result.label, {k: round(float(v), 4) for k, v in zip(result.labels, result.probs)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
