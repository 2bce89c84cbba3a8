"""DICOM slices (pydicom, optional): headers, ordering along the slice normal, Hounsfield units."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    CorruptSliceError,
    InconsistentScanError,
    MissingDependencyError,
    UnsupportedFormatError,
)
from .files import (
    DEFAULT_MAX_PIXELS,
    ScanHeader,
    refuse_pixels,
    refuse_size,
)
from .slice_headers import SliceHeader, consistent

__all__ = [
    "order_dicom",
    "read_dicom",
]

logger = logging.getLogger(__name__)


_DICOM_HINT = 'reading DICOM needs pydicom: pip install "resnet3d[dicom]"'


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


def dicom_headers(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, Any]]:
    return [(Path(p), _read_dicom_header(p, _DICOM_HEADER_TAGS)) for p in paths]


def _declared_size(path: str | os.PathLike[str], ds: Any) -> tuple[int, int, int, int, int]:
    """Rows, columns, frames, samples per pixel and bits allocated, as the header declares."""
    try:
        return (
            int(ds.get("Rows", 0) or 0),
            int(ds.get("Columns", 0) or 0),
            int(ds.get("NumberOfFrames", 1) or 1),
            int(ds.get("SamplesPerPixel", 1) or 1),
            int(ds.get("BitsAllocated", 16) or 16),
        )
    except (TypeError, ValueError) as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: unreadable DICOM image size: {error}", path=path
        ) from error


def _dicom_slice_header(path: Path, ds: Any) -> SliceHeader:
    rows, cols, frames, samples, bits = _declared_size(path, ds)
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
    return SliceHeader(path, cols, rows, frames, "hu", itemsize, "DICOM", f"{bits}-bit")


def dicom_scan_header(headers: Sequence[tuple[Path, Any]]) -> ScanHeader:
    slices = [_dicom_slice_header(path, ds) for path, ds in headers]
    first = consistent(slices)
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
    return [p for p, _ in order_dicom_headers(dicom_headers(paths))]


def order_dicom_headers(headers: list[tuple[Path, Any]]) -> list[tuple[Path, Any]]:
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
    rows, cols, frames, samples, bits = _declared_size(path, ds)
    refuse_pixels(path, cols, rows, max_pixels, frames)
    voxels = frames * rows * cols
    what = f"{frames} frame(s) of {cols} x {rows} x {samples} sample(s) of {bits} bits"
    refuse_size(path, what, voxels, voxels * samples * -(-bits // 8), max_voxels, max_bytes)
    return decode_dicom(path, max_pixels)


def decode_dicom(path: str | os.PathLike[str], max_pixels: int) -> np.ndarray:
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
