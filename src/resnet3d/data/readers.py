"""Finding, ordering and validating the slices of one CT scan.

A scan is either a folder of 2D slice files (PNG, JPEG, TIFF, BMP, WebP or DICOM), a single
NIfTI volume, or a video file whose frames are its slices (read by :mod:`resnet3d.data.video`).
This module lists a folder's slices (junk skipped by name, files recognised by content, image
slices in natural order, DICOM by position along the slice normal), validates a scan from its
headers alone (:func:`validate_scan`), and refuses scans above the size limits
(:func:`check_scan_size`) before any pixel is read. The decoders live in
:mod:`resnet3d.data.images`, :mod:`resnet3d.data.dicom` and :mod:`resnet3d.data.nifti`; this
module re-exports them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    InconsistentScanError,
)
from .dicom import dicom_headers, dicom_scan_header, order_dicom, order_dicom_headers, read_dicom
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
from .images import (
    decoded_image,
    describe_unknown,
    image_scan_header,
    normalize_mode,
    open_image,
    read_slice,
    sniff,
)
from .nifti import nifti_header, nifti_scan, read_nifti
from .video import video_scan  # PyAV itself is imported only when a video is read

# Besides its own four functions, this module re-exports the readers' names, the public
# face of reading one scan (and where they were defined before the decoders got modules).
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


def classify(paths: Sequence[Path], root: Path) -> tuple[SliceKind, list[Path]]:
    """Sniff every candidate; the scan's kind and its files (one kind per scan)."""
    kinds: dict[SliceKind, list[Path]] = {"image": [], "dicom": []}
    for path in paths:
        kind = sniff(path)
        if kind is None:
            raise CorruptSliceError(f"{os.fspath(path)}: {describe_unknown(path)}", path=path)
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
            return nifti_scan(root)
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
        return nifti_scan(Path(niftis[0].path))
    kind, paths = classify([Path(e.path) for e in candidates], root)
    if not paths:
        return ScanFiles(root, "image", (), 0)
    by_name = sorted(paths, key=lambda p: natural_key(p.name))
    if kind == "dicom":
        # Validated in name order (messages do not depend on the listing), then ordered.
        headers = dicom_headers(by_name)
        header = dicom_scan_header(headers)
        ordered = tuple(p for p, _ in order_dicom_headers(headers))
        return ScanFiles(root, "dicom", ordered, len(ordered), header)
    _refuse_repeated_numbers(root, by_name)
    return ScanFiles(root, "image", tuple(by_name), len(by_name), image_scan_header(by_name))


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
        return dataclasses.replace(files, header=nifti_header(files.path)[1])
    if files.kind == "video":
        return dataclasses.replace(files, header=video_scan(files.path).header)
    if not files.slices:
        return files
    if files.kind == "dicom":
        header = dicom_scan_header(dicom_headers(files.slices))
    else:
        header = image_scan_header(files.slices)
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
