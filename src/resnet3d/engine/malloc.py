"""Keep glibc's ``malloc`` from handing training memory back to the OS after every step.

A CPU training step allocates and frees the same large buffers (activations, their
gradients, Adam's temporaries) over and over. glibc returns free memory at the top of its
heap to the OS once more than ``M_TRIM_THRESHOLD`` is free (by default twice the dynamic
mmap threshold, at most 64 MiB), and serves blocks above ``M_MMAP_THRESHOLD`` (at most
32 MiB) with fresh ``mmap`` pages, so every step faults the same memory in again and the
kernel zeroes it. tcmalloc and jemalloc keep such memory; preloading one of them made fp32
training 1.2-1.45x faster in this project's benchmarks. :func:`tune_malloc` gets most of
that without a preload: it raises both glibc thresholds with ``mallopt``, so freed memory is
reused. The cost is that the process keeps up to the thresholds' worth of freed memory
instead of returning it; the numbers computed are unchanged (an allocator decides where
tensors live, not what is in them).

The ``resnet3d`` command calls :func:`tune_malloc` before every subcommand; library users
call it once at the start of a training script. ``RESNET3D_TUNE_MALLOC=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

from .._utils import env_flag

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "allocator", "malloc_tuned", "tune_malloc"]

_log = logging.getLogger(__name__)

#: Environment variable that, set to anything but ``1``/``on``/``yes``/``true`` (``0``, say),
#: disables tuning.
OPT_OUT_ENV = "RESNET3D_TUNE_MALLOC"
#: Blocks up to this size come from the heap, whose freed space is reused (glibc: 32 MiB at
#: most by default). Larger blocks still get their own ``mmap``; at that size the
#: convolutions that use them take far longer than faulting them in.
MMAP_THRESHOLD = 256 << 20
#: Free memory at the top of the heap that glibc keeps instead of returning it to the OS.
TRIM_THRESHOLD = 1 << 30

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_tuned = False


def allocator(environ: dict[str, str] | None = None, maps_path: str = "/proc/self/maps") -> str:
    """The malloc in use: ``"tcmalloc"``, ``"jemalloc"``, ``"mimalloc"`` or ``"glibc"``.

    Looks at the libraries mapped into this process (which covers ``LD_PRELOAD`` and
    linking), then at ``LD_PRELOAD`` itself where ``/proc`` is unavailable.

    Args:
        environ: Environment to read ``LD_PRELOAD`` from (default ``os.environ``).
        maps_path: The process memory map to scan (Linux).

    Returns:
        The allocator's name; ``"glibc"`` when no replacement is found (also on systems
        without glibc, where :func:`tune_malloc` then does nothing).
    """
    environ = dict(os.environ) if environ is None else environ
    candidates = ("tcmalloc", "jemalloc", "mimalloc")
    texts = [environ.get("LD_PRELOAD", "")]
    try:
        with open(maps_path, encoding="utf-8", errors="replace") as handle:
            texts.append(handle.read())
    except OSError:
        pass
    for text in texts:
        for name in candidates:
            if f"lib{name}" in text or f"/{name}" in text:
                return name
    return "glibc"


def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (the one with ``mallopt``), else ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (not musl)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Make glibc's ``malloc`` keep and reuse freed memory (see the module's description).

    Process-wide and idempotent. Does nothing where another allocator is loaded (tcmalloc,
    jemalloc, mimalloc already keep memory), off Linux or without glibc, or when
    ``RESNET3D_TUNE_MALLOC=0``.

    Args:
        mmap_threshold: Blocks up to this many bytes come from the heap. glibc builds that
            refuse a value above 32 MiB get 32 MiB.
        trim_threshold: Bytes of free heap top kept instead of returned to the OS.

    Returns:
        Whether glibc's settings are now the tuned ones (by this call or an earlier one).
    """
    global _tuned
    if _tuned:
        return True
    if os.environ.get(OPT_OUT_ENV) is not None and not env_flag(OPT_OUT_ENV):
        return False
    if allocator() != "glibc":
        return False
    libc = _glibc()
    if libc is None:
        return False
    if not libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold):
        # Older glibc caps the threshold at half its maximum heap size (32 MiB on 64-bit).
        libc.mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 32 << 20))
    if not libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold):
        _log.debug("mallopt(M_TRIM_THRESHOLD) was refused; malloc left as it was")
        return False
    _tuned = True
    _log.debug(
        "glibc malloc keeps freed memory: mmap threshold %d, trim threshold %d bytes",
        mmap_threshold,
        trim_threshold,
    )
    return True


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc` has changed this process's glibc settings."""
    return _tuned
