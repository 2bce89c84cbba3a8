"""The ``resnet3d`` command line. The only part of the library that prints.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``; modules are discovered, so adding a command touches one file.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from .._utils import env_flag
from .._version import __version__
from ..engine.malloc import tune_malloc
from ..errors import CLIError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    parser = argparse.ArgumentParser(
        prog="resnet3d",
        description="3D ResNets for CT volumes and video.",
    )
    parser.add_argument("--version", action="version", version=f"resnet3d {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    # --debug also after the command (resnet3d train ... --debug); SUPPRESS keeps a
    # subcommand from resetting the value given before it.
    for command in subparsers.choices.values():
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP
        )
    return parser


DEBUG_HELP = "on an error, show the full traceback (default off; also RESNET3D_DEBUG=1)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``resnet3d`` console script; returns the exit status.

    Every error is one line on stderr: ``resnet3d COMMAND: error: ...``, exit status 2 for
    what the user can fix (bad input, arguments, data, files, a full disk, no network) and 1
    for anything else (a bug: the line says so). ``--debug`` (before or after the command) or
    ``RESNET3D_DEBUG=1`` re-raises instead, with the full traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False)) or env_flag(DEBUG_ENV)
    # Before any tensor exists: training and inference reuse freed memory instead of
    # faulting it in again every step (same results; see resnet3d.engine.malloc).
    tune_malloc()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"resnet3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        status, message = describe_error(error)
        print(f"resnet3d {args.command}: error: {message}", file=sys.stderr)
        return status


def describe_error(error: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message for an error that ends a command.

    Returns:
        ``(2, message)`` for user errors, ``(1, message)`` for unexpected ones (bugs), whose
        message names the exception type and how to see the traceback.
    """
    text = str(error).strip()
    worker = _from_loader_worker(text)
    if worker is not None:
        kind, text = worker
        text = f"in a data-loading worker: {text}"
    else:
        kind = type(error).__name__
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        if "no space left" not in text:
            where = f" while writing {error.filename}" if error.filename else ""
            text = f"no space left on device{where}"
        return 2, text
    if _is_out_of_memory(error):
        return 2, (
            f"out of memory ({_first_line(text)}): try a smaller --batch-size, smaller volumes "
            "(--size) or --precision bf16"
        )
    # A worker's error arrives as its own type (PyTorch rebuilds it), so this holds for both.
    if isinstance(error, USER_ERRORS):
        return 2, _one_line(text) or kind
    return 1, (
        f"unexpected {kind}: {_first_line(text)} (a bug in resnet3d or a library it uses; "
        f"rerun with --debug or {DEBUG_ENV}=1 for the traceback, and please report it)"
    )


#: Errors a user can fix: bad arguments, data, files, a full disk, no network, a non-finite
#: loss. Their messages are written to stand alone, so no traceback is shown.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError,
    ValueError,
    TypeError,
    OSError,
    ImportError,
    ArithmeticError,
    LookupError,
)
DEBUG_ENV = "RESNET3D_DEBUG"


def _from_loader_worker(text: str) -> tuple[str, str] | None:
    """``(type name, message)`` of an error re-raised from a DataLoader worker, else None.

    PyTorch re-raises a worker's error in the main process with the worker's whole traceback
    in the message ("Caught X in DataLoader worker process N. Original Traceback ...");
    the user needs only its last part, the original ``Type: message``.
    """
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return None
    lines = text.split("Original Traceback", 1)[1].splitlines()
    last_frame = max((i for i, line in enumerate(lines) if line.startswith(" ")), default=0)
    original = "\n".join(lines[last_frame + 1 :]).strip()
    kind, sep, message = original.partition(": ")
    if not sep or " " in kind:
        return "Exception", original
    return kind, message


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, (torch.OutOfMemoryError, MemoryError))


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _one_line(text: str) -> str:
    # Messages of several lines (a list of differences) stay readable on one.
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
