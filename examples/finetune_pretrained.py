"""Fine-tune pretrained weights on your own classes.

    python examples/finetune_pretrained.py --pretrained ccii-depth4 --data MY_DATA --classes 2

``--pretrained`` is anything ``resnet3d.from_pretrained`` accepts: a weights alias, a Hub repo
id or an export folder (``resnet3d export``). The classifier is re-initialised for the new
number of classes (logged); everything else starts from the weights. The volume builder
(depth, slice size, channels, window) is taken from the weights' preprocessing spec, so your
scans are prepared exactly as the pretraining data was.

``--tiny`` makes its own small two-class "pretrained" export first (no weights are published
yet), then fine-tunes it on the three-class phantom, so the head is re-initialised (what CI
runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import resnet3d
from resnet3d.train import TrainConfig
from resnet3d.workflows import fit_from_folder, stacker_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrained", help="alias, Hub repo id or export folder")
    parser.add_argument("--data", type=Path, help="data set root")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-4, help="lower than from scratch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on phantom data")
    args = parser.parse_args()

    if args.tiny:
        sys.path.insert(0, str(Path(__file__).parent))
        from _tiny import tiny_dataset

        work = Path(tempfile.mkdtemp(prefix="resnet3d-finetune-"))
        data = tiny_dataset(work / "data")
        base = resnet3d.create_model("resnet10", num_classes=3)
        base.save_pretrained(
            work / "base",
            preprocessing=resnet3d.SliceStacker(depth=4, size=32).to_dict(),
            labels=["NCP", "CP", "Normal"],
        )
        # Two classes: a tree layout with only the CP and Normal folders.
        args.pretrained, args.data, args.out = str(work / "base"), data, work / "run"
        args.epochs, args.batch_size = 1, 4
    if args.pretrained is None or args.data is None:
        parser.error("--pretrained and --data are required (or --tiny)")

    pretrained = resnet3d.from_pretrained(args.pretrained)
    stacker = stacker_for(pretrained)
    config = TrainConfig(
        out_dir=str(args.out),
        pretrained=args.pretrained,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        progress=not args.tiny,
    )
    fractions = (0.34, 0.33, 0.33) if args.tiny else (0.7, 0.15, 0.15)
    result = fit_from_folder(args.data, config, stacker, fractions=fractions)
    print(f"fine-tuned for {len(result.history)} epochs: {result.best_checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
