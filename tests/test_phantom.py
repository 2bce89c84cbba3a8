"""Tests of the synthetic chest-CT phantom (resnet3d.data.phantom) and ``resnet3d phantom``."""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet3d.cli import main
from resnet3d.data import phantom
from resnet3d.data.phantom import (
    CLASSES,
    CSV_COLUMNS,
    CSV_NAME,
    MARKER_NAME,
    MASK_SUFFIX,
    MASKS_DIR,
    PhantomScan,
    generate_scan,
    lesion_mask_path,
    load_lesion_mask,
    load_lung_mask,
    patient_seed,
    write_dataset,
)

ndimage = pytest.importorskip("scipy.ndimage")

SEEDS = (0, 1, 2, 3)
N_SLICES = 24
SIZE = 96


@pytest.fixture(scope="module")
def scans() -> dict[tuple[str, int], PhantomScan]:
    """The same four patients drawn as each class (same seed: same chest, different finding)."""
    return {
        (label, seed): generate_scan(label, seed, n_slices=N_SLICES, size=SIZE)
        for label in CLASSES
        for seed in SEEDS
    }


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _read_csv(root: Path) -> list[dict[str, str]]:
    with open(root / CSV_NAME, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------
# generate_scan


def test_scan_arrays_have_the_documented_shapes_and_types() -> None:
    scan = generate_scan("NCP", 7, n_slices=5, size=40)
    assert scan.label == "NCP" and scan.seed == 7 and scan.scan == 0 and scan.n_slices == 5
    assert scan.slices.shape == (5, 40, 40) and scan.slices.dtype == np.uint8
    assert scan.hu is not None and scan.hu.shape == (5, 40, 40) and scan.hu.dtype == np.float32
    assert scan.lesion_mask.shape == scan.lung_mask.shape == (5, 40, 40)
    assert scan.lesion_mask.dtype == scan.lung_mask.dtype == np.bool_
    assert generate_scan("NCP", 7, n_slices=5, size=40, return_hu=False).hu is None
    assert generate_scan("Normal", 7, n_slices=1, size=32).slices.shape == (1, 32, 32)


def test_slices_are_the_lung_window_of_the_hu_volume() -> None:
    scan = generate_scan("CP", 3, n_slices=6, size=48)
    assert scan.hu is not None
    center, width = phantom.LUNG_WINDOW
    lo = center - width / 2
    expected = np.rint(np.clip((scan.hu.astype(np.float64) - lo) * 255 / width, 0, 255))
    # float32 arithmetic in the module vs float64 here: at most one gray level apart.
    assert np.abs(scan.slices.astype(int) - expected.astype(int)).max() <= 1
    narrow = generate_scan("CP", 3, n_slices=6, size=48, window=(40.0, 400.0))
    assert np.array_equal(narrow.hu, scan.hu) and not np.array_equal(narrow.slices, scan.slices)


def test_tissues_have_ct_like_hounsfield_units(scans: dict[tuple[str, int], PhantomScan]) -> None:
    scan = scans[("Normal", 0)]
    assert scan.hu is not None
    corner = scan.hu[:, :4, :4]  # outside the body: air
    assert -1100 < float(np.median(corner)) < -900
    lung = scan.hu[scan.lung_mask]
    assert -900 < float(np.median(lung)) < -780
    # Body without lungs, bone or air: mostly soft tissue (+40) with a fat rim (-100).
    center_row = scan.hu[N_SLICES // 2, SIZE // 2, :]
    assert np.any((center_row > 0) & (center_row < 90))
    assert scan.hu.max() > 300  # bone (spine, ribs, sternum)


def test_same_seed_gives_the_same_bytes_and_other_seeds_or_scans_differ() -> None:
    a = generate_scan("NCP", 11, n_slices=8, size=48)
    b = generate_scan("NCP", 11, n_slices=8, size=48)
    assert a.slices.tobytes() == b.slices.tobytes()
    assert a.hu is not None and b.hu is not None and a.hu.tobytes() == b.hu.tobytes()
    assert np.array_equal(a.lesion_mask, b.lesion_mask)
    assert not np.array_equal(a.slices, generate_scan("NCP", 12, n_slices=8, size=48).slices)
    other_scan = generate_scan("NCP", 11, n_slices=8, size=48, scan=1)
    assert not np.array_equal(a.slices, other_scan.slices)


def test_the_finding_is_the_only_difference_between_classes(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    # Same seed: anatomy and noise come from label-independent streams, so an NCP or CP scan
    # differs from the Normal scan of the same patient only inside the lungs.
    for seed in SEEDS:
        normal = scans[("Normal", seed)]
        for label in ("NCP", "CP"):
            sick = scans[(label, seed)]
            assert np.array_equal(sick.lung_mask, normal.lung_mask)
            changed = sick.slices != normal.slices
            assert changed.any()
            assert not (changed & ~normal.lung_mask).any()
            # ... and most of the lesion mask is visibly changed.
            assert changed[sick.lesion_mask].mean() > 0.8


def test_lesion_masks_are_empty_for_normal_and_present_for_sick(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    for seed in SEEDS:
        assert not scans[("Normal", seed)].lesion_mask.any()
        for label in ("NCP", "CP"):
            scan = scans[(label, seed)]
            assert scan.lesion_mask.sum() > 100
            assert not (scan.lesion_mask & ~scan.lung_mask).any()


def test_lung_window_intensity_differs_by_class(scans: dict[tuple[str, int], PhantomScan]) -> None:
    def lung_mean(scan: PhantomScan) -> float:
        return float(scan.slices[scan.lung_mask].mean())

    for seed in SEEDS:
        normal = lung_mean(scans[("Normal", seed)])
        assert lung_mean(scans[("NCP", seed)]) > normal + 2
        assert lung_mean(scans[("CP", seed)]) > normal + 5


def test_findings_have_the_densities_of_ground_glass_and_consolidation(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    for seed in SEEDS:
        ncp, cp = scans[("NCP", seed)], scans[("CP", seed)]
        assert ncp.hu is not None and cp.hu is not None
        ggo = float(np.median(ncp.hu[ncp.lesion_mask]))
        consolidation = float(np.median(cp.hu[cp.lesion_mask]))
        assert -600 < ggo < -250, ggo  # ground glass: about -500 to -300 HU
        assert -150 < consolidation < 80, consolidation  # consolidation: about -50 to +50 HU
        # The masks line up with the slices: brighter inside the lesion than in the rest of the
        # lung.
        for scan in (ncp, cp):
            rest = scan.lung_mask & ~scan.lesion_mask
            assert scan.slices[scan.lesion_mask].mean() > scan.slices[rest].mean() + 30


def _sides(mask: np.ndarray) -> tuple[int, int]:
    half = mask.shape[2] // 2
    return int(mask[:, :, :half].sum()), int(mask[:, :, half:].sum())


def test_ncp_opacities_are_bilateral_and_peripheral(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    for seed in SEEDS:
        scan = scans[("NCP", seed)]
        left, right = _sides(scan.lesion_mask)
        assert min(left, right) > 0.15 * (left + right), (left, right)
        # Distance of every lung pixel to the lung border, slice by slice: the opacities hug
        # the pleura.
        depth = np.stack([ndimage.distance_transform_edt(s) for s in scan.lung_mask])
        lesion_depth = float(np.median(depth[scan.lesion_mask]))
        lung_depth = float(np.median(depth[scan.lung_mask]))
        assert lesion_depth < 0.75 * lung_depth, (lesion_depth, lung_depth)


def test_cp_consolidation_is_one_sided_and_larger_than_ncp_opacities(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    cp_sizes, ncp_sizes = [], []
    for seed in SEEDS:
        scan = scans[("CP", seed)]
        left, right = _sides(scan.lesion_mask)
        assert max(left, right) > 0.95 * (left + right), (left, right)
        cp_sizes.append(scan.lesion_mask.sum() / scan.lung_mask.sum())
        ncp = scans[("NCP", seed)]
        ncp_sizes.append(ncp.lesion_mask.sum() / ncp.lung_mask.sum())
    assert np.mean(cp_sizes) > 1.5 * np.mean(ncp_sizes)


def test_findings_are_3d_and_reach_most_depth4_volumes(
    scans: dict[tuple[str, int], PhantomScan],
) -> None:
    for seed in SEEDS:
        for label in ("NCP", "CP"):
            mask = scans[(label, seed)].lesion_mask
            volumes = [mask[i : i + 4].any() for i in range(0, N_SLICES - 3, 4)]
            assert np.mean(volumes) >= 0.75, (label, seed, volumes)
            # Most lesion voxels belong to 3D components that span several consecutive slices.
            labels, n = ndimage.label(mask)
            spans = {
                i + 1: sl[0].stop - sl[0].start for i, sl in enumerate(ndimage.find_objects(labels))
            }
            deep = sum(int((labels == i).sum()) for i, span in spans.items() if span >= 3)
            assert n > 0 and deep > 0.8 * mask.sum()


def test_lungs_change_shape_from_apex_to_base(scans: dict[tuple[str, int], PhantomScan]) -> None:
    area = scans[("Normal", 1)].lung_mask.sum(axis=(1, 2))
    peak = int(np.argmax(area))
    assert 0 < peak < N_SLICES - 1
    assert area[0] < 0.5 * area[peak] and area[-1] < 0.5 * area[peak]
    # Smooth: neighbouring slices never jump by more than half the largest cross-section.
    assert np.abs(np.diff(area)).max() < 0.5 * area[peak]


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"label": "ncp"}, ValueError, "'NCP'"),
        ({"label": "COVID"}, ValueError, "COVID"),
        ({"n_slices": 0}, ValueError, "0"),
        ({"size": 31}, ValueError, "31"),
        ({"size": 64.0}, TypeError, "64.0"),
        ({"seed": -1}, ValueError, "-1"),
        ({"seed": True}, TypeError, "True"),
        ({"scan": -2}, ValueError, "-2"),
        ({"window": (-600.0, 0.0)}, ValueError, "0.0"),
        ({"window": "lung"}, ValueError, "lung"),
    ],
)
def test_generate_scan_rejects_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], named: str
) -> None:
    args: dict[str, object] = {"label": "NCP", "seed": 0, "n_slices": 4, "size": 32}
    args.update(kwargs)
    with pytest.raises(error, match=None) as info:
        generate_scan(**args)  # type: ignore[arg-type]
    assert named in str(info.value)


# ----------------------------------------------------------------------------------------------
# write_dataset


SMALL = {"size": 32, "slices": (3, 6), "scans_per_patient": (1, 2)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("phantom") / "out", patients=5, seed=4, **SMALL)


def test_dataset_layout_and_csv_match(dataset: Path) -> None:
    rows = _read_csv(dataset)
    with open(dataset / CSV_NAME, encoding="utf-8") as f:
        assert f.readline() == "zip_file,label,patient_id,scan_id,n_slice\n"
    assert tuple(rows[0]) == CSV_COLUMNS
    on_disk = {
        (p.parts[-3], p.parts[-2], p.parts[-1])
        for p in dataset.glob("*/*/*")  # pathlib's glob, unlike the shell's, sees dot-names
        if p.is_dir() and not any(part.startswith(".") for part in p.relative_to(dataset).parts)
    }
    assert on_disk == {(r["label"], r["patient_id"], r["scan_id"]) for r in rows}
    for row in rows:
        scan_dir = dataset / row["label"] / row["patient_id"] / row["scan_id"]
        names = sorted(p.name for p in scan_dir.iterdir())
        # Only slices in a scan folder: numbered 0000.png, 0001.png, ... and nothing else.
        assert names == [f"{i:04d}.png" for i in range(int(row["n_slice"]))]
        assert 3 <= int(row["n_slice"]) <= 6
        with Image.open(scan_dir / "0000.png") as image:
            assert image.format == "PNG" and image.mode == "L" and image.size == (32, 32)
        assert row["zip_file"].endswith(".zip")


def test_patients_are_split_evenly_with_unique_ids(dataset: Path) -> None:
    rows = _read_csv(dataset)
    patients = {r["patient_id"]: r["label"] for r in rows}
    assert len(patients) == 5
    # 5 // 3 = 1 each, the remainder of 2 to the first classes.
    assert Counter(patients.values()) == {"NCP": 2, "CP": 2, "Normal": 1}
    for pid, label in patients.items():
        assert pid.isdigit()
        assert [c for c in CLASSES if (dataset / c / pid).is_dir()] == [label]
    scans_per_patient = Counter(r["patient_id"] for r in rows)
    assert set(scans_per_patient.values()) <= {1, 2}
    assert len({r["scan_id"] for r in rows}) == len(rows)


def test_dataset_scans_are_generate_scan_of_the_patient_seed(dataset: Path) -> None:
    rows = _read_csv(dataset)
    marker = json.loads((dataset / MARKER_NAME).read_text())
    assert marker["complete"] is True and marker["seed"] == 4
    for row in rows:
        p = int(row["patient_id"]) - 1
        assert marker["patient_seeds"][row["patient_id"]] == patient_seed(4, p)
        s = int(row["scan_id"]) - int(row["patient_id"]) * 100
        expected = generate_scan(row["label"], patient_seed(4, p), int(row["n_slice"]), 32, scan=s)
        scan_dir = dataset / row["label"] / row["patient_id"] / row["scan_id"]
        read = np.stack(
            [np.asarray(Image.open(scan_dir / f"{i:04d}.png")) for i in range(expected.n_slices)]
        )
        assert np.array_equal(read, expected.slices)
        mask = load_lesion_mask(dataset, row["patient_id"], row["scan_id"])
        assert mask.shape == read.shape and np.array_equal(mask, expected.lesion_mask)
        assert lesion_mask_path(dataset, row["label"], row["patient_id"], row["scan_id"]).is_file()
        assert mask.any() == (row["label"] != "Normal")
        lung = load_lung_mask(dataset, row["patient_id"], row["scan_id"])
        assert np.array_equal(lung, expected.lung_mask) and not (mask & ~lung).any()


def test_masks_sit_in_a_mirrored_dot_tree(dataset: Path) -> None:
    masks = sorted(dataset.rglob(f"*{MASK_SUFFIX}"))
    assert len(masks) == len(_read_csv(dataset))
    for path in masks:
        relative = path.relative_to(dataset / MASKS_DIR)  # all under OUT/.masks
        label, patient, name = relative.parts
        assert (dataset / label / patient / name[: -len(MASK_SUFFIX)]).is_dir()


def test_shell_globs_over_scan_folders_find_only_scans(dataset: Path) -> None:
    rows = _read_csv(dataset)
    scans = {os.fspath(dataset / r["label"] / r["patient_id"] / r["scan_id"]) for r in rows}
    # glob.glob follows the shell: '*' skips dot-names, so OUT/.masks is never matched.
    assert set(glob.glob(os.fspath(dataset / "*" / "*" / "*"))) == scans
    for row in rows:
        patient = dataset / row["label"] / row["patient_id"]
        assert all(p in scans for p in glob.glob(os.fspath(patient / "*")))


def test_predict_takes_a_shell_glob_over_a_patients_scans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's command, ``resnet3d predict ph/CP/5/*``, on a tiny exported model."""
    import resnet3d

    root = write_dataset(
        tmp_path / "ph", patients=3, seed=2, size=32, slices=4, scans_per_patient=2
    )
    model = resnet3d.create_model("resnet10", widths=(4, 4, 4, 4), num_classes=3)
    spec = {"depth": 4, "size": 32, "channels": 3}
    export = model.save_pretrained(tmp_path / "export", preprocessing=spec, labels=list(CLASSES))
    scans = sorted(glob.glob(os.fspath(root / "CP" / "2" / "*")))
    assert len(scans) == 2
    argv = ["predict", *scans, "--pretrained", os.fspath(export), "--precision", "fp32"]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert all(scan in out for scan in scans) and MASK_SUFFIX not in out


def test_scan_index_reads_a_phantom_dataset_without_issues(dataset: Path) -> None:
    data = pytest.importorskip("resnet3d.data")
    index = data.ScanIndex.from_ccii(dataset)
    rows = _read_csv(dataset)
    assert len(index) == len(rows)
    assert index.report.ok, index.report.issues  # masks, phantom.json and the CSV raise nothing
    assert {(r.label, r.patient_id, r.scan_id, r.n_slices) for r in index} == {
        (r["label"], r["patient_id"], r["scan_id"], int(r["n_slice"])) for r in rows
    }


def test_load_lesion_mask_errors_name_the_path_and_close_ids(dataset: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Did you mean '1'"):
        load_lesion_mask(dataset, 11, 1100)
    with pytest.raises(FileNotFoundError, match=r"109\.mask\.npz.*'100'"):
        load_lesion_mask(dataset, 1, 109)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lesion_mask(dataset / "nowhere", 1, 100)
    with pytest.raises(FileNotFoundError, match=r"109\.mask\.npz"):
        load_lung_mask(dataset, 1, 109)


def test_masks_of_an_older_layout_beside_the_scan_folders_still_load(dataset: Path) -> None:
    row = _read_csv(dataset)[0]
    new = lesion_mask_path(dataset, row["label"], row["patient_id"], row["scan_id"])
    old = dataset / row["label"] / row["patient_id"] / new.name  # where resnet3d put them before
    lesion = load_lesion_mask(dataset, row["patient_id"], row["scan_id"])
    new.rename(old)
    try:
        assert np.array_equal(load_lesion_mask(dataset, row["patient_id"], row["scan_id"]), lesion)
    finally:
        old.rename(new)


def test_masks_of_an_older_data_set_without_lungs(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "d", patients=3, seed=1, **SMALL)
    row = _read_csv(root)[0]
    path = lesion_mask_path(root, row["label"], row["patient_id"], row["scan_id"])
    lesion = load_lesion_mask(root, row["patient_id"], row["scan_id"])
    np.savez_compressed(path, mask=lesion)  # as resnet3d wrote it before lung masks
    assert np.array_equal(load_lesion_mask(root, row["patient_id"], row["scan_id"]), lesion)
    with pytest.raises(FileNotFoundError, match=r"holds no 'lung' array.*write it again"):
        load_lung_mask(root, row["patient_id"], row["scan_id"])


def test_same_seed_same_files_and_more_patients_keep_the_first(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", patients=3, seed=9, **SMALL)
    b = write_dataset(tmp_path / "b", patients=3, seed=9, **SMALL)
    c = write_dataset(tmp_path / "c", patients=3, seed=10, **SMALL)
    d = write_dataset(tmp_path / "d", patients=5, seed=9, **SMALL)
    files_a = _tree_bytes(a)
    assert files_a == _tree_bytes(b)
    assert files_a != _tree_bytes(c)
    files_d = _tree_bytes(d)
    slices_a = {k: v for k, v in files_a.items() if k.endswith((".png", MASK_SUFFIX))}
    assert slices_a and all(files_d[k] == v for k, v in slices_a.items())
    rows_a, rows_d = _read_csv(a), _read_csv(d)
    assert rows_d[: len(rows_a)] == rows_a


def test_vary_size_keeps_sizes_near_the_requested_one(tmp_path: Path) -> None:
    out = write_dataset(
        tmp_path / "v", patients=3, size=64, slices=2, scans_per_patient=3, vary_size=True
    )
    sizes = set()
    for png in out.glob("*/*/*/0000.png"):
        with Image.open(png) as image:
            assert image.size[0] == image.size[1]
            sizes.add(image.size[0])
    assert len(sizes) > 1 and all(56 <= s <= 72 for s in sizes)


def test_classes_subset(tmp_path: Path) -> None:
    out = write_dataset(tmp_path / "b", patients=2, classes=("NCP", "Normal"), **SMALL)
    assert {r["label"] for r in _read_csv(out)} == {"NCP", "Normal"}
    assert not (out / "CP").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"patients": 2}, ValueError, "2"),
        ({"patients": 3.0}, TypeError, "3.0"),
        ({"size": 16}, ValueError, "16"),
        ({"slices": (10, 5)}, ValueError, "(10, 5)"),
        ({"slices": (0, 5)}, ValueError, "slices[0]"),
        ({"slices": "16-40"}, ValueError, "16-40"),
        ({"scans_per_patient": (1, 100)}, ValueError, "100"),
        ({"classes": ("NCP", "Covid")}, ValueError, "Covid"),
        ({"classes": ("NCp",)}, ValueError, "Did you mean 'NCP'"),
        ({"classes": "NCP"}, ValueError, "'NCP'"),
        ({"classes": ("NCP", "NCP", "CP")}, ValueError, "repeat"),
        ({"classes": ()}, ValueError, "at least one"),
        ({"seed": -3}, ValueError, "-3"),
    ],
)
def test_write_dataset_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], named: str
) -> None:
    args: dict[str, object] = {"patients": 3, **SMALL}
    args.update(kwargs)
    with pytest.raises(error) as info:
        write_dataset(tmp_path / "out", **args)  # type: ignore[arg-type]
    assert named in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing written on bad arguments


