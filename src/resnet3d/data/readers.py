"""Finding, ordering and decoding the slices of one CT scan.

A scan is either a folder of 2D slice files (PNG, JPEG, TIFF, BMP, WebP or DICOM), a single
NIfTI volume, or a video file whose frames are its slices (read by :mod:`resnet3d.data.video`).
This module knows how to

* list a folder's slices: junk is skipped by name, every remaining file is recognised by its
  content (so a JPEG named ``.png`` still reads), image slices are put in natural order of
  their file names and DICOM slices in order of position along the slice normal;
* validate a scan from its headers alone (:func:`validate_scan`): every slice one size, one
  bit depth and one frame, each slice number once, no dangling links;
* refuse images and volumes that declare more than the size limits (:func:`check_scan_size`,
  :func:`size_limits`) from their headers, before any pixel is read or allocated;
* decode one slice to a numpy array without losing bit depth.

Intensity mapping, resizing and stacking live in :mod:`resnet3d.data.volumes`. pydicom and nibabel
are optional and imported on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    ImageTooLargeError,
    InconsistentScanError,
    MissingDependencyError,
    Resnet3DError,
    UnsupportedFormatError,
)
from .files import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_VOXELS,
    MAX_BYTES_ENV,
    MAX_VOXELS_ENV,
    SLICE_SUFFIXES,
    VIDEO_SUFFIXES,
    ScanFiles,
    ScanHeader,
    SliceKind,
    is_junk_name,
    is_nifti_name,
    is_video_name,
    natural_key,
    refuse_pixels,
    refuse_size,
    size_limits,
)
from .video import video_scan  # PyAV itself is imported only when a video is read

# The names of files.py that were defined here before: ``readers.ScanFiles`` keeps working.
__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_VOXELS",
    "MAX_BYTES_ENV",
    "MAX_VOXELS_ENV",
    "VIDEO_SUFFIXES",
    "ScanFiles",
    "ScanHeader",
    "check_scan_size",
    "decoded_image",
    "is_junk_name",
    "is_video_name",
    "list_slices",
    "natural_key",
    "normalize_mode",
    "open_image",
    "order_dicom",
    "read_dicom",
    "read_nifti",
    "read_slice",
    "scan_files",
    "size_limits",
    "sniff",
    "validate_scan",
]

logger = logging.getLogger(__name__)


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


# ----------------------------------------------------------------------------------------
# Size limits: checked from headers, before any pixel is read or allocated


# ----------------------------------------------------------------------------------------
# Scans: listing and validation


def _dangling(entry: os.DirEntry[str]) -> bool:
    """A symbolic link that would be a slice (or NIfTI) by its name but leads to no file."""
    if not entry.is_symlink() or entry.is_file() or entry.is_dir():
        return False
    return not is_junk_name(entry.name) or (
        is_nifti_name(entry.name) and not entry.name.startswith(".")
    )


def _list_files(root: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(root) as listing:
            entries = list(listing)
    except OSError as error:
        raise DatasetLayoutError(f"{os.fspath(root)}: cannot list: {error}", path=root) from error
    for entry in entries:
        if _dangling(entry):
            try:
                target = os.readlink(entry.path)
            except OSError:  # pragma: no cover - raced with deletion
                target = "?"
            raise CorruptSliceError(
                f"{entry.path}: slice is a symbolic link to {target!r}, which is not a file "
                "(a dangling link); restore the file or remove the link",
                path=entry.path,
            )
    return [e for e in entries if e.is_file()]


def _classify(paths: Sequence[Path], root: Path) -> tuple[SliceKind, list[Path]]:
    """Sniff every candidate; the scan's kind and its files (one kind per scan)."""
    kinds: dict[SliceKind, list[Path]] = {"image": [], "dicom": []}
    for path in paths:
        kind = sniff(path)
        if kind is None:
            raise CorruptSliceError(f"{os.fspath(path)}: {_describe_unknown(path)}", path=path)
        kinds[kind].append(path)
    if kinds["image"] and kinds["dicom"]:
        raise InconsistentScanError(
            f"{os.fspath(root)}: mixes {len(kinds['dicom'])} DICOM and "
            f"{len(kinds['image'])} image slices (e.g. {kinds['dicom'][0].name!r} and "
            f"{kinds['image'][0].name!r}); keep one kind per scan folder",
            path=root,
        )
    return ("dicom", kinds["dicom"]) if kinds["dicom"] else ("image", kinds["image"])


