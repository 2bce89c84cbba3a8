"""Image bombs are refused from their headers, before any allocation, on every path.

A few-KB file can declare a volume of many GB. The worst cases run in a subprocess whose
address space is capped at 1 GiB above what it already uses (``RLIMIT_AS``): a control
allocation of 4 GiB must fail there, so a reader that allocated what the header declares
would fail with ``MemoryError`` instead of refusing the file.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.test_volumes_errors import no_decoding  # noqa: F401 (a fixture)

from resnet3d.data import readers, volumes
from resnet3d.data.cache import build_cache
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex, ScanRecord
from resnet3d.data.readers import MAX_BYTES_ENV, MAX_VOXELS_ENV, read_dicom, read_nifti
from resnet3d.data.volumes import SliceStacker, load_scan
from resnet3d.errors import ImageTooLargeError, UnsupportedFormatError

HUGE = (512, 512, 32767)  # int16: 17 GB declared
RAS = np.eye(4)
LAS = np.diag([-1.0, 1.0, 1.0, 1.0])

_UNDER_RLIMIT = r"""
import resource, sys
import nibabel, resnet3d.data.readers, resnet3d.data.volumes  # imported before the cap

def address_space():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (address_space() + (1 << 30), hard))
try:
    bytearray(4 << 30)
except MemoryError:
    print("CONTROL: 4 GiB refused")
try:
    resnet3d.data.volumes.load_scan(sys.argv[1], depth=1, as_numpy=True, threads=1)
except BaseException as error:
    print("RAISED", type(error).__name__, str(error))
else:
    print("RETURNED")
