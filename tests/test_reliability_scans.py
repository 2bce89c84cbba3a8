"""One scan, one set of rules: a bad scan gets the same error on every read path.

Each test builds one bad scan of tiny 8 x 8 slices and checks that listing it, loading it,
reading one of its items from a ``VolumeDataset`` without a cache, indexing it and building a
cache of it all raise the same error, naming the files, from headers alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.test_volumes_errors import no_decoding  # noqa: F401 (a fixture)

from resnet3d.data import images, readers
from resnet3d.data.cache import build_cache
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex, ScanRecord
from resnet3d.data.readers import read_slice, scan_files
from resnet3d.data.slice_headers import SliceHeader
from resnet3d.data.volumes import SliceStacker
from resnet3d.errors import (
    CorruptSliceError,
    InconsistentScanError,
    Resnet3DError,
    UnsupportedFormatError,
)

SIZE = 8


def _gray(value: int, shape: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    return Image.fromarray(np.full(shape, value, dtype=np.uint8))


def _scan(root: Path, n: int = 4) -> Path:
    """``root/bad/1/s``: ``n`` 8-bit 8 x 8 gray PNG slices ``0.png`` ... (a class/patient/scan
    tree, so the index, the data set and the cache build can all read it)."""
    scan = root / "bad" / "1" / "s"
    scan.mkdir(parents=True)
    for i in range(n):
        _gray(10 * i).save(scan / f"{i}.png")
    return scan


def _errors_on_every_path(scan: Path, n_slices: int, tmp_path: Path) -> dict[str, Exception]:
    """The error each read path raises for ``scan``; every path must raise one."""
    stacker = SliceStacker(depth=2, size=None, threads=1)
    index = ScanIndex([ScanRecord("bad", 0, "1", "s", n_slices, scan)], ("bad",))
    paths = {
        "scan_files": lambda: scan_files(scan),
        "load_scan": lambda: stacker.load(scan),
        # item 0 holds slices 0 and 1 only: the scan as a whole is what is refused
        "dataset without cache": lambda: VolumeDataset(index, stacker)[0],
        "cache build": lambda: build_cache(index, tmp_path / "cache", stacker),
        "index": lambda: ScanIndex.from_ccii(scan.parents[2], classes=("bad",)),
    }
    errors: dict[str, Exception] = {}
    for name, run in paths.items():
        with pytest.raises(Resnet3DError) as info:
            run()
        errors[name] = info.value
    return errors


def _assert_one_error(errors: dict[str, Exception], kind: type[Exception], *names: str) -> str:
    """Same type and message everywhere (the index lists the scan's message); returns it."""
    message = str(errors["load_scan"])
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)
    for path, error in errors.items():
        if path == "index":
            # the strict index build lists every unusable scan with its message
            assert message in str(error), (path, str(error))
        else:
            assert type(error) is kind, (path, type(error))
            assert str(error) == message, (path, str(error))
    return message


