"""``resnet3d train``: train a model on a folder of scans with the paper's recipe."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..constants import CHANNELS_LAST_CHOICES
from ._common import (
    add_device_and_precision,
    add_layout_option,
    add_stacker_args,
    announce_runtime,
    is_main_process,
    stacker_kwargs,
)

if TYPE_CHECKING:
    from ..engine.train import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a folder of scans (the paper's recipe by default)",
        description="Train a 3D ResNet on CT scans stacked into volumes. Defaults are the "
        "paper's recipe: resnet18, depth 4, 512 x 512 slices, batch 32, Adam at 1e-3, "
        "learning rate x0.1 every 10 epochs, 20 epochs, a 70/15/15 patient-level split "
        "(saved as OUT/split.json). Checkpoints OUT/last.pt and OUT/best.pt are written "
        "atomically after every epoch; --resume auto continues a stopped run exactly. "
        "Runs on CUDA when present (bf16 autocast, channels_last_3d); under torchrun on "
        "several GPUs or machines with DistributedDataParallel. Video data sets (a "
        "class/<video> tree such as UCF101's, or a path,label[,group] CSV) train on clips of "
        "--depth frames, split by group (UCF101's gNN) as CT is split by patient.",
    )
    parser.add_argument("--data", required=True, type=Path, help="data set root (or CSV)")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="run folder (default runs/MODEL-dDEPTH)"
    )
    add_training_options(parser)
    parser.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="continue a run: 'auto' (OUT/last.pt) or a checkpoint path; every setting "
        "must be the run's except --epochs (more), --patience, --device, --workers, "
        "--channels-last, --compile, --no-progress and --out-dir's spelling",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Every option of ``resnet3d train`` but ``--data``, ``--out-dir``, ``--resume`` and
    ``--no-progress``: the recipe, the volumes and the hardware (``resnet3d sweep`` has them
    too)."""
    add_layout_option(parser)
    parser.add_argument("--model", default="resnet18", help="model name (resnet3d models)")
    parser.add_argument(
        "--pretrained",
        default=None,
        metavar="NAME",
        help="start from pretrained weights (alias, Hub repo or export folder); the head is "
        "re-initialised when the class count differs, reordered when it names the data's "
        "classes in another order, and an error when it names other classes (see --new-head)",
    )
    parser.add_argument(
        "--new-head",
        action="store_true",
        help="with --pretrained: re-initialise the classifier for the data's classes even "
        "when the pretrained head has as many outputs",
    )
    add_stacker_args(parser)
    group = parser.add_argument_group("recipe")
    group.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    group.add_argument("--batch-size", type=int, default=32, help="per process (default 32)")
    group.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    group.add_argument("--lr-step", type=int, default=10, help="epochs per decay (default 10)")
    group.add_argument("--lr-gamma", type=float, default=0.1, help="decay factor (default 0.1)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="(default 0)")
    group.add_argument("--dropout", type=float, default=None, help="dropout before the head")
    group.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step")
    group.add_argument("--seed", type=int, default=0, help="initialisation and data order seed")
    group.add_argument("--split-seed", type=int, default=0, help="patient split seed")
    group.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VALID", "TEST"),
        help="patient shares per class",
    )
    group.add_argument(
        "--monitor",
        choices=("accuracy", "macro_f1", "auroc", "loss"),
        default="accuracy",
        help="validation metric that picks best.pt",
    )
    group.add_argument("--patience", type=int, default=None, help="early stopping patience")
    group.add_argument(
        "--precise-bn",
        type=int,
        default=0,
        metavar="BATCHES",
        help="recompute BatchNorm statistics over this many training batches "
        "before each validation (default 0: off, the paper's recipe)",
    )
    parser.add_argument(
        "--augment",
        default="none",
        metavar="SPEC",
        help="random changes to training batches: 'flip' (left-right), 'shift' (in-plane, "
        "up to 1/16 of the size; 'shift=0.1' for more), comma-separated, or 'none' "
        "(default, the paper's recipe)",
    )
    parser.add_argument(
        "--clip-sampling",
        choices=("uniform", "random"),
        default="uniform",
        help="which --depth frames each training sample takes: 'uniform' (default: the same "
        "clips every epoch) or 'random' (new clip starts every epoch, each in its own segment "
        "of the video, repeated exactly on --resume); validation and test stay uniform",
    )
    group = parser.add_argument_group("hardware")
    add_device_and_precision(group, precision="auto", use="training")
    group.add_argument(
        "--channels-last",
        choices=CHANNELS_LAST_CHOICES,
        default="auto",
        help="channels_last_3d memory layout (default auto: on CUDA, and on CPU with bf16)",
    )
    group.add_argument("--compile", action="store_true", help="use torch.compile")
    group.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across GPUs")
    group.add_argument("--workers", type=int, default=None, help="DataLoader workers per process")
    group.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="volume cache from 'resnet3d build-volumes' (no decoding)",
    )


def run(args: argparse.Namespace) -> int:
    from ..data.volumes import SliceStacker
    from ..engine.distributed import destroy_distributed
    from ..workflows import fit_from_folder

    out_dir = args.out_dir or Path("runs") / f"{args.model}-d{args.depth}"
    config = train_config(args, out_dir)
    stacker = SliceStacker(**stacker_kwargs(args))
    announce_runtime(args.device, args.precision, args.channels_last)
    try:
        result = fit_from_folder(
            args.data,
            config,
            stacker,
            layout=args.layout,
            fractions=tuple(args.fractions),
            split_seed=args.split_seed,
            resume=args.resume,
            cache=args.cache,
        )
    except BaseException:
        destroy_distributed(wait=False)
        raise
    destroy_distributed()
    # From the environment: the process group is gone by now, and DistInfo() is rank 0.
    if is_main_process() and result.history:
        last = result.history[-1]
        print(f"trained {args.model} for {last.epoch} epochs in {out_dir}")
        print(f"  last: {result.last_checkpoint}")
        if result.best_checkpoint is not None:
            if math.isnan(last.val_loss) and result.best_metric is not None:  # no validation
                how = f"no validation set: lowest train loss {-result.best_metric:.4f}"
            else:
                how = f"val {args.monitor} {result.best_metric:.4f}"
            print(f"  best: {result.best_checkpoint} ({how})")
        print(f"  log:  {out_dir / 'log.csv'}   split: {out_dir / 'split.json'}")
    return 0


def train_config(args: argparse.Namespace, out_dir: Path) -> TrainConfig:
    """The :class:`~resnet3d.engine.train.TrainConfig` that the options of
    :func:`add_training_options` (and ``--no-progress``, if the command has it) describe."""
    from ..engine.train import TrainConfig

    overrides = {} if args.dropout is None else {"dropout": args.dropout}
    return TrainConfig(
        out_dir=str(out_dir),
        model=args.model,
        model_overrides=overrides,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_step=args.lr_step,
        lr_gamma=args.lr_gamma,
        weight_decay=args.weight_decay,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        grad_accum=args.grad_accum,
        workers=args.workers,
        seed=args.seed,
        monitor=args.monitor,
        patience=args.patience,
        sync_bn=args.sync_bn,
        device=args.device,
        progress=not getattr(args, "no_progress", False),
        pretrained=args.pretrained,
        precise_bn=args.precise_bn,
        augment=args.augment,
        new_head=args.new_head,
        clip_sampling=args.clip_sampling,
    )
