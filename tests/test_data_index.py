"""ScanIndex: CC-CCII layout, plain trees, CSVs, the consistency report, lenient mode."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.helpers import ccii

from resnet3d.data.index import CCII_CLASSES, ScanIndex, ScanRecord
from resnet3d.errors import DatasetLayoutError, DatasetNotFoundError

Layout = Mapping[str, Mapping[str, Mapping[str, int]]]  # class -> patient -> scan -> n_slices

LAYOUT: Layout = {
    "NCP": {"12": {"3104": 5, "3105": 3}, "7": {"900": 4}},
    "CP": {"2": {"20": 6}},
    "Normal": {"100": {"1": 2}, "101": {"5": 3}},
}


def make_ccii(root: Path, layout: Layout = LAYOUT, csv_rows: bool = True, seed: int = 0) -> Path:
    """Write tiny noise PNG slices in the CC-CCII layout (+ unzip_filenames.csv)."""
    return ccii.make_ccii(root, layout, name="{i:04d}.png", csv_rows=csv_rows, seed=seed)


def test_ccii_rows_counts_and_order(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    (root / "NCP" / "12" / "3104" / "Thumbs.db").write_bytes(b"junk")
    index = ScanIndex.from_ccii(root)
    assert index.classes == CCII_CLASSES
    # class order, then natural order of patient and scan ids
    assert [r.key for r in index] == [
        "NCP/7/900",
        "NCP/12/3104",
        "NCP/12/3105",
        "CP/2/20",
        "Normal/100/1",
        "Normal/101/5",
    ]
    assert [r.n_slices for r in index] == [4, 5, 3, 6, 2, 3]
    assert [r.label_index for r in index] == [0, 0, 0, 1, 2, 2]
    assert index[1].path == root / "NCP" / "12" / "3104"
    assert index.counts() == {
        "NCP": {"patients": 2, "scans": 3, "slices": 12},
        "CP": {"patients": 1, "scans": 1, "slices": 6},
        "Normal": {"patients": 2, "scans": 2, "slices": 5},
    }
    assert index.report.ok, index.report
    assert "total" in index.summary()


def test_phantom_data_set_matches_its_csv(tmp_path: Path) -> None:
    phantom = pytest.importorskip("resnet3d.data.phantom")
    root = phantom.write_dataset(tmp_path / "ph", patients=3, size=32, slices=(3, 5), masks=True)
    index = ScanIndex.from_ccii(root)
    assert index.report.ok, index.report  # mask files and phantom.json are not scans
    with open(root / "unzip_filenames.csv", newline="") as fh:
        expected = {
            (r["label"], r["patient_id"], r["scan_id"]): int(r["n_slice"])
            for r in csv.DictReader(fh)
        }
    assert {(r.label, r.patient_id, r.scan_id): r.n_slices for r in index} == expected


def test_report_count_mismatch_missing_and_extra(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    lines = (root / "unzip_filenames.csv").read_text().splitlines()
    lines = [ln.replace("x.zip,CP,2,20,6", "x.zip,CP,2,20,7") for ln in lines]
    lines = [ln for ln in lines if ",Normal,101,5," not in ln]
    lines.append("x.zip,NCP,99,1,10")
    (root / "unzip_filenames.csv").write_text("\n".join(lines) + "\n")
    index = ScanIndex.from_ccii(root)  # warnings never raise
    assert len(index) == 6
    kinds = {k: [i.path for i in v] for k, v in index.report.by_kind().items()}
    assert kinds == {
        "count_mismatch": [str(root / "CP" / "2" / "20")],
        "missing_in_csv": [str(root / "Normal" / "101" / "5")],
        "missing_on_disk": [str(root / "NCP" / "99" / "1")],
    }
    mismatch = index.report.by_kind()["count_mismatch"][0].message
    assert "6 slices on disk" in mismatch and "says 7" in mismatch
    assert not index.report.errors


def test_report_duplicate_slices_and_patient_in_two_classes(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    scan = root / "NCP" / "12" / "3104"
    shutil.copy(scan / "0001.png", scan / "0009.png")
    shutil.copytree(root / "CP" / "2", root / "Normal" / "2")
    index = ScanIndex.from_ccii(root, csv_file=False)
    dup = index.report.by_kind()["duplicate_slices"]
    assert len(dup) == 1 and dup[0].path == str(scan)
    assert "'0001.png'" in dup[0].message and "'0009.png'" in dup[0].message
    two = index.report.by_kind()["patient_in_several_classes"]
    assert len(two) == 1 and "'2'" in two[0].message
    assert (
        ScanIndex.from_ccii(root, csv_file=False, check_duplicates=False)
        .report.by_kind()
        .get("duplicate_slices")
        is None
    )


def test_empty_and_corrupt_scans_strict_and_lenient(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    empty = root / "CP" / "2" / "21"
    empty.mkdir()
    bad = root / "Normal" / "100" / "1"
    (bad / "0001.png").write_bytes(b"")
    with pytest.raises(DatasetLayoutError, match="2 unusable scan") as info:
        ScanIndex.from_ccii(root)
    assert str(empty) in str(info.value) and str(bad / "0001.png") in str(info.value)
    assert "lenient=True" in str(info.value)

    index = ScanIndex.from_ccii(root, lenient=True)
    assert {r.key for r in index} == {
        r.key for r in ScanIndex.from_ccii(make_ccii(tmp_path / "ok"))
    } - {"Normal/100/1"}
    errors = {i.kind: i.path for i in index.report.errors}
    assert errors == {"empty_scan": str(empty), "bad_scan": str(bad)}
    assert str(bad / "0001.png") in index.report.format()


def test_root_and_class_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as missing:
        ScanIndex.from_ccii(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="empty") as empty:
        ScanIndex.from_ccii(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(empty.value)

    root = make_ccii(tmp_path / "ccii", csv_rows=False)
    (root / "NCP").rename(root / "ncp")
    with pytest.raises(DatasetLayoutError, match="Did you mean 'ncp'") as info:
        ScanIndex.from_ccii(root)
    assert str(root) in str(info.value)
    lenient = ScanIndex.from_ccii(root, lenient=True)
    assert {r.label for r in lenient} == {"CP", "Normal"}
    kinds = sorted(i.kind for i in lenient.report.issues)
    assert kinds == ["missing_class", "unexpected_entry"]


def test_slices_at_patient_level_point_to_from_tree(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "tree", {"NCP": {"s1": {"x": 1}}, "CP": {}, "Normal": {}}, False)
    shutil.rmtree(root / "NCP" / "s1" / "x")
    (root / "CP").mkdir()
    (root / "Normal").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "NCP" / "s1" / "0.png")
    with pytest.raises(DatasetLayoutError, match="from_tree") as info:
        ScanIndex.from_ccii(root)
    assert str(root / "NCP" / "s1") in str(info.value)


def test_ccii_csv_with_wrong_columns(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    csv_path = root / "unzip_filenames.csv"
    csv_path.write_text("zip_file,label,patient,scan_id,n_slices\nx.zip,CP,2,20,6\n")
    with pytest.raises(DatasetLayoutError, match="Did you mean 'patient'") as info:
        ScanIndex.from_ccii(root)
    assert str(csv_path) in str(info.value) and "'n_slice'" in str(info.value)
    csv_path.write_text("zip_file,label,patient_id,scan_id,n_slice\nx.zip,CP,2,20,six\n")
    with pytest.raises(DatasetLayoutError, match=r"unzip_filenames.csv:2: column 'n_slice'"):
        ScanIndex.from_ccii(root)


def test_tree_layout_with_folders_and_nifti(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    root = tmp_path / "tree"
    for label, scans in {"covid": {"a": 3, "b": 2}, "healthy": {"c": 4}}.items():
        for scan, n in scans.items():
            folder = root / label / scan
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4), i, np.uint8)).save(folder / f"{i}.png")
    nib.save(
        nib.Nifti1Image(np.zeros((4, 4, 7), np.float32), np.eye(4)), root / "healthy" / "d.nii.gz"
    )
    index = ScanIndex.from_tree(root)
    assert index.classes == ("covid", "healthy")
    assert [(r.key, r.n_slices) for r in index] == [
        ("covid/a/a", 3),
        ("covid/b/b", 2),
        ("healthy/c/c", 4),
        ("healthy/d/d", 7),
    ]
    assert ScanIndex.from_path(root) == index
    ordered = ScanIndex.from_tree(root, classes=("healthy", "covid"))
    assert [(r.label, r.label_index) for r in ordered][:2] == [("healthy", 0), ("healthy", 0)]
    assert ordered[-1].label == "covid" and ordered[-1].label_index == 1
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "covid" / "loose.png")
    with pytest.raises(DatasetLayoutError, match="one folder per scan") as info:
        ScanIndex.from_tree(root)
    assert str(root / "covid") in str(info.value)


def test_csv_round_trip_and_errors(tmp_path: Path) -> None:
    root = make_ccii(tmp_path / "ccii")
    index = ScanIndex.from_ccii(root)
    csv_path = index.to_csv(tmp_path / "index.csv")
    again = ScanIndex.from_csv(csv_path)
    assert again == index
    assert ScanIndex.from_path(csv_path) == index
    assert "ccii/NCP/12/3104" in csv_path.read_text()  # relative to the CSV's folder

    own = tmp_path / "own.csv"
    own.write_text(f"path,label\n{root / 'CP' / '2' / '20'},CP\nccii/NCP/7/900,NCP\n")
    mine = ScanIndex.from_csv(own)
    assert mine.classes == ("CP", "NCP")  # sorted labels without label_index
    assert [(r.patient_id, r.scan_id, r.n_slices) for r in mine] == [
        ("20", "20", 6),
        ("900", "900", 4),
    ]

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("paths,label\nx,CP\n")
    with pytest.raises(DatasetLayoutError, match="Did you mean 'paths'") as info:
        ScanIndex.from_csv(wrong)
    assert str(wrong) in str(info.value)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,label\nccii/CP/2/20,cp\n")
    with pytest.raises(DatasetLayoutError, match="Did you mean 'CP'"):
        ScanIndex.from_csv(unknown, classes=CCII_CLASSES)
    gone = tmp_path / "gone.csv"
    gone.write_text("path,label\nccii/CP/2/20,CP\nccii/CP/2/99,CP\n")
    with pytest.raises(DatasetLayoutError) as info:
        ScanIndex.from_csv(gone)
    assert str(tmp_path / "ccii/CP/2/99") in str(info.value)
    kept = ScanIndex.from_csv(gone, lenient=True)
    assert len(kept) == 1 and kept.report.errors[0].kind == "missing_on_disk"
    with pytest.raises(DatasetNotFoundError):
        ScanIndex.from_csv(tmp_path / "none.csv")


def test_index_invariants() -> None:
    row = ScanRecord("CP", 1, "p", "s", 3, Path("x"))
    with pytest.raises(DatasetLayoutError, match="appears twice"):
        ScanIndex([row, row], CCII_CLASSES)
    with pytest.raises(DatasetLayoutError, match="does not match the classes"):
        ScanIndex([ScanRecord("CP", 0, "p", "s", 3, Path("x"))], CCII_CLASSES)
    index = ScanIndex([row], CCII_CLASSES)
    assert index[0:1] == index and len(index.subset(lambda r: False)) == 0
