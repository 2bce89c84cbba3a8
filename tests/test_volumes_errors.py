"""Bad input to the volume builder: every case raises our own error naming the path."""

from __future__ import annotations

import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from resnet3d.data.readers import read_slice
from resnet3d.data.volumes import SliceStacker, load_scan
from resnet3d.errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    ImageTooLargeError,
    InconsistentScanError,
    MissingDependencyError,
    Resnet3DError,
)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width: int, height: int) -> bytes:
    """A valid gray PNG of zeros: tiny on disk, width x height bytes once decoded."""
    raw = (b"\x00" + b"\x00" * width) * height  # filter byte + row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def _scan(tmp_path: Path, n: int = 3, size: int = 8) -> Path:
    scan = tmp_path / "scan"
    scan.mkdir()
    for i in range(n):
        Image.fromarray(np.full((size, size), i, np.uint8)).save(scan / f"{i}.png")
    return scan


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if any Pillow image is decoded."""

    def refuse(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of {self.filename} were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def _assert_names(error: pytest.ExceptionInfo[Exception], path: Path) -> None:
    assert str(path) in str(error.value)
    assert isinstance(error.value, Resnet3DError)


def test_missing_scan(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_scan(tmp_path / "nope")
    _assert_names(info, tmp_path / "nope")
    assert isinstance(info.value, FileNotFoundError)


def test_scan_with_no_slices(tmp_path: Path) -> None:
    scan = tmp_path / "empty"
    scan.mkdir()
    (scan / "notes.txt").write_text("only junk")
    with pytest.raises(DatasetLayoutError, match="no slices") as info:
        load_scan(scan)
    _assert_names(info, scan)


def test_zero_byte_slice(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    (scan / "1.png").write_bytes(b"")
    with pytest.raises(CorruptSliceError, match="0 bytes") as info:
        load_scan(scan, depth=3)
    _assert_names(info, scan / "1.png")


def test_truncated_slice(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    noise = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(noise).save(scan / "2.png")
    data = (scan / "2.png").read_bytes()
    (scan / "2.png").write_bytes(data[: len(data) // 2])  # cut inside the pixel data
    with pytest.raises(CorruptSliceError) as info:
        load_scan(scan, depth=3)
    _assert_names(info, scan / "2.png")
    with pytest.raises(CorruptSliceError):
        read_slice(scan / "2.png")


def test_garbage_with_png_header(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    (scan / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 10)
    with pytest.raises(CorruptSliceError) as info:
        load_scan(scan, depth=3)
    _assert_names(info, scan / "0.png")


def test_decompression_bomb_rejected_before_decoding(tmp_path: Path, no_decoding: None) -> None:
    scan = _scan(tmp_path, n=1)
    bomb = scan / "0.png"
    bomb.write_bytes(_bomb_png(3000, 3000))
    assert bomb.stat().st_size < 100_000  # 9 MB of pixels in a few KB
    with pytest.raises(ImageTooLargeError, match="before decoding") as info:
        SliceStacker(depth=1, max_pixels=1_000_000).load(scan)
    _assert_names(info, bomb)
    assert isinstance(info.value, CorruptSliceError)


def test_pillow_own_bomb_limit_becomes_our_error(tmp_path: Path, no_decoding: None) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    bomb = scan / "0.png"
    # 40000 x 40000 exceeds twice Pillow's MAX_IMAGE_PIXELS: Pillow refuses at open
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 0, 0, 0, 0)
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b""))
    with pytest.raises(ImageTooLargeError) as info:
        load_scan(scan, depth=1)
    _assert_names(info, bomb)


def test_dicom_bomb_rejected_before_pixel_decoding(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("dicomdirtests/98892001/CT5N/2392"))
    ds.Rows = ds.Columns = 60000
    scan = tmp_path / "scan"
    scan.mkdir()
    ds.save_as(scan / "big.dcm")
    with pytest.raises(ImageTooLargeError) as info:
        load_scan(scan, depth=1)
    _assert_names(info, scan / "big.dcm")


def test_slices_of_different_sizes(tmp_path: Path) -> None:
    scan = _scan(tmp_path, n=3, size=8)
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(scan / "1.png")
    for size in (None, (16, 16)):  # an error whether or not slices are resized
        with pytest.raises(InconsistentScanError, match="9x8") as info:
            load_scan(scan, depth=3, size=size)
        _assert_names(info, scan / "1.png")


def test_nifti_not_3d(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), path)
    with pytest.raises(Resnet3DError) as info:
        load_scan(path)
    assert str(path) in str(info.value)


def test_missing_optional_dependency_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    scan = tmp_path / "scan"
    scan.mkdir()
    shutil.copy(get_testdata_file("dicomdirtests/98892001/CT5N/2392"), scan / "a.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)  # import pydicom -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "resnet3d\[dicom\]"'):
        load_scan(scan, depth=1)
    nifti = tmp_path / "v.nii"
    nifti.write_bytes(b"\x00" * 352)
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "resnet3d\[nifti\]"') as info:
        load_scan(nifti)
    assert isinstance(info.value, ImportError)


def test_not_a_scan_file(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(path)
    with pytest.raises(DatasetLayoutError, match="folder of slices or a NIfTI") as info:
        load_scan(path)
    _assert_names(info, path)
