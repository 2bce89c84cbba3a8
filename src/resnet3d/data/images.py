"""Image slice files (PNG, JPEG, TIFF, BMP, WebP): recognising them by content, opening them
with the size checked before decoding, and the one slice decoder (:func:`decoded_image`)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import (
    CorruptSliceError,
    DatasetNotFoundError,
    ImageTooLargeError,
    Resnet3DError,
    UnsupportedFormatError,
)
from .dicom import read_dicom
from .files import (
    DEFAULT_MAX_PIXELS,
    ScanHeader,
    SliceKind,
    refuse_pixels,
)
from .slice_headers import SliceHeader, consistent, multi_frame_error

__all__ = [
    "decoded_image",
    "normalize_mode",
    "open_image",
    "read_slice",
    "sniff",
]


_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


_FORMATS_TEXT = "PNG, JPEG, TIFF, BMP, WebP or DICOM"


def _sniff_bytes(head: bytes) -> SliceKind | None:
    for magic, _ in _IMAGE_MAGIC:
        if head.startswith(magic):
            return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[128:132] == b"DICM":
        return "dicom"
    # DICOM without the 128-byte preamble (old ACR-NEMA style files): the first element is
    # a little-endian tag of group 0x0002 or 0x0008.
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00":
        return "dicom"
    return None


def sniff(path: str | os.PathLike[str]) -> SliceKind | None:
    """Recognise a slice file by its first bytes.

    Args:
        path: A file.

    Returns:
        ``"image"`` for formats that Pillow decodes (PNG, JPEG, TIFF, BMP, WebP), ``"dicom"``
        for DICOM (with or without the 128-byte preamble), ``None`` for anything else,
        including empty files.

    Raises:
        CorruptSliceError: If the file cannot be opened.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as error:
        raise CorruptSliceError(f"{os.fspath(path)}: cannot open: {error}", path=path) from error
    return _sniff_bytes(head)


def describe_unknown(path: str | os.PathLike[str]) -> str:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as error:  # pragma: no cover - raced with deletion
        return f"cannot be read ({error})"
    if size == 0:
        return "is empty (0 bytes)"
    return f"is not a {_FORMATS_TEXT} file ({size} bytes, starts with {head!r})"


def _mode_domain(mode: str) -> tuple[str, int] | None:
    """(domain, bytes per pixel) of a Pillow mode, or None if it is not supported."""
    if mode.startswith("I;16"):
        return "int", 2
    if mode in ("I", "F"):
        return ("int" if mode == "I" else "float"), 4
    if mode in _MODE_TO_8BIT or mode in ("P", "PA"):
        return "u8", Image.getmodebands(mode)
    return None


def _image_slice_header(path: Path) -> SliceHeader:
    with _open_pillow(path) as im:
        width, height = im.size
        mode, fmt = im.mode, im.format or "image"
        try:
            frames = int(getattr(im, "n_frames", 1) or 1)
        except Exception as error:  # Pillow walks the pages of a TIFF; a broken chain raises
            raise CorruptSliceError(f"{path}: cannot count its pages: {error}", path=path) from (
                error
            )
    domain = _mode_domain(mode)
    if domain is None:
        raise UnsupportedFormatError(
            f"{path}: Pillow image mode {mode!r} is not supported", path=path
        )
    return SliceHeader(path, width, height, frames, domain[0], domain[1], fmt, mode)


def image_scan_header(images: Sequence[Path]) -> ScanHeader:
    headers = [_image_slice_header(p) for p in images]
    first = consistent(headers)
    itemsize = max(h.itemsize for h in headers)
    text = (
        f"{len(headers)} image slices of {first.width} x {first.height} "
        f"({first.what}, {itemsize} bytes per pixel)"
    )
    return ScanHeader((len(headers), first.height, first.width), itemsize, first.domain, text)


def _open_pillow(path: str | os.PathLike[str]) -> Image.Image:
    """``Image.open`` (header only) with Pillow's errors translated to ours."""
    try:
        # Pillow raises above twice its own MAX_IMAGE_PIXELS (translated below); between one
        # and two times it warns. No warnings.catch_warnings() here: it is not thread-safe
        # and this runs in decoding threads.
        return Image.open(path)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(
            f"{os.fspath(path)}: rejected as a decompression bomb before decoding: {error}",
            path=path,
        ) from error
    except FileNotFoundError as error:
        raise DatasetNotFoundError(f"slice {os.fspath(path)!r} does not exist", path=path) from (
            error
        )
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: {describe_unknown(path)}: {error}", path=path
        ) from error


