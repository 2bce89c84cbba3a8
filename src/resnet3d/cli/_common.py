"""Helpers shared by the subcommands (not a subcommand: the leading underscore hides it)."""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._utils import atomic_open, atomic_write_text
from ..constants import LAYOUTS, PRECISIONS
from . import CLIError


def add_model_source(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--checkpoint PATH | --pretrained NAME`` (one of them)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--checkpoint", type=Path, help="a training checkpoint (last.pt/best.pt)")
    group.add_argument(
        "--pretrained",
        metavar="NAME",
        help="a weights alias (resnet3d models --pretrained), a Hub repo id or an export folder",
    )


def load_model(args: argparse.Namespace) -> Any:
    """The model named by ``--checkpoint`` or ``--pretrained``, with its preprocessing spec."""
    if getattr(args, "checkpoint", None) is not None:
        from ..workflows import model_from_checkpoint

        return model_from_checkpoint(args.checkpoint)
    from ..models.pretrained import from_pretrained

    return from_pretrained(args.pretrained)


def add_layout_option(parser: Any) -> None:
    """``--layout``: how a data set folder is laid out, one list for every command."""
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="data set layout: ccii (class/patient/scan + unzip_filenames.csv), tree "
        "(class/scan), csv (a list of scans); default auto: detect",
    )


def add_device_and_precision(parser: Any, precision: str, use: str, note: str = "") -> None:
    """``--device`` and ``--precision {auto,bf16,fp16,fp32}`` on a parser or argument group.

    Args:
        parser: The parser or argument group.
        precision: The default precision.
        use: What the precision is for, e.g. ``"training"``.
        note: Appended to the precision's help.
    """
    parser.add_argument(
        "--device", default=None, help="cuda, cpu, cuda:1... (default: CUDA if present)"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=precision,
        help=f"{use} precision (default {precision}; auto: bf16 on CUDA and on CPUs with native "
        f"bf16, else fp32; the choice is printed before the work starts){note}",
    )


def announce_runtime(
    device: str | None, precision: str, channels_last: str | bool = "auto", note: str = ""
) -> Any:
    """Resolve the device, precision and memory layout and print them in one line.

    Printed before the work starts, so that a user sees what ``auto`` chose here and which
    option changes it. Under ``torchrun`` only rank 0 prints.

    Args:
        device: ``--device`` (``None``: CUDA when present).
        precision: ``--precision``.
        channels_last: ``--channels-last`` where a command has it.
        note: Appended to the line.

    Returns:
        The :class:`~resnet3d.engine.runtime.Runtime`.

    Raises:
        ValueError: If the combination is not allowed (fp16 on a CPU).
    """
    from ..engine.runtime import resolve_runtime

    runtime = resolve_runtime(device, precision, channels_last)
    if is_main_process():
        print(f"{runtime.describe()}{note}", flush=True)
    return runtime


def is_main_process() -> bool:
    """False on the ranks other than 0 of a ``torchrun`` launch (they print nothing)."""
    return os.environ.get("RANK", "0") in ("", "0")


def require_plots() -> None:
    """Fail in one line, before any work, when plots are wanted and matplotlib is missing."""
    from ..metrics import require_matplotlib

    try:
        require_matplotlib()
    except ImportError:
        raise CLIError(
            "plots need matplotlib, which is not installed: pip install matplotlib "
            "(a resnet3d dependency), or pass --no-plots to skip them"
        ) from None


def add_stacker_args(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    """Volume-builder options; with ``defaults=False`` they only override a model's spec."""
    group = parser.add_argument_group("volumes (how scans become C x D x H x W volumes)")
    group.add_argument(
        "--depth",
        type=int,
        default=4 if defaults else None,
        help="slices per volume" + (" (default 4, the paper's best)" if defaults else ""),
    )
    group.add_argument(
        "--size",
        type=int,
        default=512 if defaults else None,
        help="slice height and width after resizing" + (" (default 512)" if defaults else ""),
    )
    group.add_argument(
        "--channels",
        type=int,
        default=3 if defaults else None,
        help="input channels: 3 (the paper's RGB slices) or 1"
        + (" (default 3)" if defaults else ""),
    )
    group.add_argument(
        "--window",
        default=None,
        help="CT window for HU data: lung, mediastinum or CENTER,WIDTH (8-bit data pass through)",
    )
    group.add_argument(
        "--remainder",
        choices=("drop", "pad", "overlap"),
        default="drop" if defaults else None,
        help="trailing slices that do not fill a volume" + (" (default drop)" if defaults else ""),
    )


def stacker_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The stacker fields given on the command line (``None`` for the ones not given)."""
    window: Any = args.window
    if window is not None and "," in window:
        try:
            center, width = (float(v) for v in window.split(","))
        except ValueError:
            raise CLIError(f"--window {window!r}: expected a name or CENTER,WIDTH") from None
        window = (center, width)
    size = None if args.size is None else (args.size, args.size)
    return {
        "depth": args.depth,
        "size": size,
        "channels": args.channels,
        "window": window,
        "remainder": args.remainder,
    }


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain aligned table on stdout."""
    cells = [[str(v) for v in header]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dicts as CSV (by suffix .csv) or JSON, atomically."""
    if path.suffix.lower() == ".csv":
        flat = [_flatten(row) for row in rows]
        fields = list(dict.fromkeys(k for row in flat for k in row))
        with atomic_open(path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(flat)
    else:
        atomic_write_text(path, json.dumps(rows, indent=2) + "\n")


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out
