"""``resnet3d sweep``: a grid of training runs on one split, restartable, with a results table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import CLIError
from ._common import announce_runtime, stacker_kwargs
from .train import add_training_options, train_config

PAPER_CHOICES = ("depth", "batch", "models", "all")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train and evaluate a grid of runs on one patient split (the paper's with --paper)",
        description="Train and evaluate every cell of a grid of settings on one data set and "
        "one patient split (made once in OUT/split.json, or --split FILE), each cell in "
        "OUT/runs/<name> with its checkpoints, log and test-set evaluation, then tabulate "
        "the results. A grid is FIELD=V1,V2,... words (--grid depth=2,4,8 batch_size=8): "
        "every combination is one run; several --grid options add their cells; --paper "
        "adds the paper's runs (depth: slices per volume 2-64 at batch 8; batch: depth and "
        "batch size together; models: five architectures at depth 4, batch 32; all: their "
        "16 distinct runs). Fields are those of TrainConfig and SliceStacker (model, "
        "epochs, batch_size, lr, precision, depth, size, window, remainder...) and dropout; "
        "every other option below applies to every cell. A rerun skips finished cells and "
        "resumes the others exactly from last.pt; a cell's folder name ends with a hash of "
        "all its settings, so other settings never share a folder. --tiny runs a "
        "seconds-long sweep on a phantom data set (its options left at their defaults take "
        "the tiny values).",
    )
    parser.add_argument("--data", type=Path, default=None, help="data set root (or CSV)")
    parser.add_argument("--out", type=Path, required=True, help="the sweep's folder")
    group = parser.add_argument_group("sweep")
    group.add_argument(
        "--grid",
        action="append",
        nargs="+",
        default=[],
        metavar="FIELD=VALUES",
        help="fields and comma-separated values, e.g. depth=2,4,8 batch_size=8 (repeatable; "
        "size=64x64, window=lung or CENTER:WIDTH, augment=flip+shift, none for optional "
        "fields)",
    )
    group.add_argument(
        "--paper",
        action="append",
        choices=PAPER_CHOICES,
        default=[],
        help="add the paper's runs: depth, batch, models or all (repeatable)",
    )
    group.add_argument(
        "--split",
        type=Path,
        default=None,
        metavar="FILE",
        help="use this patient split (a split.json) instead of making one",
    )
    group.add_argument(
        "--devices",
        default=None,
        metavar="LIST",
        help="run cells in parallel, one per GPU (0,1,2,3), or per group of --nproc GPUs; "
        "'cpu,cpu' runs two CPU cells side by side (default: one cell at a time)",
    )
    group.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="processes per cell, with torchrun (DDP); each takes --batch-size (default 1)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="print the cells, their folders and what is done; run nothing",
    )
    group.add_argument(
        "--tiny",
        action="store_true",
        help="a smoke test: phantom data in OUT/data, depth=2,4, resnet10, 32 px, batch 2, "
        "one epoch, fp32, no loader workers",
    )
    add_training_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.volumes import SliceStacker
    from ..sweep import runner

    if args.tiny:
        if args.data is not None or args.paper:
            raise CLIError("--tiny writes its own data set and grid: leave out --data and --paper")
        _tiny_defaults(args)
    elif args.data is None and not args.dry_run:
        raise CLIError("--data is required (or --tiny for a smoke test on a phantom)")
    config = train_config(args, args.out)
    stacker = SliceStacker(**stacker_kwargs(args))
    devices = None if args.devices is None else args.devices.split(",")
    options: dict[str, Any] = {
        "grids": args.grid,
        "paper": args.paper,
        "config": config,
        "stacker": stacker,
        "layout": args.layout,
        "fractions": tuple(args.fractions),
        "split_seed": args.split_seed,
        "split_file": args.split,
        "cache": args.cache,
        "devices": devices,
        "nproc": args.nproc,
        "dry_run": args.dry_run,
        "on_event": _print_event,
    }
    if devices is None:
        announce_runtime(args.device, args.precision, args.channels_last)
    if args.dry_run:
        print(f"dry run: the plan of {args.out} (nothing is run)", flush=True)
    if args.tiny:
        options["grids"] = args.grid or None
        result = runner.tiny_sweep(args.out, **options)
    else:
        result = runner.sweep(args.data, args.out, **options)
    done, failed = result.names("done"), result.failed
    left = len(result.cells) - len(done)
    if args.dry_run:
        print(f"{len(result.cells)} cells: {len(done)} done, {left} to run")
        return 0
    print(f"{len(done)} of {len(result.cells)} cells done in {args.out}")
    for path in _paths(result.report):
        print(f"  {path}")
    if failed:
        raise CLIError(
            f"{len(failed)} cell(s) failed (their cell.json and cell.log say why, e.g. "
            f"{args.out / runner.RUNS_DIR / failed[0] / runner.LOG_FILE}); rerun to retry them"
        )
    return 0


def _tiny_defaults(args: argparse.Namespace) -> None:
    """Give the options left at ``resnet3d train``'s defaults the tiny sweep's values."""
    from ..sweep import runner

    scratch = argparse.ArgumentParser(add_help=False)
    add_training_options(scratch)
    defaults = scratch.parse_args([])
    tiny = {
        **runner.TINY_TRAIN,
        **runner.TINY_STACKER,
        "fractions": list(runner.TINY_FRACTIONS),
    }
    for name, value in tiny.items():
        if _same(getattr(args, name), getattr(defaults, name)):
            setattr(args, name, value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return bool(a == b)


def _print_event(event: Any) -> None:
    """One line per cell state: ``[3/17] done     depth=4 model=resnet18  1m12s  best val ...``."""
    record = event.record
    status = record["status"]
    line = f"[{event.index}/{event.total}] {status:8s} {event.cell.label() or '(base)'}"
    extras = []
    seconds = event.seconds if event.seconds is not None else record.get("train_seconds")
    if status in ("done", "failed") and seconds is not None:
        extras.append(_duration(seconds))
    if status == "done" and record.get("best_val_accuracy") is not None:
        extras.append(f"best val acc {record['best_val_accuracy']:.4f}")
    if status == "failed" and record.get("error"):
        extras.append(f"error: {record['error']}")
    if status == "queued":
        if record.get("epochs"):
            extras.append(f"resumes after epoch {record['epochs']}")
        extras.append(event.cell.folder)
    print("  ".join([line, *extras]), flush=True)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s"


def _paths(report: Any) -> list[str]:
    if report is None:
        return []
    if isinstance(report, (str, Path)):
        return [str(report)]
    if isinstance(report, dict):
        report = list(report.values())
    try:
        return [str(p) for p in report]
    except TypeError:
        return []
