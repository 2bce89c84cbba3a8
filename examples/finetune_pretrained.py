"""Fine-tune pretrained weights on your own classes.

    python examples/finetune_pretrained.py --pretrained ccii-depth4 --data MY_DATA

``--pretrained`` is anything ``resnet3d.from_pretrained`` accepts: a weights alias, a Hub repo
id or an export folder (``resnet3d export``). The classes are the data set's; when their number
differs from the weights', the classifier is re-initialised (logged); everything else starts
from the weights. The volume builder
(depth, slice size, channels, window) is taken from the weights' preprocessing spec, so your
scans are prepared exactly as the pretraining data was.

``--tiny`` makes its own small two-class "pretrained" export first (no weights are published
yet), then fine-tunes it on the three-class phantom, so the head is re-initialised (what CI
runs); everything is written to a temporary folder that it removes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import resnet3d
from resnet3d.engine.device import PRECISIONS
from resnet3d.engine.malloc import tune_malloc
from resnet3d.engine.runtime import resolve_runtime
from resnet3d.engine.train import TrainConfig, TrainResult
from resnet3d.workflows import fit_from_folder, stacker_for


def make_tiny_base(work: Path) -> tuple[str, Path]:
    """A 9-patient phantom and a small untrained two-class export to start from."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny import tiny_dataset

    data = tiny_dataset(work / "data")
    base = resnet3d.create_model("resnet10", num_classes=2)
    base.save_pretrained(
        work / "base",
        preprocessing=resnet3d.SliceStacker(depth=4, size=32).to_dict(),
        labels=["CP", "Normal"],
    )
    return str(work / "base"), data


def finetune(args: argparse.Namespace, tiny: bool) -> TrainResult:
    """Fine-tune as ``args`` say."""
    pretrained = resnet3d.from_pretrained(args.pretrained)
    stacker = stacker_for(pretrained)
    config = TrainConfig(
        out_dir=str(args.out),
        pretrained=args.pretrained,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        progress=not tiny,
    )
    print(resolve_runtime(config.device, config.precision, config.channels_last).describe())
    fractions = (0.34, 0.33, 0.33) if tiny else (0.7, 0.15, 0.15)
    return fit_from_folder(args.data, config, stacker, fractions=fractions)


def main() -> int:
    tune_malloc()  # CPU training reuses freed memory (as the resnet3d command does)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", help="alias, Hub repo id or export folder")
    parser.add_argument("--data", type=Path, help="data set root")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4, help="lower than from scratch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", help="cuda or cpu (default: CUDA if present)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="(default auto)")
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on phantom data")
    args = parser.parse_args()

    if args.tiny:
        with tempfile.TemporaryDirectory(prefix="resnet3d-finetune-") as work:
            args.pretrained, args.data = make_tiny_base(Path(work))
            args.out, args.epochs, args.batch_size = Path(work) / "run", 1, 4
            result = finetune(args, tiny=True)
        print(f"fine-tuned for {len(result.history)} epochs (smoke run; its folder is removed)")
        return 0
    if args.pretrained is None or args.data is None:
        parser.error("--pretrained and --data are required (or --tiny)")
    result = finetune(args, tiny=False)
    kept = result.best_checkpoint or result.last_checkpoint
    print(f"fine-tuned for {len(result.history)} epochs: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