def scan_files(path: str | os.PathLike[str]) -> ScanFiles:
    """Find, order and validate the slices of one scan, reading headers only.

    ``path`` is a folder of slice files, a NIfTI file (``.nii``/``.nii.gz``) or a video file
    (:data:`VIDEO_SUFFIXES`; needs PyAV, see :func:`resnet3d.data.video.video_scan`). A folder that
    holds nothing but one NIfTI file is read as that volume. The result has passed
    :func:`validate_scan`, so every path that lists a scan (indexing, reading, the cache
    build, data sets) applies the same rules.

    Args:
        path: The scan.

    Returns:
        The scan's files in slice order (see :func:`list_slices` for the rules) with their
        :class:`ScanHeader`. A folder without slices gives ``n_slices == 0``; callers decide
        whether that is an error.

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        CorruptSliceError: If a file that should be a slice is empty, not an image, or a
            dangling symbolic link, or a header cannot be read.
        ImageTooLargeError: If Pillow itself refuses a slice's declared size.
        InconsistentScanError: If the folder mixes DICOM and image slices, DICOM series or
            orientations, slice sizes or bit depths, or holds one slice number twice.
        UnsupportedFormatError: For a multi-page, animated or multi-frame slice file.
        DatasetLayoutError: If ``path`` is a file that is neither a NIfTI volume nor a video.
        MissingDependencyError: If pydicom, nibabel or PyAV is needed and not installed.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetNotFoundError(f"scan {os.fspath(root)!r} does not exist", path=root)
    if root.is_file():
        if is_nifti_name(root.name):
            return _nifti_scan(root)
        if is_video_name(root.name):
            return video_scan(root)
        raise DatasetLayoutError(
            f"{os.fspath(root)}: a scan is a folder of slices or a NIfTI file (.nii, .nii.gz), "
            f"or a video file ({', '.join(VIDEO_SUFFIXES)}); got another file",
            path=root,
        )
    entries = _list_files(root)
    niftis = [e for e in entries if is_nifti_name(e.name) and not e.name.startswith(".")]
    candidates = [e for e in entries if not is_junk_name(e.name)]
    if niftis and not candidates:
        if len(niftis) > 1:
            names = sorted(e.name for e in niftis)
            raise InconsistentScanError(
                f"{os.fspath(root)}: holds {len(niftis)} NIfTI volumes {names}; "
                "one scan is one volume",
                path=root,
            )
        return _nifti_scan(Path(niftis[0].path))
    kind, paths = _classify([Path(e.path) for e in candidates], root)
    if not paths:
        return ScanFiles(root, "image", (), 0)
    by_name = sorted(paths, key=lambda p: natural_key(p.name))
    if kind == "dicom":
        # Validated in name order (messages do not depend on the listing), then ordered.
        headers = _dicom_headers(by_name)
        header = _dicom_scan_header(headers)
        ordered = tuple(p for p, _ in _order_dicom_headers(headers))
        return ScanFiles(root, "dicom", ordered, len(ordered), header)
    _refuse_repeated_numbers(root, by_name)
    return ScanFiles(root, "image", tuple(by_name), len(by_name), _image_scan_header(by_name))


def validate_scan(files: ScanFiles) -> ScanFiles:
    """Check a scan from its headers alone: the one set of rules every read path applies.

    No pixel data is read. The rules:

    * every slice has one size (``InconsistentScanError`` naming the odd slice and the
      first), whether or not slices are resized later;
    * every image slice has one bit depth class: 8-bit (gray or colour, passed through),
      16/32-bit integer (windowed, or ``x / 65535``) or float (clipped). 16-bit PNG and
      32-bit TIFF slices are scaled identically and may be mixed; 8-bit with deeper slices
      may not (``InconsistentScanError`` naming both files);
    * one slice per file: multi-page TIFF, animated PNG/WebP and multi-frame DICOM files are
      refused (``UnsupportedFormatError``) instead of keeping their first frame;
    * DICOM slices are single-sample (gray); a NIfTI volume is 3D (or 4D with one frame)
      with integer or float voxels.

    :func:`scan_files` applies it while listing, so its result is already validated; call
    this on a :class:`ScanFiles` built by hand. Listing adds the rules that come from file
    names: a slice number given twice (``01.png`` beside ``1.png``, ``1.jpg`` or ``1.PNG``)
    and dangling symbolic links are errors naming the files. The size limits are separate
    (:func:`check_scan_size`), because they depend on the reader's settings.

    Args:
        files: The scan's files in slice order.

    Returns:
        ``files`` with its :class:`ScanHeader` (unchanged for a scan without slices).

    Raises:
        CorruptSliceError: If a header cannot be read.
        InconsistentScanError, UnsupportedFormatError: As listed above.
        MissingDependencyError: If pydicom or nibabel is needed and not installed.
    """
    if files.kind == "nifti":
        return dataclasses.replace(files, header=_nifti_header(files.path)[1])
    if files.kind == "video":
        return dataclasses.replace(files, header=video_scan(files.path).header)
    if not files.slices:
        return files
    if files.kind == "dicom":
        header = _dicom_scan_header(_dicom_headers(files.slices))
    else:
        header = _image_scan_header(files.slices)
    return dataclasses.replace(files, header=header)


def check_scan_size(
    files: ScanFiles,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_voxels: int | None = None,
    max_bytes: int | None = None,
) -> None:
    """Refuse a scan whose headers declare more than the size limits; reads nothing.

    Args:
        files: A validated scan (:func:`scan_files` output).
        max_pixels: Largest slice, in pixels.
        max_voxels: Largest scan, in voxels (see :func:`size_limits`).
        max_bytes: Largest scan, in bytes as stored (see :func:`size_limits`).

    Raises:
        ImageTooLargeError: Naming the file, the declared size and the limit.
        ValueError: If ``files`` has not been validated, or a limit is invalid.
    """
    header = files.header
    if header is None:
        raise ValueError(f"{files.path}: check_scan_size needs a validated scan (validate_scan)")
    _, height, width = header.shape
    refuse_pixels(files.slices[0] if files.slices else files.path, width, height, max_pixels)
    refuse_size(files.path, header.text, header.voxels, header.nbytes, max_voxels, max_bytes)


def list_slices(scan_dir: str | os.PathLike[str]) -> list[Path]:
    """List the slice files of one scan folder in slice order.

    * Junk is skipped by name: dotfiles, ``._*``, ``__MACOSX``, ``Thumbs.db``, ``DICOMDIR``
      and files with a non-image extension (see :func:`is_junk_name`); subfolders are ignored.
    * Every other file is recognised by content, not extension, so PNG and JPEG slices can be
      mixed; a file that is empty or not an image raises :class:`CorruptSliceError`, and so
      does a symbolic link that leads to no file.
    * Image slices are in natural order of file name (``2.png`` before ``10.png``, with or
      without zero padding), whatever order the file system lists them in; two names for one
      slice number (``01.png`` and ``1.png``) raise :class:`InconsistentScanError`.
    * DICOM slices are in order of position along the slice normal
      (``ImagePositionPatient`` projected on the cross product of the two
      ``ImageOrientationPatient`` directions, ascending), falling back to ``InstanceNumber``;
      never by file name.
    * The scan is validated from its headers (:func:`validate_scan`).

    Args:
        scan_dir: The scan folder.

    Returns:
        The slice paths in order (empty if the folder holds no slices). For a NIfTI scan,
        a one-element list with the volume file.

    Raises:
        DatasetNotFoundError: If ``scan_dir`` does not exist.
        CorruptSliceError: If a candidate slice is empty, not an image or a dangling link.
        InconsistentScanError: If the folder mixes kinds, DICOM series or orientations, sizes
            or bit depths, or names a slice number twice.
        UnsupportedFormatError: For a multi-page or multi-frame slice file.
        MissingDependencyError: If the folder holds DICOM and pydicom is not installed.
    """
    files = scan_files(scan_dir)
    if files.kind == "nifti":
        return [files.path]
    return list(files.slices)


# ----------------------------------------------------------------------------------------
# Per-slice headers and the consistency rules


@dataclass(frozen=True)
class _SliceHeader:
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


def _multi_frame_error(
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


def _consistent(headers: Sequence[_SliceHeader]) -> _SliceHeader:
    """Check one size, one bit-depth class and one frame per file; return the first header."""
    first = headers[0]
    for h in headers:
        if h.frames > 1:
            raise _multi_frame_error(h.path, h.fmt, h.frames, h.width, h.height)
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


def _slice_number(name: str) -> tuple[str | int, ...]:
    """A name's natural key without an image extension: equal for one slice number."""
    stem, suffix = os.path.splitext(name)
    if suffix.casefold() not in SLICE_SUFFIXES:
        stem = name
    return natural_key(stem)[0]


