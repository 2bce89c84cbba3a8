"""NIfTI volumes (nibabel, optional): the header, reorientation to slices, the voxels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    CorruptSliceError,
    MissingDependencyError,
    UnsupportedFormatError,
)
from .files import (
    DEFAULT_MAX_PIXELS,
    ScanFiles,
    ScanHeader,
    refuse_pixels,
    refuse_size,
)

__all__ = [
    "read_nifti",
]


_NIFTI_HINT = 'reading NIfTI needs nibabel: pip install "resnet3d[nifti]"'


def _require_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as error:
        raise MissingDependencyError(_NIFTI_HINT) from error
    return nibabel


def nifti_header(path: Path) -> tuple[Any, ScanHeader, np.ndarray]:
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


def nifti_scan(path: Path) -> ScanFiles:
    header = nifti_header(path)[1]
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
    img, header, ornt = nifti_header(Path(path))
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
