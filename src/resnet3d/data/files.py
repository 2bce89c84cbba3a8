"""What a scan is on disk, before any pixel is read: its files, its header, the size limits.

The vocabulary that every reader shares (slice folders, DICOM and NIfTI in
:mod:`resnet3d.data.readers`; video files in :mod:`resnet3d.data.video`): which names are
slices, junk, NIfTI or video files, how slice names sort, :class:`ScanFiles` and
:class:`ScanHeader`, and the limits that refuse a decompression bomb from its header.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ImageTooLargeError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_VOXELS",
    "MAX_BYTES_ENV",
    "MAX_VOXELS_ENV",
    "NIFTI_SUFFIXES",
    "SLICE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ScanFiles",
    "ScanHeader",
    "is_junk_name",
    "is_nifti_name",
    "is_video_name",
    "natural_key",
    "size_limits",
]


#: Largest slice accepted, in pixels (width x height x frames). 8192 x 8192 is far above any CT
#: slice; a file that declares more is treated as a decompression bomb and never decoded.
DEFAULT_MAX_PIXELS = 8192 * 8192


#: Largest scan accepted, in voxels (slices x rows x columns, as its headers declare):
#: 512 x 512 x 4096, far above a CT scan. Override per call (``max_voxels=``) or with the
#: ``RESNET3D_MAX_VOXELS`` environment variable.
DEFAULT_MAX_VOXELS = 512 * 512 * 4096


#: Largest scan accepted, in bytes at its stored sample size (voxels x bytes per voxel):
#: 4 GiB. Override per call (``max_bytes=``) or with ``RESNET3D_MAX_BYTES``.
DEFAULT_MAX_BYTES = 4 * 1024**3


#: Environment variables that set the scan limits when no argument does.
MAX_VOXELS_ENV = "RESNET3D_MAX_VOXELS"


MAX_BYTES_ENV = "RESNET3D_MAX_BYTES"


SliceKind = Literal["image", "dicom"]


ScanKind = Literal["image", "dicom", "nifti", "video"]


# Names that are never slices, compared in lower case: OS and archive droppings, DICOM indexes.
_JUNK_NAMES = frozenset(
    {"thumbs.db", "desktop.ini", "dicomdir", "readme", "license", "version", "__macosx"}
)


# File name endings that may hold a slice. Files without an extension, or with a numeric one
# (DICOM files are often named by their UID, e.g. ``1.2.840.113619.2.1``), are candidates too.
# Anything else (.txt, .csv, .json, .xml, .db, ...) is skipped as junk.
SLICE_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".webp",
        ".dcm", ".dicom", ".dic", ".ima",
    }
)  # fmt: skip


NIFTI_SUFFIXES = (".nii", ".nii.gz")


#: File name endings of video files: one file is one scan, its frames are the slices.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that orders embedded numbers by value: ``2.png`` before ``10.png``.

    Zero padding does not matter (``0002`` and ``2`` compare equal by value; the full name
    breaks the tie so the order is total), and letters compare case-insensitively.

    Args:
        name: A file name.

    Returns:
        A tuple usable as a ``sorted`` key.
    """
    # re.split with a capturing group alternates text, number, text, ...: every position
    # holds the same type in every key, so tuples always compare.
    parts = _DIGITS.split(name)
    key = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return (key, name)


def is_junk_name(name: str) -> bool:
    """Whether a directory entry is skipped by name alone.

    Dotfiles (including macOS ``._*`` resource forks and ``.DS_Store``), ``__MACOSX``,
    ``Thumbs.db``, ``desktop.ini``, ``DICOMDIR`` and files whose extension is not an image or
    DICOM extension (``.txt``, ``.csv``, ...) are junk. Files without an extension or with a
    numeric one are kept because DICOM files are often named that way.

    Args:
        name: A file or folder name (not a path).

    Returns:
        True when the entry should be ignored.
    """
    lower = name.casefold()
    if lower.startswith(".") or lower in _JUNK_NAMES or lower.startswith("~"):
        return True
    suffix = os.path.splitext(lower)[1]
    if not suffix or suffix[1:].isdigit():
        return False
    return suffix not in SLICE_SUFFIXES


def is_nifti_name(name: str) -> bool:
    return name.casefold().endswith(NIFTI_SUFFIXES)


def is_video_name(name: str) -> bool:
    """Whether a file name ends like a video (:data:`VIDEO_SUFFIXES`, any letter case).

    Args:
        name: A file name or path.

    Returns:
        True for ``.mp4``, ``.m4v``, ``.mov``, ``.avi``, ``.mkv`` and ``.webm``.
    """
    return os.fspath(name).casefold().endswith(VIDEO_SUFFIXES)


