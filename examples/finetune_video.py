"""Train a 3D ResNet on videos, from torchvision's Kinetics weights or from scratch.

    python examples/finetune_video.py --data UCF101 --weights r3d_18.pth
    python examples/finetune_video.py --data UCF101             # from scratch

``--data`` is a class-folder tree of video files (``ROOT/<class>/<video>.mp4``, UCF101 or
HMDB51 as downloaded) or a ``path,label[,group]`` CSV. Videos are split by group (UCF101's
``gNN`` in ``v_<Action>_gNN_cMM``, else each video its own) so that clips cut from one
recording never sit on both sides; every video gives consecutive clips of ``--depth`` frames.

``--weights`` is a torchvision ``r3d_18`` or ``r2plus1d_18`` state dict (e.g.
``torch.save(torchvision.models.video.r3d_18(weights="DEFAULT").state_dict(), "r3d_18.pth")``):
it is converted to resnet3d's layout (``resnet3d.models.convert.from_torchvision``, outputs equal to
torchvision's), saved as a local export, and fine-tuned with a new head for your classes.
Without it, ``--model`` is trained from scratch.

The test split is then evaluated per clip, per video (mean of its clips' probabilities) and
per group.

``--tiny`` writes the synthetic moving-squares set (``resnet3d.data.synthetic_video``: the class is
the direction of motion, which no single frame shows; 12 videos per class, 16 frames of
32 x 32) to a temporary folder, trains on it on the CPU (resnet10 from scratch for 8 epochs on
clips of 8 frames, unless ``--weights`` or ``--model`` is given) and prints the test
accuracies next to chance (0.25); the folder is removed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import resnet3d
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.engine.device import PRECISIONS
from resnet3d.engine.malloc import tune_malloc
from resnet3d.engine.runtime import resolve_runtime
from resnet3d.engine.train import TrainConfig
from resnet3d.workflows import (
    Evaluation,
    evaluate_model,
    fit_from_folder,
    load_or_make_split,
    model_from_checkpoint,
)


def convert_weights(weights: Path, out: Path) -> str:
    """torchvision video weights converted and saved as an export folder to start from."""
    from resnet3d.models.convert import from_torchvision

    model, report = from_torchvision(weights)
    print(f"converted {weights}: {report}")
    model.save_pretrained(
        out, preprocessing=dict((model.pretrained_cfg or {}).get("preprocessing") or {})
    )
    return str(out)


def volume_builder(args: argparse.Namespace, pretrained: str | None) -> resnet3d.SliceStacker:
    """Clips as the weights expect them (their preset), with ``--depth``/``--size`` if given.

    ``--size`` replaces the preset's resize and centre crop by a plain square resize (the
    tiny mode's 32 x 32 frames are smaller than the 112 x 112 crop).
    """
    if pretrained is not None:
        spec = dict(
            (resnet3d.from_pretrained(pretrained).pretrained_cfg or {}).get("preprocessing") or {}
        )
        if spec:
            overrides: dict[str, Any] = {"channels": 3}
            if args.depth is not None:
                overrides["depth"] = args.depth
            if args.size is not None:
                spec.pop("crop", None)
                overrides["size"] = (args.size, args.size)
            return resnet3d.SliceStacker.from_dict(spec, **overrides)
    return resnet3d.SliceStacker(
        depth=args.depth or 16, size=args.size or 112, channels=3, remainder="overlap"
    )


def train_and_evaluate(args: argparse.Namespace, pretrained: str | None) -> Evaluation:
    """Train as ``args`` say, then evaluate the best checkpoint on the test split."""
    stacker = volume_builder(args, pretrained)
    config = TrainConfig(
        out_dir=str(args.out),
        model=args.model,
        pretrained=pretrained,
        epochs=args.epochs,
        lr=args.lr,
        lr_step=max(1, args.epochs),  # constant learning rate
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        workers=args.workers,
        progress=not args.tiny,
    )
    print(resolve_runtime(config.device, config.precision, config.channels_last).describe())
    result = fit_from_folder(
        args.data, config, stacker, fractions=tuple(args.fractions), split_seed=args.split_seed
    )
    model = model_from_checkpoint(result.best_checkpoint or result.last_checkpoint)
    index = ScanIndex.from_path(args.data)
    split = load_or_make_split(index, args.out, tuple(args.fractions), args.split_seed)
    return evaluate_model(
        model,
        VolumeDataset(split.test, stacker),
        plots=False,
        device=args.device,
        workers=args.workers,
        split="test",
    )


def main() -> int:
    tune_malloc()  # CPU training reuses freed memory (as the resnet3d command does)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="class/<video> tree or path,label CSV")
    parser.add_argument("--weights", type=Path, help="torchvision r3d_18/r2plus1d_18 state dict")
    parser.add_argument("--model", default="resnet18", help="model without --weights")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-video"))
    parser.add_argument("--depth", type=int, default=None, help="frames per clip (default 16)")
    parser.add_argument("--size", type=int, default=None, help="frame size (default 112)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None, help="default 1e-4 (weights), 1e-3")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--fractions", type=float, nargs=3, default=(0.7, 0.15, 0.15), help="of the groups"
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--device", help="cuda or cpu (default: CUDA if present)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="(default auto)")
    parser.add_argument("--tiny", action="store_true", help="CPU run on synthetic videos")
    args = parser.parse_args()
    if args.lr is None:
        args.lr = 1e-4 if args.weights is not None else 1e-3

    if args.tiny:
        from resnet3d.data.synthetic_video import write_video_dataset

        with tempfile.TemporaryDirectory(prefix="resnet3d-video-") as work:
            # Every video its own look (groups=videos): with few looks per class a model can
            # learn the colours of the training groups instead of the motion.
            args.data = write_video_dataset(
                Path(work) / "videos", videos_per_class=12, groups=12, frames=16, size=32
            )
            pretrained = None
            if args.weights is not None:
                pretrained = convert_weights(args.weights, Path(work) / "base")
            args.out, args.device, args.workers = Path(work) / "run", "cpu", 0
            args.depth, args.size = args.depth or 8, args.size or 32
            args.epochs, args.batch_size = 8, 8
            if args.precision == "auto":
                args.precision = "fp32"  # bf16 on a CPU is slower, and less exact
            args.fractions = (0.5, 0.25, 0.25)
            if args.weights is None and args.model == parser.get_default("model"):
                args.model = "resnet10"  # the smallest: about 2 minutes on two CPU cores
            evaluation = train_and_evaluate(args, pretrained)
        print(evaluation.summary())
        print("chance: 0.25 (4 classes); the run's folder is removed")
        return 0
    if args.data is None:
        parser.error("--data is required (or --tiny)")
    pretrained = None
    if args.weights is not None:
        pretrained = convert_weights(args.weights, args.out / "converted")
    evaluation = train_and_evaluate(args, pretrained)
    print(evaluation.summary())
    print(f"run folder: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