def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image slice lazily and check its declared size before any pixel is decoded.

    Args:
        path: A file in a format Pillow reads.
        max_pixels: Largest ``width x height`` accepted.

    Returns:
        The opened, not yet loaded, Pillow image. The caller must close it (or use it as a
        context manager).

    Raises:
        CorruptSliceError: If the file is empty or not an image.
        ImageTooLargeError: If the image declares more than ``max_pixels`` pixels (a
            decompression bomb): the file is rejected after reading its header only.
        UnsupportedFormatError: If the file holds several images (multi-page TIFF, animated
            PNG or WebP): one file is one slice.
    """
    im = _open_pillow(path)
    try:
        width, height = im.size
        refuse_pixels(path, width, height, max_pixels)
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            raise multi_frame_error(path, im.format or "image", frames, width, height)
    except BaseException:
        im.close()
        raise
    return im


_MODE_TO_8BIT = {
    "1": "L",
    "L": "L",
    "LA": "L",
    "La": "L",
    "RGB": "RGB",
    "RGBA": "RGB",
    "RGBa": "RGB",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}


_MODES_16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def normalize_mode(im: Image.Image) -> Image.Image:
    """Convert an image to ``L`` or ``RGB`` unless it has more than 8 bits per sample.

    ``1``, ``LA`` become ``L``; ``RGBA``, ``CMYK``, ``YCbCr`` and other colour modes become
    ``RGB`` (alpha is dropped, not composited); palette images (``P``, ``PA``) become ``L``
    when every palette entry is gray and ``RGB`` otherwise. ``I;16*``, ``I`` and ``F`` images
    are returned unchanged: their values are never reduced to 8 bits.

    Args:
        im: An opened Pillow image.

    Returns:
        An image in mode ``L``, ``RGB``, ``I;16*``, ``I`` or ``F`` (possibly ``im`` itself).

    Raises:
        UnsupportedFormatError: For a mode Pillow cannot convert.
    """
    mode = im.mode
    if mode in ("L", "RGB") or mode in _MODES_16 or mode in ("I", "F"):
        return im
    if mode in ("P", "PA"):
        palette = im.getpalette() or []
        rgb = np.asarray(palette[: len(palette) // 3 * 3]).reshape(-1, 3)
        target = "L" if rgb.size and (rgb == rgb[:, :1]).all() else "RGB"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "palette images with transparency" advice
            return im.convert(target)
    if mode.startswith("I;16"):  # rarer 16-bit layouts (e.g. I;16BS): to 32-bit, values intact
        return im.convert("I")
    converted = _MODE_TO_8BIT.get(mode)
    if converted is None:
        name = getattr(im, "filename", "") or "image"
        raise UnsupportedFormatError(f"{name}: Pillow image mode {mode!r} is not supported")
    return im.convert(converted)


def read_slice(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one slice file to a numpy array at its native bit depth.

    Recognises the format by content. Image modes map as :func:`normalize_mode` says:
    8-bit gray gives ``uint8 (H, W)``, colour gives ``uint8 (H, W, 3)``, 16-bit gray
    (``I;16``) gives ``uint16 (H, W)``, 32-bit ``I`` gives ``int32``, ``F`` gives ``float32``.
    DICOM gives ``float32`` Hounsfield units (:func:`read_dicom`).

    Args:
        path: A slice file.
        max_pixels: Largest slice accepted; checked before decoding.

    Returns:
        The decoded slice.

    Shape:
        ``(H, W)`` or ``(H, W, 3)``.

    Raises:
        CorruptSliceError: If the file is empty, truncated or not an image.
        ImageTooLargeError: If it declares more than ``max_pixels`` pixels.
    """
    kind = sniff(path)
    if kind == "dicom":
        return read_dicom(path, max_pixels)
    if kind is None:
        raise CorruptSliceError(f"{os.fspath(path)}: {describe_unknown(path)}", path=path)
    with decoded_image(path, max_pixels) as image:
        return np.asarray(image)


@contextlib.contextmanager
def decoded_image(
    path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[Image.Image]:
    """Open, size-check and decode one image slice, in the mode :func:`normalize_mode` gives.

    The one slice decoder: :func:`read_slice` and the volume builder (which resizes in
    Pillow before converting) both use it. Pillow's errors inside the ``with`` block, from
    decoding or from what the caller does with the image, become :class:`CorruptSliceError`
    naming the file.

    Yields:
        The decoded image (``L``, ``RGB``, ``I;16``, ``I`` or ``F``).
    """
    with open_image(path, max_pixels) as im:
        try:
            im.load()
            yield normalize_mode(im)
        except Resnet3DError:
            raise
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
            raise CorruptSliceError(
                f"{os.fspath(path)}: cannot decode: {error}", path=path
            ) from error
