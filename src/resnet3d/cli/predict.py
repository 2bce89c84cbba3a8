"""``resnet3d predict``: per-scan class probabilities for scan folders and video files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (
    add_device_and_precision,
    add_model_source,
    add_stacker_args,
    announce_runtime,
    load_model,
    print_table,
    stacker_kwargs,
    write_rows,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="class probabilities per scan (volumes averaged)",
        description="Predict each scan's class: the scan is stacked into volumes exactly as "
        "the model's preprocessing spec says, every volume is classified and the "
        "probabilities are averaged over the scan. A video file is a scan whose slices are "
        "its frames (its clips are averaged); a folder of videos stands for its videos.",
    )
    parser.add_argument(
        "scans",
        nargs="+",
        type=Path,
        metavar="SCAN",
        help="scan folders of slices, NIfTI files, video files or folders of videos",
    )
    add_model_source(parser)
    parser.add_argument("--csv", type=Path, default=None, help="also write a CSV file")
    parser.add_argument("--json", type=Path, default=None, help="also write a JSON file")
    parser.add_argument("--batch-size", type=int, default=8)
    add_device_and_precision(parser, precision="fp32", use="inference")
    add_stacker_args(parser, defaults=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows import expand_scans, predict_scans, stacker_for

    model = load_model(args)
    stacker = stacker_for(model, **stacker_kwargs(args))
    announce_runtime(args.device, args.precision)
    results = predict_scans(
        model,
        expand_scans(args.scans),
        stacker=stacker,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
    )
    labels = results[0].labels if results else []
    rows = [[str(r.path), r.n_volumes, r.label, *(f"{p:.4f}" for p in r.probs)] for r in results]
    print_table(rows, ["scan", "volumes", "prediction", *labels])
    documents = [r.to_dict() for r in results]
    for target in (args.csv, args.json):
        if target is not None:
            write_rows(target, documents)
            print(f"wrote {target}")
    return 0
