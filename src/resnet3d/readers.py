"""Finding, ordering and decoding the slices of one CT scan.

A scan is either a folder of 2D slice files (PNG, JPEG, TIFF, BMP, WebP or DICOM) or a single
NIfTI volume. This module knows how to

* list a folder's slices: junk is skipped by name, every remaining file is recognised by its
  content (so a JPEG named ``.png`` still reads), image slices are put in natural order of
  their file names and DICOM slices in order of position along the slice normal;
* decode one slice to a numpy array without losing bit depth, rejecting decompression bombs
  before any pixel is decoded.

Intensity mapping, resizing and stacking live in :mod:`resnet3d.volumes`. pydicom and nibabel
are optional and imported on first use.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from .errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    ImageTooLargeError,
    InconsistentScanError,
    MissingDependencyError,
    Resnet3DError,
    UnsupportedFormatError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ScanFiles",
    "is_junk_name",
    "list_slices",
    "natural_key",
    "normalize_mode",
    "open_image",
    "order_dicom",
    "read_dicom",
    "read_nifti",
    "read_slice",
    "scan_files",
    "sniff",
]

logger = logging.getLogger(__name__)

#: Largest slice accepted, in pixels (width x height x frames). 8192 x 8192 is far above any CT
#: slice; a file that declares more is treated as a decompression bomb and never decoded.
DEFAULT_MAX_PIXELS = 8192 * 8192

SliceKind = Literal["image", "dicom"]
ScanKind = Literal["image", "dicom", "nifti"]

# Names that are never slices, compared in lower case: OS and archive droppings, DICOM indexes.
_JUNK_NAMES = frozenset(
    {"thumbs.db", "desktop.ini", "dicomdir", "readme", "license", "version", "__macosx"}
)
# File name endings that may hold a slice. Files without an extension, or with a numeric one
# (DICOM files are often named by their UID, e.g. ``1.2.840.113619.2.1``), are candidates too.
# Anything else (.txt, .csv, .json, .xml, .db, ...) is skipped as junk.
_SLICE_SUFFIXES = frozenset(
    {
        ".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".webp",
        ".dcm", ".dicom", ".dic", ".ima",
    }
)  # fmt: skip
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)
_FORMATS_TEXT = "PNG, JPEG, TIFF, BMP, WebP or DICOM"

_DICOM_HINT = 'reading DICOM needs pydicom: pip install "resnet3d[dicom]"'
_NIFTI_HINT = 'reading NIfTI needs nibabel: pip install "resnet3d[nifti]"'

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
    return suffix not in _SLICE_SUFFIXES


def _is_nifti_name(name: str) -> bool:
    return name.casefold().endswith(_NIFTI_SUFFIXES)


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


def _describe_unknown(path: str | os.PathLike[str]) -> str:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as error:  # pragma: no cover - raced with deletion
        return f"cannot be read ({error})"
    if size == 0:
        return "is empty (0 bytes)"
    return f"is not a {_FORMATS_TEXT} file ({size} bytes, starts with {head!r})"


@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan, in slice order.

    Attributes:
        path: The scan folder, or the NIfTI file.
        kind: ``"image"`` (Pillow formats), ``"dicom"`` or ``"nifti"``.
        slices: The slice files in order; empty for a NIfTI volume.
        n_slices: Number of slices (for NIfTI, the number of axial slices).
    """

    path: Path
    kind: ScanKind
    slices: tuple[Path, ...]
    n_slices: int