def test_existing_folders_need_overwrite_and_only_phantom_output_is_deleted(
    tmp_path: Path,
) -> None:
    out = write_dataset(tmp_path / "out", patients=6, seed=1, **SMALL)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(out, patients=3, seed=1, **SMALL)
    write_dataset(out, patients=3, seed=1, overwrite=True, **SMALL)
    # The previous, larger data set is gone (no stale patients 4-6), other files stay.
    patients = {p.name for c in CLASSES for p in (out / c).iterdir() if p.is_dir()}
    assert patients == {"1", "2", "3"}
    assert (out / "notes.txt").read_text() == "mine"
    assert _tree_bytes(out) == {
        **_tree_bytes(write_dataset(tmp_path / "fresh", patients=3, seed=1, **SMALL)),
        "notes.txt": b"mine",
    }

    foreign = tmp_path / "foreign"
    (foreign / "NCP" / "7").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=MARKER_NAME):
        write_dataset(foreign, patients=3, overwrite=True, **SMALL)
    assert (foreign / "NCP" / "7").is_dir()

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        write_dataset(a_file, patients=3, **SMALL)


def test_an_interrupted_run_is_marked_and_a_rerun_ends_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = phantom.generate_scan

    def crash_on_third(*args: object, **kwargs: object) -> PhantomScan:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(phantom, "generate_scan", crash_on_third)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(out, patients=4, seed=2, **SMALL)
    monkeypatch.undo()
    assert json.loads((out / MARKER_NAME).read_text())["complete"] is False
    assert not (out / CSV_NAME).exists()
    write_dataset(out, patients=4, seed=2, overwrite=True, **SMALL)
    clean = write_dataset(tmp_path / "clean", patients=4, seed=2, **SMALL)
    assert _tree_bytes(out) == _tree_bytes(clean)