def test_mixed_slice_sizes_rejected_without_cache(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    _gray(30, (SIZE, SIZE + 1)).save(scan / "3.png")  # 9 wide, in the second volume
    errors = _errors_on_every_path(scan, 4, tmp_path)
    message = _assert_one_error(errors, InconsistentScanError, str(scan / "3.png"), "'0.png'")
    assert "9x8 (WxH)" in message and "8x8" in message


def test_mixed_8bit_and_16bit_slices_rejected(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    Image.fromarray(np.full((SIZE, SIZE), 3000, np.uint16)).save(scan / "3.png")
    errors = _errors_on_every_path(scan, 4, tmp_path)
    message = _assert_one_error(errors, InconsistentScanError, str(scan / "3.png"), "'0.png'")
    assert "16/32-bit integer" in message and "8-bit" in message


def test_16bit_png_and_32bit_tiff_slices_scaled_identically(tmp_path: Path) -> None:
    values = np.arange(SIZE * SIZE, dtype=np.int32).reshape(SIZE, SIZE) * 1000
    scan = tmp_path / "scan"
    scan.mkdir()
    Image.fromarray(values.astype(np.uint16)).save(scan / "0.png")  # I;16
    Image.fromarray(values).save(scan / "1.tif")  # I (32-bit)
    assert scan_files(scan).header.domain == "int"  # type: ignore[union-attr]
    for window in (None, (20000.0, 40000.0)):
        out = SliceStacker(depth=2, size=None, channels=1, window=window).load(scan)
        np.testing.assert_array_equal(out[0, 0, 0], out[0, 0, 1])
    scaled = SliceStacker(depth=2, size=None, channels=1).load(scan)[0, 0, 1]
    np.testing.assert_allclose(scaled, values / 65535.0, rtol=0, atol=1e-7)


def test_duplicate_slice_numbers_01_and_1_rejected(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    _gray(99).save(scan / "01.png")  # beside 1.png: which one is slice 1?
    errors = _errors_on_every_path(scan, 5, tmp_path)
    _assert_one_error(errors, InconsistentScanError, str(scan), "'01.png'", "'1.png'")


def test_same_slice_number_as_png_and_jpeg_rejected(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    _gray(99).save(scan / "2.jpg", quality=100)
    errors = _errors_on_every_path(scan, 5, tmp_path)
    _assert_one_error(errors, InconsistentScanError, str(scan), "'2.jpg'", "'2.png'")


def test_dangling_symlink_slice_is_an_error(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    (scan / "4.png").symlink_to(tmp_path / "elsewhere" / "4.png")  # the target is gone
    errors = _errors_on_every_path(scan, 4, tmp_path)
    message = _assert_one_error(errors, CorruptSliceError, str(scan / "4.png"))
    assert "dangling" in message and "elsewhere" in message


def test_multipage_tiff_is_refused(tmp_path: Path) -> None:
    scan = _scan(tmp_path, n=3)
    pages = [_gray(1), _gray(2), _gray(3)]
    pages[0].save(scan / "3.tif", save_all=True, append_images=pages[1:])
    errors = _errors_on_every_path(scan, 4, tmp_path)
    message = _assert_one_error(errors, UnsupportedFormatError, str(scan / "3.tif"))
    assert "3 frames" in message
    with pytest.raises(UnsupportedFormatError, match="3 frames"):
        read_slice(scan / "3.tif")  # reading the file alone no longer keeps page 1


def test_animated_png_slice_is_refused(tmp_path: Path) -> None:
    scan = _scan(tmp_path, n=3)
    frames = [_gray(1), _gray(2)]
    frames[0].save(scan / "3.png", save_all=True, append_images=frames[1:])
    errors = _errors_on_every_path(scan, 4, tmp_path)
    message = _assert_one_error(errors, UnsupportedFormatError, str(scan / "3.png"))
    assert "2 frames" in message


def test_multiframe_dicom_slice_is_refused(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    scan = tmp_path / "bad" / "1" / "s"
    scan.mkdir(parents=True)
    for name in ("2062", "2392"):
        shutil.copy(get_testdata_file(f"dicomdirtests/98892001/CT5N/{name}"), scan / name)
    ds = pydicom.dcmread(scan / "2392")
    ds.NumberOfFrames = 3
    ds.save_as(scan / "2392")
    errors = _errors_on_every_path(scan, 2, tmp_path)
    message = _assert_one_error(errors, UnsupportedFormatError, str(scan / "2392"))
    assert "3 frames" in message


@pytest.mark.usefixtures("no_decoding")
def test_validation_reads_headers_only(tmp_path: Path) -> None:
    scan = _scan(tmp_path)
    _gray(30, (SIZE, SIZE + 1)).save(scan / "3.png")
    files = readers.ScanFiles(scan, "image", tuple(sorted(scan.iterdir())), 4)
    with pytest.raises(InconsistentScanError, match="9x8"):
        readers.validate_scan(files)  # a ScanFiles built by hand is validated the same way


def test_scan_validated_once_per_dataset_not_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = _scan(tmp_path, n=8)
    headers_read: list[str] = []
    real = images._image_slice_header

    def counting(path: Path) -> SliceHeader:
        headers_read.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(images, "_image_slice_header", counting)
    index = ScanIndex([ScanRecord("bad", 0, "1", "s", 8, scan)], ("bad",))
    dataset = VolumeDataset(index, SliceStacker(depth=2, size=None, threads=1))
    assert len(dataset) == 4
    for _epoch in range(2):
        for item in range(len(dataset)):
            dataset[item]
    assert sorted(headers_read) == sorted(os.fspath(p) for p in scan.iterdir())  # once each
