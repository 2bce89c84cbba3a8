"""Small stdlib-only helpers shared across the package."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_3tuple(value: int | Sequence[int], name: str = "value") -> tuple[int, int, int]:
    """Expand an int to ``(v, v, v)`` or check that a sequence has exactly three ints.

    Args:
        value: An int, or a sequence of three ints in ``(D, H, W)`` order.
        name: The argument's name, used in the error message.

    Returns:
        A ``(D, H, W)`` tuple of ints.

    Raises:
        TypeError: If ``value`` is neither an int nor a sequence of ints.
        ValueError: If the sequence does not have exactly three items.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a (D, H, W) tuple of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value, value)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a (D, H, W) tuple of ints, got {value!r}"
        ) from None
    if len(items) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must be an int or a (D, H, W) tuple of 3 ints, got {value!r}")
    return (items[0], items[1], items[2])


def did_you_mean(name: str, options: Iterable[str], n: int = 3) -> str:
    """Return a " Did you mean ...?" hint naming the closest options, or "" if none is close.

    Args:
        name: What the user gave.
        options: The valid names.
        n: How many close matches to list at most.

    Returns:
        A hint string that starts with a space, or an empty string.
    """
    matches = difflib.get_close_matches(name, list(options), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def check_choice(name: str, value: str, options: Sequence[str]) -> str:
    """Check that ``value`` is one of ``options``; raise a helpful ``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(options)}, got {value!r}")
    if value not in options:
        raise ValueError(
            f"{name}={value!r} is not supported; choose one of {list(options)}."
            + did_you_mean(value, options)
        )
    return value


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) via a synced temporary file and a rename.

    A process killed at any point leaves the previous file or the new one, never half of one.
    The folder is created if needed. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def env_flag(name: str) -> bool:
    """True if the environment variable ``name`` is set to 1, on, yes or true (any case)."""
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def lazy_attribute(package: str, exports: Mapping[str, str], name: str) -> Any:
    """Resolve ``name`` of a package whose names load on first use (its ``__getattr__``).

    Keeps ``import resnet3d.weights.table`` free of torch while
    ``from resnet3d.weights import from_pretrained`` still works.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> module inside the package that defines it.
        name: The attribute asked for.

    Raises:
        AttributeError: ``name`` is not one of the package's names.
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in chunks, so large files use little memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
