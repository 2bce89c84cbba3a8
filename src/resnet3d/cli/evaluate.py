"""``resnet3d evaluate``: metrics at volume, scan and patient level, with plots and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import CLIError
from ._common import (
    add_device_and_precision,
    add_layout_option,
    add_model_source,
    add_stacker_args,
    announce_runtime,
    load_model,
    require_plots,
    stacker_kwargs,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a model on a data set split: volume, scan and patient level",
        description="Evaluate a checkpoint or pretrained model. With --checkpoint the run's "
        "patient split (split.json next to it) selects --split; with --pretrained, "
        "--split-file gives a split or the whole data set is used. The data's classes are "
        "matched to the model's by name (any --layout scores the same; a class the model "
        "does not know is an error). Writes evaluation.json "
        "and confusion-matrix and ROC plots (PNG) per level to --out. A data set of video "
        "files (class/<video> tree or path,label[,group] CSV) is evaluated per clip, video and "
        "group (UCF101's gNN).",
    )
    add_model_source(parser)
    parser.add_argument("--data", required=True, type=Path, help="data set root (or CSV)")
    add_layout_option(parser)
    parser.add_argument(
        "--split",
        choices=("train", "valid", "test", "all"),
        default="test",
        help="which patients to evaluate (default test)",
    )
    parser.add_argument(
        "--split-file",
        type=Path,
        default=None,
        help="split.json (default: the one next to --checkpoint)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for evaluation.json and plots (default: next to the model)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    add_device_and_precision(parser, precision="fp32", use="inference")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="volume cache folder")
    parser.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (they need matplotlib)"
    )
    parser.add_argument(
        "--ci", action="store_true", help="bootstrap 95%% intervals (resampling patients)"
    )
    add_stacker_args(parser, defaults=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.dataset import VolumeDataset
    from ..data.index import ScanIndex
    from ..data.split import Split
    from ..workflows import align_to_model, evaluate_model, model_class_names, stacker_for

    if not args.no_plots:
        require_plots()
    model = load_model(args)
    stacker = stacker_for(model, **stacker_kwargs(args))
    index = ScanIndex.from_path(args.data, args.layout)
    if model_class_names(model) is not None:
        # By class name: any layout's class order gives the model's (and its split's).
        index = align_to_model(index, model)
    split_file = args.split_file
    if split_file is None and args.checkpoint is not None:
        split_file = args.checkpoint.parent / "split.json"
    if args.split == "all":
        subset = index
    else:
        if split_file is None or not split_file.exists():
            raise CLIError(
                f"--split {args.split} needs a patient split: pass --split-file or "
                "--split all" + (f" ({split_file} does not exist)" if split_file else "")
            )
        subset = Split.from_json(split_file, index)[args.split]
    dataset = VolumeDataset(subset, stacker, cache=args.cache)
    out = args.out
    if out is None:
        base = args.checkpoint.parent if args.checkpoint is not None else Path(".")
        out = base / f"eval-{args.split}"
    announce_runtime(args.device, args.precision)
    evaluation = evaluate_model(
        model,
        dataset,
        out_dir=out,
        plots=not args.no_plots,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        workers=args.workers,
        ci=args.ci,
        split=args.split,
    )
    names = evaluation.level_names
    print(
        f"evaluated {len(dataset)} {names['volume']}s of {len(subset)} {names['scan']}s "
        f"({args.split} split)"
    )
    print(evaluation.summary())
    print()
    print(evaluation.reports["patient"].to_markdown())
    print(f"wrote {', '.join(str(p) for p in evaluation.files)}")
    return 0
