"""Small stdlib-only helpers shared across the package."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

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


#: Marks the temporary files of :func:`atomic_open` (``.<name>.tmp-<pid>``), so leftovers of
#: a killed process can be recognised and removed.
TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", *, sync_dir: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` that replaces ``path`` only once it is complete.

    The one way the library writes a file that must never be seen half-written (checkpoints,
    caches, reports, CSV logs): the data goes to ``.<name>.tmp-<pid>`` in the same folder,
    is flushed and synced, and is renamed over ``path`` (``os.replace``, atomic on POSIX and
    Windows). A process killed at any point leaves the previous file or the new one; an
    exception inside the block removes the temporary file and leaves ``path`` as it was.
    The folder is created if needed.

    Args:
        path: The file to write.
        mode: ``"wb"``, ``"w"`` (UTF-8 text, ``\n`` line ends) or ``"w+b"``.
        sync_dir: Also sync the folder after the rename, so the new name survives a power
            loss (checkpoints; costs one more sync).

    Yields:
        The open temporary file.
    """
    if mode not in ("wb", "w", "w+b"):
        raise ValueError(f"atomic_open writes only ('wb', 'w', 'w+b'), got mode={mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
    text = {"encoding": "utf-8", "newline": ""} if mode == "w" else {}
    try:
        with open(tmp, mode, **text) as handle:  # type: ignore[call-overload]
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(target.parent)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Sync a folder's entry list (a rename in it survives a power loss); no-op where
    folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` (UTF-8) with :func:`atomic_open`. Returns the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as containers and ``taskset`` set
    it), else ``os.cpu_count()``; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


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
    if module is not None:
        return getattr(importlib.import_module(f"{package}.{module}"), name)
    if not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
        return importlib.import_module(f"{package}.{name}")  # a submodule: pkg.phantom
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in chunks, so large files use little memory).

    The one file hash of the library (weights, cache arrays): with the SHA extensions of
    current x86 and ARM CPUs OpenSSL's sha256 is faster than blake2b (1.16 vs 0.88 GB/s on the
    development machine), and ``sha256sum FILE`` checks a value by hand.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