def scan_files(path: str | os.PathLike[str]) -> ScanFiles:
    """Find and order the slices of one scan.

    ``path`` is a folder of slice files or a NIfTI file (``.nii``/``.nii.gz``). A folder that
    holds nothing but one NIfTI file is read as that volume.

    Args:
        path: The scan.

    Returns:
        The scan's files in slice order (see :func:`list_slices` for the rules). A folder
        without slices gives ``n_slices == 0``; callers decide whether that is an error.

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        CorruptSliceError: If a file that should be a slice is empty or not an image.
        InconsistentScanError: If the folder mixes DICOM and image slices, or DICOM series or
            orientations.
        DatasetLayoutError: If ``path`` is a file that is not a NIfTI volume.
        MissingDependencyError: If pydicom or nibabel is needed and not installed.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetNotFoundError(f"scan {os.fspath(root)!r} does not exist", path=root)
    if root.is_file():
        if _is_nifti_name(root.name):
            return ScanFiles(root, "nifti", (), _nifti_length(root))
        raise DatasetLayoutError(
            f"{os.fspath(root)}: a scan is a folder of slices or a NIfTI file (.nii, .nii.gz), "
            "got another file",
            path=root,
        )
    try:
        entries = [e for e in os.scandir(root) if e.is_file()]
    except OSError as error:
        raise DatasetLayoutError(f"{os.fspath(root)}: cannot list: {error}", path=root) from error
    niftis = [e for e in entries if _is_nifti_name(e.name) and not e.name.startswith(".")]
    candidates = [e for e in entries if not is_junk_name(e.name)]
    if niftis and not candidates:
        if len(niftis) > 1:
            names = sorted(e.name for e in niftis)
            raise InconsistentScanError(
                f"{os.fspath(root)}: holds {len(niftis)} NIfTI volumes {names}; "
                "one scan is one volume",
                path=root,
            )
        nifti = Path(niftis[0].path)
        return ScanFiles(nifti, "nifti", (), _nifti_length(nifti))
    kinds: dict[SliceKind, list[Path]] = {"image": [], "dicom": []}
    for entry in candidates:
        kind = sniff(entry.path)
        if kind is None:
            raise CorruptSliceError(
                f"{entry.path}: {_describe_unknown(entry.path)}", path=entry.path
            )
        kinds[kind].append(Path(entry.path))
    if kinds["image"] and kinds["dicom"]:
        raise InconsistentScanError(
            f"{os.fspath(root)}: mixes {len(kinds['dicom'])} DICOM and "
            f"{len(kinds['image'])} image slices (e.g. {kinds['dicom'][0].name!r} and "
            f"{kinds['image'][0].name!r}); keep one kind per scan folder",
            path=root,
        )
    if kinds["dicom"]:
        ordered = order_dicom(kinds["dicom"])
        return ScanFiles(root, "dicom", tuple(ordered), len(ordered))
    images = sorted(kinds["image"], key=lambda p: natural_key(p.name))
    return ScanFiles(root, "image", tuple(images), len(images))


def list_slices(scan_dir: str | os.PathLike[str]) -> list[Path]:
    """List the slice files of one scan folder in slice order.

    * Junk is skipped by name: dotfiles, ``._*``, ``__MACOSX``, ``Thumbs.db``, ``DICOMDIR``
      and files with a non-image extension (see :func:`is_junk_name`); subfolders are ignored.
    * Every other file is recognised by content, not extension, so PNG and JPEG slices can be
      mixed; a file that is empty or not an image raises :class:`CorruptSliceError`.
    * Image slices are in natural order of file name (``2.png`` before ``10.png``, with or
      without zero padding), whatever order the file system lists them in.
    * DICOM slices are in order of position along the slice normal
      (``ImagePositionPatient`` projected on the cross product of the two
      ``ImageOrientationPatient`` directions, ascending), falling back to ``InstanceNumber``;
      never by file name.

    Args:
        scan_dir: The scan folder.

    Returns:
        The slice paths in order (empty if the folder holds no slices). For a NIfTI scan,
        a one-element list with the volume file.

    Raises:
        DatasetNotFoundError: If ``scan_dir`` does not exist.
        CorruptSliceError: If a candidate slice is empty or not an image.
        InconsistentScanError: If the folder mixes kinds, DICOM series or orientations.
        MissingDependencyError: If the folder holds DICOM and pydicom is not installed.
    """
    files = scan_files(scan_dir)
    if files.kind == "nifti":
        return [files.path]
    return list(files.slices)


# ----------------------------------------------------------------------------------------
# DICOM


def _require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError as error:
        raise MissingDependencyError(_DICOM_HINT) from error
    return pydicom


_DICOM_ORDER_TAGS = [
    "SeriesInstanceUID",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "NumberOfFrames",
]


def order_dicom(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Order the DICOM files of one series by position along the slice normal.

    The position of a slice is ``dot(ImagePositionPatient, n)`` with ``n`` the cross product
    of the row and column direction cosines of ``ImageOrientationPatient``; slices are sorted
    by it in ascending order (for axial CT: feet to head). If any file lacks position or
    orientation, every file is sorted by ``InstanceNumber`` instead. File names never matter.

    Args:
        paths: DICOM files of one series.

    Returns:
        The files in slice order.

    Raises:
        InconsistentScanError: If the files belong to several series, have different
            orientations, or carry neither position nor ``InstanceNumber``.
        CorruptSliceError: If a header cannot be read.
        MissingDependencyError: If pydicom is not installed.
    """
    pydicom = _require_pydicom()
    headers = []
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_DICOM_ORDER_TAGS)
        except Exception as error:  # pydicom raises many types for damaged headers
            raise CorruptSliceError(
                f"{os.fspath(path)}: cannot read the DICOM header: {error}", path=path
            ) from error
        headers.append((Path(path), ds))
    if len(headers) <= 1:
        return [p for p, _ in headers]

    series = Counter(str(ds.get("SeriesInstanceUID", "")) for _, ds in headers)
    if len(series) > 1:
        listing = ", ".join(f"{uid or '<none>'} ({n} files)" for uid, n in series.most_common())
        folder = os.fspath(headers[0][0].parent)
        raise InconsistentScanError(
            f"{folder}: holds {len(series)} DICOM series: {listing}; "
            "put each series in its own folder",
            path=folder,
        )
    for path, ds in headers:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise UnsupportedFormatError(
                f"{path}: multi-frame DICOM ({frames} frames) in a folder of slices; "
                "multi-frame files are not supported, export one file per slice",
                path=path,
            )

    def position_and_normal(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
        ipp, iop = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return None
        cosines = np.asarray([float(v) for v in iop])
        return np.asarray([float(v) for v in ipp]), np.cross(cosines[:3], cosines[3:])

    geometry = [position_and_normal(ds) for _, ds in headers]
    if all(g is not None for g in geometry):
        normal = geometry[0][1]  # type: ignore[index]
        for (path, _), g in zip(headers, geometry):
            # Orientations must agree: sorting a localizer into an axial series is nonsense.
            if not np.allclose(g[1], normal, atol=1e-4):  # type: ignore[index]
                raise InconsistentScanError(
                    f"{path}: ImageOrientationPatient differs from {headers[0][0].name!r} "
                    "in the same folder; one scan must have one orientation",
                    path=path,
                )
        keys = [
            (float(np.dot(g[0], normal)), _instance(ds))  # type: ignore[index]
            for g, (_, ds) in zip(geometry, headers)
        ]
        positions = Counter(round(k[0], 4) for k in keys)
        if len(positions) < len(keys):
            logger.warning(
                "%s: %d DICOM slices share a position; ordered by InstanceNumber among them",
                headers[0][0].parent,
                len(keys) - len(positions),
            )
        order = sorted(range(len(headers)), key=lambda i: keys[i])
        return [headers[i][0] for i in order]

    missing = [p for (p, ds) in headers if ds.get("InstanceNumber") is None]
    if missing:
        raise InconsistentScanError(
            f"{missing[0]}: cannot order the DICOM slices: this file has neither "
            "ImagePositionPatient/ImageOrientationPatient nor InstanceNumber",
            path=missing[0],
        )
    logger.debug("%s: DICOM position missing, ordering by InstanceNumber", headers[0][0].parent)
    order = sorted(range(len(headers)), key=lambda i: _instance(headers[i][1]))
    return [headers[i][0] for i in order]


def _instance(ds: Any) -> int:
    value = ds.get("InstanceNumber")
    return 0 if value is None or value == "" else int(value)


def read_dicom(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read one DICOM slice in Hounsfield units (or the modality's rescaled units).

    Stored values are mapped with ``RescaleSlope`` and ``RescaleIntercept`` (defaults 1 and
    0), as the DICOM modality LUT defines.

    Args:
        path: A single-frame, single-sample DICOM file.
        max_pixels: Largest ``Rows x Columns`` accepted; checked before decoding.

    Returns:
        A float32 array.

    Shape:
        ``(Rows, Columns)``.

    Raises:
        CorruptSliceError: If the file or its pixel data cannot be decoded.
        ImageTooLargeError: If the slice declares more than ``max_pixels`` pixels.
        UnsupportedFormatError: For multi-frame or colour DICOM.
        MissingDependencyError: If pydicom is not installed.
    """
    pydicom = _require_pydicom()
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read as DICOM: {error}", path=path
        ) from error
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows * cols * frames > max_pixels:
        raise ImageTooLargeError(
            f"{os.fspath(path)}: declares {cols}x{rows} pixels x {frames} frames, more than "
            f"the limit of {max_pixels} pixels; rejected before decoding",
            path=path,
        )
    if frames > 1 or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise UnsupportedFormatError(
            f"{os.fspath(path)}: only single-frame grayscale DICOM slices are supported "
            f"(NumberOfFrames={frames}, SamplesPerPixel={ds.get('SamplesPerPixel')})",
            path=path,
        )
    if "PixelData" not in ds:
        raise CorruptSliceError(f"{os.fspath(path)}: DICOM file has no pixel data", path=path)
    try:
        stored = ds.pixel_array
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot decode the DICOM pixel data: {error}", path=path
        ) from error
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    out = stored.astype(np.float32)
    if slope != 1.0:
        out *= np.float32(slope)
    if intercept != 0.0:
        out += np.float32(intercept)
    return out


# ----------------------------------------------------------------------------------------
# NIfTI


def _require_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as error:
        raise MissingDependencyError(_NIFTI_HINT) from error
    return nibabel


def _load_nifti(path: Path) -> Any:
    nibabel = _require_nibabel()
    try:
        img = nibabel.load(os.fspath(path))
    except Exception as error:
        raise CorruptSliceError(f"{os.fspath(path)}: cannot read as NIfTI: {error}") from error
    shape = img.shape
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
        shape = img.shape
    if len(shape) != 3:
        raise UnsupportedFormatError(
            f"{os.fspath(path)}: NIfTI volume of shape {tuple(shape)}; expected 3 dimensions",
            path=path,
        )
    return img


def _nifti_length(path: Path) -> int:
    nibabel = _require_nibabel()
    img = _load_nifti(path)
    # The axial axis is the one that ends up last in the closest canonical (RAS+) orientation.
    axcodes = nibabel.aff2axcodes(img.affine)
    axis = next(i for i, code in enumerate(axcodes) if code in ("S", "I"))
    return int(img.shape[axis])


def read_nifti(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a NIfTI volume as axial slices in radiological display orientation.

    The volume is reoriented to the closest canonical (RAS+) orientation, then each axial
    slice is laid out like an axial DICOM image: rows run anterior to posterior, columns run
    from the patient's right to left. Slices run inferior to superior, as DICOM slices sorted
    by position do. Values are the scaled data (``scl_slope``, ``scl_inter`` applied), in
    Hounsfield units for CT.

    Args:
        path: A ``.nii`` or ``.nii.gz`` file with a 3D volume.
        max_pixels: Largest axial slice accepted, in pixels; checked before reading data.

    Returns:
        A float32 array.

    Shape:
        ``(S, H, W)``: axial slices, anterior-posterior rows, right-left columns.

    Raises:
        CorruptSliceError: If the file cannot be read.
        ImageTooLargeError: If an axial slice has more than ``max_pixels`` pixels.
        UnsupportedFormatError: If the volume is not 3D.
        MissingDependencyError: If nibabel is not installed.
    """
    nibabel = _require_nibabel()
    img = _load_nifti(Path(path))
    canonical = nibabel.as_closest_canonical(img)
    x, y, _ = canonical.shape
    if x * y > max_pixels:
        raise ImageTooLargeError(
            f"{os.fspath(path)}: axial slices of {x}x{y} pixels exceed the limit of {max_pixels}",
            path=path,
        )
    try:
        data = np.asarray(canonical.get_fdata(dtype=np.float32))
    except Exception as error:
        raise CorruptSliceError(f"{os.fspath(path)}: cannot read the NIfTI data: {error}") from (
            error
        )
    # In RAS+ data, x grows toward the patient's right, y toward anterior, z toward superior.
    # An axial DICOM image has row 0 anterior (largest y) and column 0 at the patient's right
    # (largest x), so both in-plane axes are reversed and (x, y) becomes (row=y, col=x).
    slices = data[::-1, ::-1, :].transpose(2, 1, 0)
    return np.ascontiguousarray(slices)


# ----------------------------------------------------------------------------------------
# Pillow images


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
    """
    try:
        # Pillow raises above twice its own MAX_IMAGE_PIXELS (translated below); between one
        # and two times it warns. No warnings.catch_warnings() here: it is not thread-safe
        # and this runs in decoding threads.
        im = Image.open(path)
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
            f"{os.fspath(path)}: {_describe_unknown(path)}: {error}", path=path
        ) from error
    width, height = im.size
    frames = int(getattr(im, "n_frames", 1) or 1)
    if width * height > max_pixels:
        im.close()
        raise ImageTooLargeError(
            f"{os.fspath(path)}: declares {width}x{height} = {width * height} pixels, more than "
            f"the limit of {max_pixels}; rejected before decoding (a decompression bomb?)",
            path=path,
        )
    if frames > 1:
        logger.debug("%s: %d frames, reading the first", path, frames)
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
        raise CorruptSliceError(f"{os.fspath(path)}: {_describe_unknown(path)}", path=path)
    with open_image(path, max_pixels) as im:
        try:
            im.load()
            norm = normalize_mode(im)
            return np.asarray(norm)
        except Resnet3DError:
            raise
        except Exception as error:
            raise CorruptSliceError(
                f"{os.fspath(path)}: cannot decode: {error}", path=path
            ) from error