"""


def _nifti_bomb(path: Path, shape: tuple[int, ...], affine: np.ndarray = RAS) -> Path:
    """A few-KB NIfTI file whose header declares ``shape`` int16 voxels."""
    nib = pytest.importorskip("nibabel")
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    header.set_sform(affine, code=1)
    header.set_qform(affine, code=1)
    header["vox_offset"] = 352
    data = header.binaryblock + b"\x00" * 4 + b"\x00" * 4096  # extension flag, a little data
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    assert path.stat().st_size < 8192
    return path


def _load_under_rlimit(path: Path) -> str:
    """What ``load_scan(path)`` does in a subprocess that cannot allocate 1 GiB more."""
    if not sys.platform.startswith("linux"):
        pytest.skip("RLIMIT_AS and /proc/self/status are Linux")
    env = {k: v for k, v in os.environ.items() if k not in (MAX_VOXELS_ENV, MAX_BYTES_ENV)}
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_RLIMIT, os.fspath(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "CONTROL: 4 GiB refused" in done.stdout, done.stdout  # the cap is in force
    return done.stdout


def _assert_refused(output: str, path: Path, declared: str) -> None:
    line = next(x for x in output.splitlines() if x.startswith(("RAISED", "RETURNED")))
    assert line.startswith("RAISED ImageTooLargeError "), line
    assert str(path) in line and declared in line
    assert f"limit of {readers.DEFAULT_MAX_VOXELS:,} voxels" in line
    assert "max_voxels=" in line and MAX_VOXELS_ENV in line  # says how to raise it


def _png_scan(folder: Path, n: int = 4) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_nifti_declaring_huge_depth_is_refused_before_allocation(tmp_path: Path) -> None:
    bomb = _nifti_bomb(tmp_path / "bomb.nii", HUGE)
    _assert_refused(_load_under_rlimit(bomb), bomb, "512 x 512 x 32767 int16")


def test_las_nifti_bomb_is_refused_before_reorientation(tmp_path: Path) -> None:
    # any non-RAS affine: nibabel's as_closest_canonical reads all the data to flip it
    bomb = _nifti_bomb(tmp_path / "las.nii", HUGE, LAS)
    _assert_refused(_load_under_rlimit(bomb), bomb, "512 x 512 x 32767 int16")


def test_gzipped_nifti_bomb_is_refused_before_decompression(tmp_path: Path) -> None:
    bomb = _nifti_bomb(tmp_path / "bomb.nii.gz", HUGE)
    _assert_refused(_load_under_rlimit(bomb), bomb, "512 x 512 x 32767 int16")


def test_4d_nifti_bomb_with_one_frame_is_refused_before_slicing(tmp_path: Path) -> None:
    # (X, Y, Z, 1): taking frame 0 with nibabel's slicer reads every voxel, even to count
    # the slices while listing
    bomb = _nifti_bomb(tmp_path / "bomb4d.nii", (*HUGE, 1))
    _assert_refused(_load_under_rlimit(bomb), bomb, "512 x 512 x 32767 x 1 int16")


def test_nifti_over_the_byte_limit_is_refused_from_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nib = pytest.importorskip("nibabel")
    path = tmp_path / "f64.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float64), np.eye(4)), path)  # 2,048 bytes
    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", None)  # reading data would fail
    with pytest.raises(ImageTooLargeError) as info:
        read_nifti(path, max_bytes=1000)
    message = str(info.value)
    assert str(path) in message and "8 x 8 x 4 float64" in message
    assert "(256 voxels, 2,048 bytes)" in message and "limit of 1,000 bytes" in message
    assert "max_bytes=" in message and MAX_BYTES_ENV in message


def test_dicom_multiframe_bomb_is_refused_from_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("dicomdirtests/98892001/CT5N/2392"))
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = 100_000  # 512 x 512 x 100,000 x 16 bits: 52 GB, in a 4 KB file
    folder = tmp_path / "scan"
    folder.mkdir()
    bomb = folder / "bomb.dcm"
    ds.save_as(bomb)
    calls: list[dict[str, object]] = []
    real = pydicom.dcmread

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", spy)
    with pytest.raises(ImageTooLargeError) as info:
        read_dicom(bomb, max_pixels=10**12)  # the volume limit, not the slice limit, refuses
    message = str(info.value)
    assert str(bomb) in message and "100000 frame(s) of 512 x 512" in message
    assert f"limit of {readers.DEFAULT_MAX_VOXELS:,} voxels" in message
    with pytest.raises(ImageTooLargeError, match="x 100000 frames"):
        read_dicom(bomb)  # the default slice limit counts frames too
    with pytest.raises(UnsupportedFormatError, match="100000 frames of 512x512"):
        load_scan(folder, depth=1)  # in a scan: one file is one slice
    assert calls and all(c.get("stop_before_pixels") for c in calls)  # headers only


def test_dicom_series_over_the_voxel_limit_is_refused_from_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    scan = tmp_path / "series"
    scan.mkdir()
    for name in ("2062", "2392", "2693", "3023", "3353"):
        shutil.copy(get_testdata_file(f"dicomdirtests/98892001/CT5N/{name}"), scan / name)

    def refuse(path: object, max_pixels: int) -> np.ndarray:
        raise AssertionError(f"{path} was read")

    monkeypatch.setattr(volumes, "decode_dicom", refuse)
    with pytest.raises(ImageTooLargeError) as info:
        SliceStacker(depth=1, max_voxels=4 * 16 * 16).load(scan, volumes=[0])
    message = str(info.value)
    assert message.startswith(f"{scan}: declares a DICOM series of 5 slices of 16 x 16 (16-bit)")
    assert "(1,280 voxels, 2,560 bytes)" in message and "limit of 1,024 voxels" in message


@pytest.mark.usefixtures("no_decoding")
def test_image_scan_over_the_voxel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    scan = _png_scan(tmp_path / "scan")  # 4 x 8 x 8 = 256 voxels
    with pytest.raises(ImageTooLargeError) as info:
        load_scan(scan, depth=1, max_voxels=200)
    message = str(info.value)
    assert message.startswith(f"{scan}: declares 4 image slices of 8 x 8")
    assert "(256 voxels, 256 bytes)" in message and "limit of 200 voxels" in message


def test_scan_over_the_limit_gets_the_same_error_with_and_without_cache(tmp_path: Path) -> None:
    scan = _png_scan(tmp_path / "data" / "a" / "1" / "s")
    stacker = SliceStacker(depth=2, size=None, max_voxels=200, threads=1)
    index = ScanIndex([ScanRecord("a", 0, "1", "s", 4, scan)], ("a",))
    with pytest.raises(ImageTooLargeError) as direct:
        stacker.load(scan)
    with pytest.raises(ImageTooLargeError) as dataset:
        VolumeDataset(index, stacker)[0]  # no cache: item 0 alone is 128 voxels
    with pytest.raises(ImageTooLargeError) as cached:
        build_cache(index, tmp_path / "cache", stacker)
    assert str(direct.value) == str(dataset.value) == str(cached.value)


def test_voxel_limit_from_env_var_and_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scan = _png_scan(tmp_path / "scan")  # 256 voxels
    monkeypatch.setenv(MAX_VOXELS_ENV, "255")
    with pytest.raises(ImageTooLargeError, match="limit of 255 voxels"):
        load_scan(scan, depth=4, size=None)
    assert load_scan(scan, depth=4, size=None, max_voxels=256).shape == (1, 3, 4, 8, 8)
    monkeypatch.setenv(MAX_VOXELS_ENV, "256")
    assert load_scan(scan, depth=4, size=None).shape == (1, 3, 4, 8, 8)


def test_invalid_limit_env_var_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan = _png_scan(tmp_path / "scan")
    monkeypatch.setenv(MAX_BYTES_ENV, "4GB")
    with pytest.raises(ValueError, match=f"{MAX_BYTES_ENV}='4GB': expected a whole number"):
        load_scan(scan, depth=4)
