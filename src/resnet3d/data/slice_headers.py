"""One scan, one set of rules, from headers alone: every slice one size, one bit depth and one
frame (:class:`SliceHeader`s checked by :func:`consistent`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import (
    InconsistentScanError,
    UnsupportedFormatError,
)

__all__ = []


@dataclass(frozen=True)
class SliceHeader:
    path: Path
    width: int
    height: int
    frames: int
    domain: str
    itemsize: int
    fmt: str  # "PNG", "TIFF", "DICOM", ...
    pixel: str  # the pixel type: a Pillow mode, or "16-bit" for DICOM

    @property
    def what(self) -> str:
        return f"{self.fmt} {self.pixel}"


def multi_frame_error(
    path: str | os.PathLike[str], fmt: str, frames: int, width: int, height: int
) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"{os.fspath(path)}: {fmt} file holds {frames} frames of {width}x{height}; a slice "
        "file must hold one image (a multi-page, animated or multi-frame file would lose "
        "frames): save one file per slice",
        path=path,
    )


_DOMAIN_WORDS = {
    "u8": "8-bit",
    "int": "16/32-bit integer",
    "float": "floating point",
    "hu": "DICOM",
}


def consistent(headers: Sequence[SliceHeader]) -> SliceHeader:
    """Check one size, one bit-depth class and one frame per file; return the first header."""
    first = headers[0]
    for h in headers:
        if h.frames > 1:
            raise multi_frame_error(h.path, h.fmt, h.frames, h.width, h.height)
        if (h.height, h.width) != (first.height, first.width):
            raise InconsistentScanError(
                f"{h.path}: slice is {h.width}x{h.height} (WxH) but {first.path.name!r} of "
                f"the same scan is {first.width}x{first.height}; all slices of a scan must "
                "have one size",
                path=h.path,
            )
        if h.domain != first.domain:
            raise InconsistentScanError(
                f"{h.path}: slice is {_DOMAIN_WORDS[h.domain]} ({h.what}) but "
                f"{first.path.name!r} of the same scan is {_DOMAIN_WORDS[first.domain]} "
                f"({first.what}); 8-bit slices pass through while deeper ones are windowed, "
                "so one scan must have one bit depth: export it in one format",
                path=h.path,
            )
    return first
