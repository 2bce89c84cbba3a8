"""``resnet3d phantom``: write a synthetic chest-CT data set in the CC-CCII layout."""

from __future__ import annotations

import argparse
import csv
import time
from collections import Counter
from pathlib import Path

from . import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``phantom`` subcommand."""
    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic chest-CT data set (CC-CCII layout)",
        description="Write a synthetic chest-CT data set in the CC-CCII layout: "
        "OUT/{NCP,CP,Normal}/<patient>/<scan>/0000.png..., OUT/unzip_filenames.csv and each "
        "scan's lesion and lung masks in a mirrored tree, OUT/.masks/<class>/<patient>/"
        "<scan>.mask.npz (a dot-folder: globs over the scan folders do not see it; read them "
        "with resnet3d.data.phantom.load_lesion_mask / load_lung_mask). NCP scans carry bilateral "
        "peripheral ground-glass opacities, CP scans a lobar consolidation, Normal scans nothing. "
        "A toy for smoke tests and demos, not CT data.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="folder to write")
    parser.add_argument(
        "--patients",
        type=int,
        default=30,
        help="number of patients, split over the classes (default 30)",
    )
    parser.add_argument(
        "--size", type=int, default=128, help="slice height and width in px (default 128)"
    )
    parser.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    parser.add_argument(
        "--slices",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(16, 40),
        help="slices per scan, inclusive range (default 16 40)",
    )
    parser.add_argument(
        "--scans",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        default=(1, 3),
        help="scans per patient, inclusive range (default 1 3)",
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="class folders to fill (default NCP CP Normal)",
    )
    parser.add_argument(
        "--no-masks",
        action="store_true",
        help="do not save the lesion and lung masks (default: save them under OUT/.masks)",
    )
    parser.add_argument(
        "--vary-size",
        action="store_true",
        help="let each scan's size vary by up to 1/8 (default: every scan is SIZE x SIZE)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier phantom data set in OUT (deletes only what the phantom "
        "wrote; default: refuse a non-empty OUT)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (default: shown)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set and print a one-line summary."""
    from ..data.phantom import CLASSES, CSV_NAME, MASK_SUFFIX, MASKS_DIR, write_dataset

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CLIError(f"OUT {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise CLIError(
            f"OUT {out} is not empty; pass --overwrite to replace a phantom data set there, "
            "or choose a new folder"
        )
    classes = tuple(args.classes) if args.classes else CLASSES
    started = time.perf_counter()
    write_dataset(
        out,
        patients=args.patients,
        size=args.size,
        seed=args.seed,
        slices=tuple(args.slices),
        scans_per_patient=tuple(args.scans),
        classes=classes,
        masks=not args.no_masks,
        progress=not args.no_progress,
        vary_size=args.vary_size,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - started
    with open(out / CSV_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    patients = Counter(row["label"] for row in {row["patient_id"]: row for row in rows}.values())
    scans = Counter(row["label"] for row in rows)
    n_slices = sum(int(row["n_slice"]) for row in rows)
    per_class = ", ".join(f"{c} {patients[c]}/{scans[c]}" for c in classes)
    masks = (
        ""
        if args.no_masks
        else f"; lesion and lung masks in {out / MASKS_DIR}/<class>/<patient>/<scan>{MASK_SUFFIX}"
    )
    print(
        f"wrote {sum(patients.values())} patients, {len(rows)} scans, {n_slices} slices "
        f"(patients/scans: {per_class}) of {'~' if args.vary_size else ''}{args.size}x{args.size} "
        f"PNG slices to {out} "
        f"in {seconds:.1f} s{masks}"
    )
    return 0
