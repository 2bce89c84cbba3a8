"""The paper's full training on CC-CCII, on one CUDA GPU (or a smoke run with ``--tiny``).

Data preparation (once):

1. Download CC-CCII (China Consortium of Chest CT Image Investigation) and unzip it so that
   the layout is ``ROOT/{NCP,CP,Normal}/<patient>/<scan>/<slices>.png|jpg`` with
   ``ROOT/unzip_filenames.csv`` beside the class folders.
2. Check it: ``resnet3d index ROOT`` prints per-class patient/scan/slice counts and what is
   wrong (empty scans, count mismatches, patients under two classes).
3. Optional but recommended on a fast GPU: decode every slice once into a uint8 cache,
   ``resnet3d build-volumes ROOT CACHE --size 512`` (PNG decoding cannot feed an H100).

Training (the paper's recipe: ResNet-18, depth 4, 512 x 512, batch 32, Adam 1e-3, x0.1 every
10 epochs, 20 epochs, patient-level 70/15/15 split)::

    python examples/train_ccii.py --data ROOT --out runs/ccii-depth4 [--cache CACHE]

which runs ``resnet3d train`` and then ``resnet3d evaluate`` on the test patients.

Time per epoch (computed, not measured): the paper's split has about 20,450 training volumes
of depth 4 (81,796 slices / 4). ResNet-18 costs 270 GFLOP per volume for forward and backward
at 3 x 4 x 512 x 512, so one epoch is 5.5 PFLOP: about 14 s of compute on an H100 at 40 % of
its 989 TFLOP/s dense bf16 peak, if the data pipeline keeps up (it needs ~5,900 slices/s for
that rate: use the uint8 cache). Measured numbers, when a GPU run has produced them, are in
docs/performance.md.

The sweeps of the paper (Tables 5 to 7) are loops over this script:

- depth (Table 5, batch 8): ``--depth 2|4|8|16|32|64 --batch-size 8``
- batch size (Table 6): ``--depth 2|4|8|16 --batch-size 32|64``
- models (Table 7, depth 4, batch 32): ``--model resnet18|resnet18_2plus1d|resnet34|
  resnet34_2plus1d|resnet50``

``--tiny`` trains for one epoch on a 9-patient synthetic phantom on the CPU (what CI runs), in
a temporary folder that it removes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from resnet3d.cli import main as resnet3d


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="CC-CCII root")
    parser.add_argument("--out", type=Path, default=Path("runs/ccii-depth4"))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=None, help="uint8 volume cache folder")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run on phantom data")
    return parser.parse_args()


def main() -> int:
    args = parse()
    if args.tiny:
        from _tiny import tiny_dataset

        with tempfile.TemporaryDirectory(prefix="resnet3d-tiny-") as work:
            args.data = tiny_dataset(Path(work) / "data")
            args.out = Path(work) / "run"
            args.model, args.epochs, args.batch_size = "resnet10", 1, 4
            extra = ["--fractions", "0.34", "0.33", "0.33", "--no-progress"]
            code = train_and_evaluate(args, size=32, extra=extra)
        print(f"smoke run finished with status {code}; its temporary folder is removed")
        return code
    if args.data is None:
        print("--data ROOT is required (or --tiny)", file=sys.stderr)
        return 2
    return train_and_evaluate(args, size=512, extra=[])


def train_and_evaluate(args: argparse.Namespace, size: int, extra: list[str]) -> int:
    """``resnet3d train`` (each command prints its device and precision), then ``evaluate``."""
    train = [
        "train",
        "--data",
        str(args.data),
        "--out-dir",
        str(args.out),
        "--model",
        args.model,
        "--depth",
        str(args.depth),
        "--size",
        str(size),
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(args.epochs),
        "--resume",
        "auto",
        "--precision",
        args.precision,
        *extra,
    ]
    if args.cache is not None:
        train += ["--cache", str(args.cache)]
    if args.compile:
        train.append("--compile")
    code = resnet3d(train)
    if code:
        return code
    return resnet3d(
        [
            "evaluate",
            "--checkpoint",
            str(args.out / "best.pt"),
            "--data",
            str(args.data),
            "--split",
            "test",
            "--out",
            str(args.out / "eval-test"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
