"""``resnet3d index ROOT``: count a data set's scans and report what is wrong with it."""

from __future__ import annotations

import argparse
import json

from ._common import add_layout_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "index",
        help="count patients/scans/slices per class and check a data set's consistency",
        description="Index a data set (CC-CCII layout ROOT/<class>/<patient>/<scan>, a "
        "ROOT/<class>/<scan> tree, or an index CSV), print patients/scans/slices per class "
        "and the consistency report (empty scans, slice counts against unzip_filenames.csv, "
        "byte-identical repeated slices, patients under two classes). Exit status 1 when "
        "unusable scans were found (with --lenient), 2 on an error.",
    )
    parser.add_argument("root", metavar="ROOT", help="data set folder or index CSV")
    add_layout_option(parser)
    parser.add_argument(
        "--lenient", action="store_true", help="skip unusable scans and list them (no error)"
    )
    parser.add_argument("--no-duplicates", action="store_true", help="skip the duplicate check")
    parser.add_argument("--csv", metavar="FILE", help="also write the index as CSV")
    parser.add_argument("--split", metavar="FILE", help="also write a patient split as JSON")
    parser.add_argument(
        "--seed", type=int, default=None, help="split seed (default 0; with --split)"
    )
    parser.add_argument(
        "--fractions",
        default=None,
        metavar="TRAIN,VALID,TEST",
        help="split fractions (default 0.7,0.15,0.15; with --split)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--limit", type=int, default=50, help="issues listed in full (default 50)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.index import ScanIndex
    from ..data.split import split_by_patient
    from . import CLIError

    # Checked before indexing: split options without --split used to be ignored silently.
    given = [name for name in ("fractions", "seed") if getattr(args, name) is not None]
    if given and not args.split:
        options = " and ".join(f"--{name}" for name in given)
        raise CLIError(f"{options} only apply to a split: add --split FILE")
    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    if args.fractions is not None:
        try:
            fractions = tuple(float(v) for v in args.fractions.split(","))
        except ValueError:
            fractions = ()
        if len(fractions) != 3:
            raise CLIError(
                f"--fractions {args.fractions!r}: give three numbers, e.g. 0.7,0.15,0.15"
            )
    index = ScanIndex.from_path(
        args.root,
        layout=args.layout,
        lenient=args.lenient,
        check_duplicates=not args.no_duplicates,
    )
    if args.json:
        print(json.dumps({"counts": index.counts(), **index.report.to_dict()}, indent=1))
    else:
        print(index.summary())
        print(index.report.format(limit=args.limit))
    if args.csv:
        print(f"index written to {index.to_csv(args.csv)}")
    if args.split:
        seed = 0 if args.seed is None else args.seed
        split = split_by_patient(index, fractions, seed=seed)
        split.to_json(args.split)
        if not args.json:
            print(split.summary())
        print(f"split written to {args.split} (hash {split.hash[:16]})")
    return 1 if index.report.errors else 0
