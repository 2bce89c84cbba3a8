"""``resnet3d build-volumes ROOT OUT``: decode every scan once into a uint8 volume cache."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from typing import Any

from . import CLIError
from ._common import add_layout_option


def parse_window(text: str) -> Any:
    """``lung`` -> ``"lung"``; ``-600,1500`` -> ``(-600.0, 1500.0)`` (center, width)."""
    if "," not in text:
        return text
    parts = text.split(",")
    try:
        center, width = (float(p) for p in parts)
    except ValueError:
        raise CLIError(
            f"--window {text!r}: give a name (lung, mediastinum, ...) or CENTER,WIDTH in HU"
        ) from None
    return (center, width)


def window_arg(values: list[str] | None) -> Any:
    """The ``window`` field from repeated ``--window`` options (several: one per channel)."""
    if not values:
        return None
    parsed = [parse_window(v) for v in values]
    return parsed[0] if len(parsed) == 1 else tuple(parsed)


def add_stacker_arguments(parser: argparse.ArgumentParser) -> None:
    """The slice-stacking options shared by commands that build volumes."""
    parser.add_argument("--depth", type=int, default=4, help="slices per volume (default 4)")
    parser.add_argument("--stride", type=int, default=None, help="default: depth")
    parser.add_argument(
        "--size", type=int, nargs="+", default=[512], metavar="N", help="H [W] (default 512)"
    )
    parser.add_argument("--channels", type=int, default=None, help="1 or 3 (default 3)")
    parser.add_argument(
        "--window",
        action="append",
        metavar="NAME|C,W",
        help="CT window for HU/16-bit data: a name (lung, mediastinum, soft_tissue, bone, "
        "brain) or --window=CENTER,WIDTH; repeat for one window per channel",
    )
    parser.add_argument(
        "--remainder", default="drop", choices=("drop", "pad", "overlap"), help="(default drop)"
    )
    parser.add_argument("--resample", default="bilinear", help="Pillow filter (default bilinear)")
    parser.add_argument("--threads", type=int, default=None, help="decoding threads per scan")


def stacker_from_args(args: argparse.Namespace) -> Any:
    """A ``SliceStacker`` from :func:`add_stacker_arguments` options."""
    from ..data.volumes import SliceStacker

    if len(args.size) not in (1, 2):
        raise CLIError(f"--size takes H or H W, got {args.size}")
    window = window_arg(args.window)
    channels = args.channels
    if channels is None:
        channels = len(window) if isinstance(window, tuple) and not _is_pair(window) else 3
    return SliceStacker(
        depth=args.depth,
        stride=args.stride,
        size=tuple(args.size) if len(args.size) == 2 else args.size[0],
        channels=channels,
        window=window,
        remainder=args.remainder,
        resample=args.resample,
        threads=args.threads,
    )


def _is_pair(window: Any) -> bool:
    return isinstance(window, tuple) and all(isinstance(v, float) for v in window)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-volumes",
        help="decode every scan once into a memory-mappable uint8 cache",
        usage="resnet3d build-volumes ROOT OUT [options]\n"
        "       resnet3d build-volumes --verify OUT",
        description="Decode every scan of a data set (CC-CCII layout, class/scan tree or "
        "index CSV) once, prepare its slices (resize, window, channels) and store them as "
        "uint8 .npy files in OUT, with a manifest that records each scan's source fingerprint "
        "(slice names, sizes, modification times) and each file's sha256. A rerun rebuilds "
        "the scans whose sources changed or whose file is missing or damaged and keeps the "
        "rest; interrupted builds resume. --verify OUT re-hashes every file and compares "
        "every scan's sources, changing nothing. A data set of video files (class/<video> "
        "tree or path,label CSV) stores each video's decoded frames as its slices.",
    )
    parser.add_argument("root", metavar="ROOT", help="data set folder or index CSV")
    parser.add_argument("out", metavar="OUT", nargs="?", help="cache folder")
    add_stacker_arguments(parser)
    add_layout_option(parser)
    parser.add_argument("--lenient", action="store_true", help="skip bad scans, list them")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a cache built with other settings, in an older format or with a damaged "
        "manifest (only the cache's own files are removed; a folder holding other files is "
        "refused)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the cache OUT: re-hash every file, compare every scan's sources, name "
        "each damaged or stale scan (exit status 1 if any); needs no ROOT",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.verify:
        if args.out is not None:
            raise CLIError(
                "--verify takes the cache folder only: resnet3d build-volumes --verify OUT"
            )
        return verify(args.root)
    if args.out is None:
        raise CLIError("give ROOT and OUT: resnet3d build-volumes ROOT OUT")
    return build(args)


def build(args: argparse.Namespace) -> int:
    from ..data.cache import build_cache
    from ..data.index import ScanIndex

    stacker = stacker_from_args(args)
    start = time.perf_counter()
    index = ScanIndex.from_path(
        args.root, layout=args.layout, lenient=args.lenient, check_duplicates=False
    )
    if not index.report.ok:
        print(index.report.format())
    if not len(index):
        raise CLIError(f"{args.root}: no usable scan to cache")
    result = build_cache(
        index,
        args.out,
        stacker,
        lenient=args.lenient,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    why = Counter(reason for _, reason in result.rebuilt)
    rebuilt = (
        f" ({len(result.rebuilt)} rebuilt: "
        + ", ".join(f"{n} {reason}" for reason, n in sorted(why.items()))
        + ")"
        if result.rebuilt
        else ""
    )
    print(
        f"{result.root}: {result.written} scan(s) written{rebuilt}, {result.reused} reused, "
        f"{len(result.skipped)} skipped; {result.n_slices} slices, "
        f"{result.n_bytes / 2**20:.1f} MiB in {seconds:.1f} s"
    )
    for key, error in result.skipped:
        print(f"  skipped {key}: {error}")
    return 0


def verify(out: str) -> int:
    from ..data.cache import VolumeCache

    result = VolumeCache(out).verify()
    for key, problem in result.problems:
        print(f"{key}: {problem}")
    checked = f"{result.n_bytes / 2**20:.1f} MiB re-hashed in {result.seconds:.1f} s"
    unreachable = (
        f"; sources of {len(result.unreachable)} scan(s) not found, not compared"
        if result.unreachable
        else ""
    )
    if result.problems:
        print(
            f"{out}: {len(result.problems)} of {result.n_scans} scan(s) damaged or stale "
            f"({checked}{unreachable}); rerun 'resnet3d build-volumes ROOT {out}' to rebuild them"
        )
        return 1
    summary = f"{result.n_scans} scan(s) verified: none damaged or stale"
    print(f"{out}: {summary} ({checked}{unreachable})")
    return 0