def _limit_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1, e.g. {name}={default}")
    return value


def size_limits(max_voxels: int | None = None, max_bytes: int | None = None) -> tuple[int, int]:
    """The scan size limits in force: the arguments, else the environment, else the defaults.

    Args:
        max_voxels: Largest scan in voxels; ``None`` reads ``RESNET3D_MAX_VOXELS``, or uses
            :data:`DEFAULT_MAX_VOXELS` when it is not set.
        max_bytes: Largest scan in bytes as stored; ``None`` reads ``RESNET3D_MAX_BYTES``, or
            uses :data:`DEFAULT_MAX_BYTES`.

    Returns:
        ``(max_voxels, max_bytes)``.

    Raises:
        ValueError: If a limit (argument or environment variable) is not an int >= 1.
    """
    resolved = []
    for name, value, env, default in (
        ("max_voxels", max_voxels, MAX_VOXELS_ENV, DEFAULT_MAX_VOXELS),
        ("max_bytes", max_bytes, MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
    ):
        if value is None:
            resolved.append(_limit_from_env(env, default))
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            resolved.append(value)
        else:
            raise ValueError(f"{name} must be an int >= 1 or None, got {value!r}")
    return resolved[0], resolved[1]


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 10**8 else f"{n:,} bytes"


def refuse_pixels(
    path: str | os.PathLike[str], width: int, height: int, max_pixels: int, frames: int = 1
) -> None:
    """Raise :class:`ImageTooLargeError` if one slice declares more than ``max_pixels``."""
    pixels = width * height * frames
    if pixels <= max_pixels:
        return
    per_frame = f" x {frames} frames" if frames > 1 else ""
    raise ImageTooLargeError(
        f"{os.fspath(path)}: declares {width}x{height} pixels{per_frame} = {pixels:,}, more "
        f"than the limit of {max_pixels:,} pixels (max_pixels); rejected before decoding "
        "(a decompression bomb?)",
        path=path,
    )


def refuse_size(
    path: str | os.PathLike[str],
    what: str,
    voxels: int,
    nbytes: int,
    max_voxels: int | None,
    max_bytes: int | None,
) -> None:
    """Raise :class:`ImageTooLargeError` if a declared size is above the limits in force."""
    limit_voxels, limit_bytes = size_limits(max_voxels, max_bytes)
    if voxels > limit_voxels:
        limit, knob, env = f"{limit_voxels:,} voxels", "max_voxels", MAX_VOXELS_ENV
    elif nbytes > limit_bytes:
        limit, knob, env = _gigabytes(limit_bytes), "max_bytes", MAX_BYTES_ENV
    else:
        return
    raise ImageTooLargeError(
        f"{os.fspath(path)}: declares {what} ({voxels:,} voxels, {_gigabytes(nbytes)}), more "
        f"than the limit of {limit}; refused before reading any data (raise the limit with "
        f"{knob}= or the {env} environment variable)",
        path=path,
    )


@dataclass(frozen=True)
class ScanHeader:
    """What a scan's headers declare, read without touching pixel data.

    Attributes:
        shape: ``(S, H, W)``: slices, rows and columns of every slice (for NIfTI, of the
            axial slices).
        itemsize: Bytes per voxel as stored (all samples; 3 for 8-bit RGB).
        domain: How values are mapped to ``[0, 1]``: ``"u8"`` (8-bit images, passed
            through), ``"int"`` (16- or 32-bit integer images, windowed or ``x / 65535``),
            ``"float"`` (float images, clipped) or ``"hu"`` (DICOM and NIfTI values).
        text: The declaration in words, for messages (``"a NIfTI volume of 512 x 512 x 300
            int16"``).
    """

    shape: tuple[int, int, int]
    itemsize: int
    domain: str
    text: str

    @property
    def voxels(self) -> int:
        """``S x H x W``."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes as stored: ``voxels x itemsize``."""
        return self.voxels * self.itemsize


@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan, in slice order.

    Attributes:
        path: The scan folder, the NIfTI file or the video file.
        kind: ``"image"`` (Pillow formats), ``"dicom"``, ``"nifti"`` or ``"video"``.
        slices: The slice files in order; empty for a NIfTI volume or a video.
        n_slices: Number of slices (for NIfTI, the number of axial slices; for a video, its
            frames).
        header: What the headers declare, once :func:`validate_scan` has checked them
            (:func:`scan_files` always does); ``None`` for a record built by hand or a scan
            without slices. Not compared.
    """

    path: Path
    kind: ScanKind
    slices: tuple[Path, ...]
    n_slices: int
    header: ScanHeader | None = field(default=None, compare=False)