# ----------------------------------------------------------------------------------------------
# CLI and import hygiene


def test_cli_writes_a_dataset_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = ["phantom", str(out), "--patients", "4", "--size", "32", "--seed", "3"]
    argv += ["--slices", "3", "4", "--scans", "1", "1", "--no-progress"]
    assert main(argv) == 0
    summary = capsys.readouterr().out
    assert "wrote 4 patients, 4 scans" in summary and "NCP 2/2" in summary
    assert len(_read_csv(out)) == 4
    assert _tree_bytes(out) == _tree_bytes(
        write_dataset(
            tmp_path / "api", patients=4, size=32, seed=3, slices=(3, 4), scans_per_patient=1
        )
    )


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--patients", "2"], "patients must be >= 3"),
        (["--size", "16"], "16"),
        (["--classes", "NCP", "Normall"], "Did you mean 'Normal'"),
        (["--slices", "9", "3"], "(9, 3)"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    assert main(["phantom", str(tmp_path / "x"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert "resnet3d phantom: error:" in err and named in err


def test_cli_refuses_a_non_empty_folder_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["phantom", str(tmp_path), "--patients", "3", "--size", "32"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_cli_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    from resnet3d.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in commands.choices["phantom"]._actions if a.option_strings]
    for action in options:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and "default" in action.help, action.option_strings
        if action.default not in (None, False, argparse.SUPPRESS):
            value = action.default
            shown = " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
            assert f"default {shown}" in action.help, (action.option_strings, action.help)
    with pytest.raises(SystemExit):
        main(["phantom", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at any space
    assert "(default 30)" in text and "(default 16 40)" in text and ".masks" in text


def test_phantom_does_not_import_torch() -> None:
    code = "import sys, resnet3d.data.phantom; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_lesion_scale_grows_findings_and_keeps_the_default() -> None:
    base = phantom.generate_scan("NCP", seed=7, n_slices=12, size=64)
    same = phantom.generate_scan("NCP", seed=7, n_slices=12, size=64, lesion_scale=1.0)
    assert np.array_equal(base.slices, same.slices)
    big = phantom.generate_scan("NCP", seed=7, n_slices=12, size=64, lesion_scale=2.0)
    assert big.lesion_mask.sum() > 1.5 * base.lesion_mask.sum()
    # Only the findings change: the anatomy is the same and nothing outside the lungs moves.
    assert np.array_equal(big.lung_mask, base.lung_mask)
    changed = big.hu != base.hu
    assert changed.any() and not (changed & ~big.lung_mask).any()
    normal = phantom.generate_scan("Normal", seed=7, n_slices=12, size=64, lesion_scale=3.0)
    assert not normal.lesion_mask.any()
    for bad in (0.0, 10.0):
        with pytest.raises(ValueError, match="lesion_scale"):
            phantom.generate_scan("NCP", seed=7, n_slices=4, size=32, lesion_scale=bad)
    with pytest.raises(TypeError, match="lesion_scale"):
        phantom.generate_scan("NCP", seed=7, n_slices=4, size=32, lesion_scale="2")