def _refuse_repeated_numbers(root: Path, images: Sequence[Path]) -> None:
    seen: dict[tuple[str | int, ...], Path] = {}
    for path in images:
        key = _slice_number(path.name)
        other = seen.setdefault(key, path)
        if other is not path:
            raise InconsistentScanError(
                f"{os.fspath(root)}: slices {other.name!r} and {path.name!r} have the same "
                "slice number (their names differ only in zero padding, letter case or image "
                "extension); a scan holds each slice once: remove or rename one",
                path=root,
            )


def _mode_domain(mode: str) -> tuple[str, int] | None:
    """(domain, bytes per pixel) of a Pillow mode, or None if it is not supported."""
    if mode.startswith("I;16"):
        return "int", 2
    if mode in ("I", "F"):
        return ("int" if mode == "I" else "float"), 4
    if mode in _MODE_TO_8BIT or mode in ("P", "PA"):
        return "u8", Image.getmodebands(mode)
    return None


def _image_slice_header(path: Path) -> _SliceHeader:
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
    return _SliceHeader(path, width, height, frames, domain[0], domain[1], fmt, mode)


def _image_scan_header(images: Sequence[Path]) -> ScanHeader:
    headers = [_image_slice_header(p) for p in images]
    first = _consistent(headers)
    itemsize = max(h.itemsize for h in headers)
    text = (
        f"{len(headers)} image slices of {first.width} x {first.height} "
        f"({first.what}, {itemsize} bytes per pixel)"
    )
    return ScanHeader((len(headers), first.height, first.width), itemsize, first.domain, text)


