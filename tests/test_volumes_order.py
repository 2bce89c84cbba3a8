"""Slice discovery and ordering: natural order, junk, content sniffing, DICOM, NIfTI."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet3d.data import readers, volumes
from resnet3d.data.readers import is_junk_name, list_slices, natural_key, read_slice, scan_files
from resnet3d.errors import CorruptSliceError, InconsistentScanError

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

# some of pydicom's test files declare explicit VR but are implicit; pydicom warns and copes
pytestmark = pytest.mark.filterwarnings("ignore:Expected explicit VR:UserWarning")


def _gray(value: int, size: int = 8) -> Image.Image:
    return Image.fromarray(np.full((size, size), value, dtype=np.uint8))


class _Listing(list):  # type: ignore[type-arg]
    """A directory listing that, like os.scandir's iterator, is also a context manager."""

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def shuffled_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make os.scandir return entries in a scrambled order, whatever the file system does."""
    real = os.scandir

    def scrambled(path: object = ".") -> _Listing:
        with real(path) as it:  # type: ignore[call-overload]
            entries = _Listing(it)
        random.Random(1234).shuffle(entries)
        return entries

    monkeypatch.setattr(readers.os, "scandir", scrambled)


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["10.png", "2.png", "1.png", "0003.png", "img_10.png", "img_9.png", "IMG_11.png"]
    assert sorted(names, key=natural_key) == [
        "1.png",
        "2.png",
        "0003.png",
        "10.png",
        "img_9.png",
        "img_10.png",
        "IMG_11.png",
    ]
    # zero padding ties by value, then the full name decides: a total order
    assert sorted(["2.png", "0002.png"], key=natural_key) == ["0002.png", "2.png"]


@pytest.mark.parametrize(
    ("name", "junk"),
    [
        (".DS_Store", True),
        ("._0001.png", True),
        ("Thumbs.db", True),
        ("desktop.ini", True),
        ("__MACOSX", True),
        ("DICOMDIR", True),
        ("notes.txt", True),
        ("labels.csv", True),
        ("0001.png", False),
        ("0001.JPG", False),
        ("IM000123", False),
        ("1.2.840.113619.2.55", False),
        ("slice.dcm", False),
    ],
)
def test_junk_names(name: str, junk: bool) -> None:
    assert is_junk_name(name) is junk


def test_natural_order_and_junk_whatever_the_listing(
    tmp_path: Path, shuffled_listing: None
) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    # values encode the expected position: slice k has gray value 10 * k
    names = ["1.png", "2.png", "3.png", "10.png", "11.png", "20.png", "100.png"]
    for k, name in enumerate(names):
        _gray(10 * k).save(scan / name)
    (scan / ".DS_Store").write_bytes(b"junk")
    (scan / "._1.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble header, not a PNG
    (scan / "Thumbs.db").write_bytes(b"junk")
    (scan / "README.txt").write_text("not a slice")
    (scan / "__MACOSX").mkdir()
    (scan / "sub").mkdir()
    _gray(255).save(scan / "sub" / "0.png")  # subfolders are not part of the scan

    slices = list_slices(scan)
    assert [p.name for p in slices] == names
    values = [int(read_slice(p)[0, 0]) for p in slices]
    assert values == [10 * k for k in range(len(names))]


def test_png_and_jpeg_mixed_recognised_by_content(tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    _gray(10).save(scan / "1.png")
    _gray(20).save(scan / "2.png", format="JPEG", quality=100)  # JPEG bytes, .png name
    _gray(30).save(scan / "3.jpg", format="JPEG", quality=100)
    _gray(40).save(scan / "4", format="PNG")  # no extension at all
    files = scan_files(scan)
    assert files.kind == "image"
    assert [p.name for p in files.slices] == ["1.png", "2.png", "3.jpg", "4"]
    got = volumes.SliceStacker(depth=4, size=None, channels=1).load(scan)
    # oracle: Pillow decoding each file itself
    expected = np.stack([np.asarray(Image.open(p)) for p in files.slices]) / np.float32(255)
    np.testing.assert_array_equal(got[0, 0], expected.astype(np.float32))


# ----------------------------------------------------------------------------------------
# DICOM (acceptance 1): pydicom's CT series, ordered by position whatever the names


CT5N = ["2062", "2392", "2693", "3023", "3353"]  # InstanceNumber 6..10, z decreasing


def _ct5n() -> list[Path]:
    return [Path(get_testdata_file(f"dicomdirtests/98892001/CT5N/{n}")) for n in CT5N]


def _z(path: Path) -> float:
    return float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])


@pytest.mark.parametrize("naming", ["sorted", "reversed", "random"])
def test_pydicom_ct_series_loads_in_position_order(
    tmp_path: Path, shuffled_listing: None, naming: str
) -> None:
    sources = _ct5n()
    order = list(range(len(sources)))
    if naming == "reversed":
        order.reverse()
    elif naming == "random":
        random.Random(7).shuffle(order)
    scan = tmp_path / "series"
    scan.mkdir()
    for new_index, k in enumerate(order):
        shutil.copy(sources[k], scan / f"{new_index:03d}.dcm")

    slices = list_slices(scan)
    z = [_z(p) for p in slices]
    # hand-checked: the five positions along the normal (0, 0, 1), ascending
    assert z == pytest.approx([-1.2375, 1.2625, 3.7625, 6.2625, 8.7625])

    # the stacked volume holds those slices, in that order, in Hounsfield units
    stacker = volumes.SliceStacker(depth=5, size=None, channels=1, window=(0.0, 4096.0))
    vol = stacker.load(scan)
    hu = [pydicom.pixels.apply_modality_lut(d.pixel_array, d) for d in map(pydicom.dcmread, slices)]
    by_position = sorted(sources, key=_z)
    assert [pydicom.dcmread(p).SOPInstanceUID for p in slices] == [
        pydicom.dcmread(p).SOPInstanceUID for p in by_position
    ]
    expected = np.clip((np.stack(hu).astype(np.float32) + 2048.0) / 4096.0, 0, 1)
    np.testing.assert_allclose(vol[0, 0], expected, atol=1e-6)


def test_read_dicom_hounsfield_matches_pydicom_modality_lut() -> None:
    for path in [*_ct5n(), Path(get_testdata_file("CT_small.dcm"))]:
        ds = pydicom.dcmread(path)
        expected = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        np.testing.assert_allclose(readers.read_dicom(path), expected, rtol=0, atol=1e-3)


def test_dicom_falls_back_to_instance_number(tmp_path: Path) -> None:
    scan = tmp_path / "series"
    scan.mkdir()
    for i, src in enumerate(reversed(_ct5n())):
        ds = pydicom.dcmread(src)
        del ds.ImagePositionPatient
        ds.save_as(scan / f"z{i}.dcm")
    slices = list_slices(scan)
    numbers = [int(pydicom.dcmread(p).InstanceNumber) for p in slices]
    assert numbers == [6, 7, 8, 9, 10]  # instance order, which here is the reverse of z order


def test_dicom_other_series_in_folder_is_an_error(tmp_path: Path) -> None:
    scan = tmp_path / "series"
    scan.mkdir()
    for src in _ct5n()[:2]:
        shutil.copy(src, scan / src.name)
    shutil.copy(get_testdata_file("dicomdirtests/77654033/CT2/17136"), scan / "other")
    with pytest.raises(InconsistentScanError, match="2 DICOM series") as info:
        list_slices(scan)
    assert str(scan) in str(info.value)


def test_dicom_mixed_orientation_is_an_error(tmp_path: Path) -> None:
    # pydicom's CT2N series: two localizers with different ImageOrientationPatient
    scan = tmp_path / "localizers"
    scan.mkdir()
    for name in ("6293", "6924"):
        shutil.copy(get_testdata_file(f"dicomdirtests/98892001/CT2N/{name}"), scan / name)
    with pytest.raises(InconsistentScanError, match="ImageOrientationPatient") as info:
        list_slices(scan)
    assert str(scan) in str(info.value)


def test_dicom_and_png_in_one_folder_is_an_error(tmp_path: Path) -> None:
    scan = tmp_path / "mixed"
    scan.mkdir()
    shutil.copy(_ct5n()[0], scan / "a.dcm")
    _gray(1).save(scan / "b.png")
    with pytest.raises(InconsistentScanError, match="mixes 1 DICOM and 1 image") as info:
        list_slices(scan)
    assert str(scan) in str(info.value)


# ----------------------------------------------------------------------------------------
# NIfTI: axial slices in radiological layout, whatever the stored orientation


def test_nifti_axial_slices_in_display_orientation(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    x, y, z = 5, 4, 3
    # world (RAS) volume whose value encodes its voxel: 100 * i + 10 * j + k
    i, j, k = np.meshgrid(np.arange(x), np.arange(y), np.arange(z), indexing="ij")
    world = (100 * i + 10 * j + k).astype(np.float32)
    ras = tmp_path / "ras.nii.gz"
    nib.save(nib.Nifti1Image(world, np.eye(4)), ras)
    # the same world stored flipped in x and y (an LPS-like affine)
    lps = tmp_path / "lps.nii"
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:3, 3] = [x - 1, y - 1, 0]
    nib.save(nib.Nifti1Image(world[::-1, ::-1, :].copy(), flip), lps)

    got = readers.read_nifti(ras)
    assert got.shape == (z, y, x)
    for s in range(z):
        for r in range(y):
            for c in range(x):
                # row 0 anterior (largest y), column 0 patient right (largest x), inferior first
                assert got[s, r, c] == world[x - 1 - c, y - 1 - r, s]
    np.testing.assert_array_equal(readers.read_nifti(lps), got)
    assert scan_files(ras).n_slices == z

    with pytest.raises(InconsistentScanError, match="2 NIfTI volumes"):
        scan_files(tmp_path)  # one scan is one volume
    folder = tmp_path / "scan"
    folder.mkdir()
    shutil.copy(ras, folder / "ct.nii.gz")
    (folder / "notes.txt").write_text("junk is fine")
    assert scan_files(folder).path == folder / "ct.nii.gz"
    assert list_slices(folder) == [folder / "ct.nii.gz"]

    vol = volumes.load_scan(ras, depth=3, size=None, channels=1, window=(50.0, 1000.0))
    assert vol.shape == (1, 1, 3, y, x)
    np.testing.assert_allclose(vol[0, 0].numpy(), np.clip((got + 450.0) / 1000.0, 0, 1), atol=1e-6)


def test_empty_and_garbage_candidates(tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    _gray(1).save(scan / "1.png")
    (scan / "2.png").write_bytes(b"")
    with pytest.raises(CorruptSliceError, match="empty") as info:
        list_slices(scan)
    assert str(scan / "2.png") in str(info.value)
    (scan / "2.png").write_bytes(b"this is not an image at all")
    with pytest.raises(CorruptSliceError, match="not a PNG") as info:
        list_slices(scan)
    assert info.value.path == os.fspath(scan / "2.png")


@pytest.mark.parametrize(
    "codes",
    [("L", "A", "S"), ("L", "P", "S"), ("R", "A", "I"), ("P", "I", "R"), ("S", "L", "A")],
)
def test_nifti_reorientation_matches_nibabel_closest_canonical(
    tmp_path: Path, codes: tuple[str, str, str]
) -> None:
    # read_nifti reorients the data itself after its size checks; nibabel is the oracle
    nib = pytest.importorskip("nibabel")
    from nibabel.orientations import axcodes2ornt, inv_ornt_aff

    ornt = axcodes2ornt(codes)
    shape = (5, 4, 3)
    affine = np.linalg.inv(inv_ornt_aff(ornt, shape))  # voxel axes point along ``codes``
    data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    assert nib.aff2axcodes(nib.load(path).affine) == codes
    canonical = nib.as_closest_canonical(nib.load(path)).get_fdata(dtype=np.float32)
    expected = canonical[::-1, ::-1, :].transpose(2, 1, 0)
    got = readers.read_nifti(path)
    np.testing.assert_array_equal(got, expected)
    assert scan_files(path).n_slices == got.shape[0]