# ----------------------------------------------------------------------------------------
# DICOM


def _require_pydicom() -> Any:
    try:
        import pydicom
    except ImportError as error:
        raise MissingDependencyError(_DICOM_HINT) from error
    return pydicom


_DICOM_HEADER_TAGS = [
    "SeriesInstanceUID",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "SamplesPerPixel",
]


def _read_dicom_header(path: str | os.PathLike[str], tags: list[str] | None = None) -> Any:
    pydicom = _require_pydicom()
    try:
        return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    except Exception as error:  # pydicom raises many types for damaged headers
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read the DICOM header: {error}", path=path
        ) from error


def _dicom_headers(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Any]]:
    return [(Path(p), _read_dicom_header(p, _DICOM_HEADER_TAGS)) for p in paths]


def _dicom_slice_header(path: Path, ds: Any) -> _SliceHeader:
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (TypeError, ValueError) as error:
        raise CorruptSliceError(f"{path}: unreadable DICOM image size: {error}", path=path) from (
            error
        )
    if rows < 1 or cols < 1:
        raise CorruptSliceError(
            f"{path}: DICOM file declares no image (Rows={rows}, Columns={cols})", path=path
        )
    if samples != 1:
        raise UnsupportedFormatError(
            f"{path}: only single-frame grayscale DICOM slices are supported "
            f"(NumberOfFrames={frames}, SamplesPerPixel={samples})",
            path=path,
        )
    itemsize = -(-bits // 8)
    return _SliceHeader(path, cols, rows, frames, "hu", itemsize, "DICOM", f"{bits}-bit")


def _dicom_scan_header(headers: Sequence[tuple[Path, Any]]) -> ScanHeader:
    slices = [_dicom_slice_header(path, ds) for path, ds in headers]
    first = _consistent(slices)
    itemsize = max(h.itemsize for h in slices)
    text = (
        f"a DICOM series of {len(slices)} slices of {first.width} x {first.height} "
        f"({8 * itemsize}-bit)"
    )
    return ScanHeader((len(slices), first.height, first.width), itemsize, "hu", text)


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
    return [p for p, _ in _order_dicom_headers(_dicom_headers(paths))]


def _order_dicom_headers(headers: list[tuple[Path, Any]]) -> list[tuple[Path, Any]]:
    if len(headers) <= 1:
        return headers

    series = Counter(str(ds.get("SeriesInstanceUID", "")) for _, ds in headers)
    if len(series) > 1:
        listing = ", ".join(f"{uid or '<none>'} ({n} files)" for uid, n in series.most_common())
        folder = os.fspath(headers[0][0].parent)
        raise InconsistentScanError(
            f"{folder}: holds {len(series)} DICOM series: {listing}; "
            "put each series in its own folder",
            path=folder,
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
        return [headers[i] for i in order]

    missing = [p for (p, ds) in headers if ds.get("InstanceNumber") is None]
    if missing:
        raise InconsistentScanError(
            f"{missing[0]}: cannot order the DICOM slices: this file has neither "
            "ImagePositionPatient/ImageOrientationPatient nor InstanceNumber",
            path=missing[0],
        )
    logger.debug("%s: DICOM position missing, ordering by InstanceNumber", headers[0][0].parent)
    order = sorted(range(len(headers)), key=lambda i: _instance(headers[i][1]))
    return [headers[i] for i in order]


def _instance(ds: Any) -> int:
    value = ds.get("InstanceNumber")
    return 0 if value is None or value == "" else int(value)


def read_dicom(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_voxels: int | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read one DICOM slice in Hounsfield units (or the modality's rescaled units).

    Stored values are mapped with ``RescaleSlope`` and ``RescaleIntercept`` (defaults 1 and
    0), as the DICOM modality LUT defines. The header is read first, without the pixel data,
    and checked against the limits; the pixel data is read only if it passes.

    Args:
        path: A single-frame, single-sample DICOM file.
        max_pixels: Largest ``Rows x Columns x NumberOfFrames`` accepted.
        max_voxels: Largest ``Rows x Columns x NumberOfFrames`` as a volume (see
            :func:`size_limits`).
        max_bytes: Largest pixel data as declared (``BitsAllocated``), see
            :func:`size_limits`.

    Returns:
        A float32 array.

    Shape:
        ``(Rows, Columns)``.

    Raises:
        CorruptSliceError: If the file or its pixel data cannot be decoded.
        ImageTooLargeError: If the header declares more than a limit allows.
        UnsupportedFormatError: For multi-frame or colour DICOM.
        MissingDependencyError: If pydicom is not installed.
    """
    ds = _read_dicom_header(path)
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (TypeError, ValueError) as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: unreadable DICOM image size: {error}", path=path
        ) from error
    refuse_pixels(path, cols, rows, max_pixels, frames)
    voxels = frames * rows * cols
    what = f"{frames} frame(s) of {cols} x {rows} x {samples} sample(s) of {bits} bits"
    refuse_size(path, what, voxels, voxels * samples * -(-bits // 8), max_voxels, max_bytes)
    return _decode_dicom(path, max_pixels)


def _decode_dicom(path: str | os.PathLike[str], max_pixels: int) -> np.ndarray:
    """Read and decode a DICOM slice whose header was checked (by a scan or read_dicom)."""
    pydicom = _require_pydicom()
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read as DICOM: {error}", path=path
        ) from error
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    # Checked again on what was read: the file may have changed since its header was checked.
    refuse_pixels(path, cols, rows, max_pixels, frames)
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


def _nifti_header(path: Path) -> tuple[Any, ScanHeader, np.ndarray]:
    """The image (data not read), its header summary and its orientation to RAS+."""
    nibabel = _require_nibabel()
    try:
        img = nibabel.load(os.fspath(path))
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read as NIfTI: {error}", path=path
        ) from error
    shape = tuple(int(n) for n in img.shape)
    # (X, Y, Z, 1) is a 3D volume saved as one time point. It is never sliced here:
    # nibabel's slicer reads the whole data to take the first frame.
    if not (len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)):
        raise UnsupportedFormatError(
            f"{os.fspath(path)}: NIfTI volume of shape {shape}; expected 3 dimensions",
            path=path,
        )
    dtype = np.dtype(img.header.get_data_dtype())
    if dtype.kind not in "biuf":
        raise UnsupportedFormatError(
            f"{os.fspath(path)}: NIfTI voxels of type {dtype} are not supported; expected "
            "integer or floating point voxels",
            path=path,
        )
    ornt = nibabel.orientations.io_orientation(img.affine)
    if np.isnan(ornt).any():
        raise CorruptSliceError(
            f"{os.fspath(path)}: the NIfTI affine does not map the axes to patient directions",
            path=path,
        )
    # Canonical (RAS+) axis ornt[j, 0] is the file's axis j.
    ras = [0, 0, 0]
    for axis in range(3):
        ras[int(ornt[axis, 0])] = shape[axis]
    dims = " x ".join(str(n) for n in shape)
    header = ScanHeader(
        (ras[2], ras[1], ras[0]), dtype.itemsize, "hu", f"a NIfTI volume of {dims} {dtype}"
    )
    return img, header, ornt


def _nifti_scan(path: Path) -> ScanFiles:
    header = _nifti_header(path)[1]
    return ScanFiles(path, "nifti", (), header.shape[0], header)


def read_nifti(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_voxels: int | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Read a NIfTI volume as axial slices in radiological display orientation.

    The header is checked against the limits before any voxel is read (and before
    reorientation, which reads everything). The volume is then reoriented to the closest
    canonical (RAS+) orientation, and each axial slice is laid out like an axial DICOM image:
    rows run anterior to posterior, columns run from the patient's right to left. Slices run
    inferior to superior, as DICOM slices sorted by position do. Values are the scaled data
    (``scl_slope``, ``scl_inter`` applied), in Hounsfield units for CT.

    Args:
        path: A ``.nii`` or ``.nii.gz`` file with a 3D volume (or 4D with one time point).
        max_pixels: Largest axial slice accepted, in pixels.
        max_voxels: Largest volume accepted, in voxels (see :func:`size_limits`).
        max_bytes: Largest volume accepted, in bytes as stored (see :func:`size_limits`).

    Returns:
        A float32 array.

    Shape:
        ``(S, H, W)``: axial slices, anterior-posterior rows, right-left columns.

    Raises:
        CorruptSliceError: If the file cannot be read.
        ImageTooLargeError: If the header declares more than a limit allows.
        UnsupportedFormatError: If the volume is not 3D or its voxels are not numbers.
        MissingDependencyError: If nibabel is not installed.
    """
    nibabel = _require_nibabel()
    img, header, ornt = _nifti_header(Path(path))
    _, height, width = header.shape
    refuse_pixels(path, width, height, max_pixels)
    refuse_size(path, header.text, header.voxels, header.nbytes, max_voxels, max_bytes)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read the NIfTI data: {error}", path=path
        ) from error
    if data.ndim == 4:
        data = data[..., 0]
    # What nibabel.as_closest_canonical does, on the data already read and checked.
    data = nibabel.orientations.apply_orientation(data, ornt)
    # In RAS+ data, x grows toward the patient's right, y toward anterior, z toward superior.
    # An axial DICOM image has row 0 anterior (largest y) and column 0 at the patient's right
    # (largest x), so both in-plane axes are reversed and (x, y) becomes (row=y, col=x).
    slices = data[::-1, ::-1, :].transpose(2, 1, 0)
    return np.ascontiguousarray(slices)


# ----------------------------------------------------------------------------------------
# Pillow images


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
            f"{os.fspath(path)}: {_describe_unknown(path)}: {error}", path=path
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
            raise _multi_frame_error(path, im.format or "image", frames, width, height)
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
        raise CorruptSliceError(f"{os.fspath(path)}: {_describe_unknown(path)}", path=path)
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
