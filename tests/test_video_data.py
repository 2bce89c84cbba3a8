"""Video data sets: class/<video> trees and CSVs, groups as patients, clips as volumes, and
train / evaluate / predict / build-volumes on the synthetic set from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet3d.cli import main
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex, video_group
from resnet3d.data.split import Split, split_by_patient, ucf101_split
from resnet3d.data.volumes import SliceStacker
from resnet3d.errors import DatasetLayoutError
from resnet3d.workflows import expand_scans, level_names, load_or_make_split

pytest.importorskip("av")

CLASSES = ("right", "left", "down", "up")


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 videos per class in 3 groups of 2, 8 frames of 16 x 16: 24 tiny mp4 files."""
    from resnet3d.data.synthetic_video import write_video_dataset

    root = tmp_path_factory.mktemp("video") / "videos"
    return write_video_dataset(root, videos_per_class=6, groups=3, frames=8, size=16, seed=3)


def test_ucf101_names_give_their_group_per_class() -> None:
    assert video_group("v_ApplyEyeMakeup_g08_c01.avi", "ApplyEyeMakeup") == "ApplyEyeMakeup_g08"
    assert video_group("/x/y/v_Rowing_g1_c12.MP4", "Rowing") == "Rowing_g01"
    # Not UCF101: every video is its own group (HMDB51, Kinetics clips).
    assert video_group("brush_hair_Aussie_goes_for_it_0.avi", "brush_hair") == (
        "brush_hair_Aussie_goes_for_it_0"
    )
    assert video_group("v_Rowing_g01.mp4", "Rowing") == "v_Rowing_g01"


def test_tree_of_videos_is_indexed_with_groups_as_patients(videos: Path) -> None:
    index = ScanIndex.from_path(videos)
    assert index.report.ok
    assert set(index.classes) == set(CLASSES)
    assert len(index) == 24 and len(index.patients()) == 12
    row = next(r for r in index if r.scan_id == "v_up_g02_c01")
    assert (row.label, row.patient_id, row.n_slices) == ("up", "up_g02", 8)
    assert row.path == videos / "up" / "v_up_g02_c01.mp4"
    assert level_names(index) == {"volume": "clip", "scan": "video", "patient": "group"}


def test_csv_of_videos_with_and_without_a_group_column(videos: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    files = sorted(videos.glob("*/*.mp4"))[:4]
    plain.write_text("path,label\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    index = ScanIndex.from_csv(plain)
    assert [r.patient_id for r in index] == [video_group(f, f.parent.name) for f in files]
    assert all(r.n_slices == 8 for r in index)

    grouped = videos.parent / "grouped.csv"  # relative paths are relative to the CSV
    grouped.write_text(
        "path,label,group\n"
        + "".join(
            f"{f.relative_to(videos.parent).as_posix()},{f.parent.name},src{k // 2}\n"
            for k, f in enumerate(files)
        )
    )
    index = ScanIndex.from_csv(grouped)
    assert [r.patient_id for r in index] == ["src0", "src0", "src1", "src1"]

    both = tmp_path / "both.csv"
    both.write_text(f"path,label,patient_id,group\n{files[0]},{files[0].parent.name},a,b\n")
    with pytest.raises(DatasetLayoutError, match="patient_id 'a' and group 'b' differ"):
        ScanIndex.from_csv(both)


def test_split_keeps_each_group_on_one_side(videos: Path) -> None:
    index = ScanIndex.from_path(videos)
    split = split_by_patient(index, seed=5)
    sides = {}
    for name in ("train", "valid", "test"):
        for row in split[name]:
            assert sides.setdefault(row.patient_id, name) == name
        assert {r.label for r in split[name]} == set(CLASSES)  # one group per class each
    assert len(sides) == 12


def test_dataset_yields_clips_with_labels(videos: Path) -> None:
    index = ScanIndex.from_path(videos)
    dataset = VolumeDataset(index[:3], SliceStacker(depth=4, size=16))
    assert len(dataset) == 6  # 8 frames: two clips of 4 per video
    clip, label, scan, patient = dataset[1]
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.float32
    assert (label, scan, patient) == (index[0].label_index, index[0].scan_id, "down_g01")
    row, number, frames = dataset.locate(1)
    assert number == 1 and list(frames) == [4, 5, 6, 7]
    assert dataset.slice_paths(1) == [row.path] * 4
    batch = dataset.load_batch([0, 1, 2], compact=True)[0]
    assert batch.shape == (3, 3, 4, 16, 16) and batch.dtype == torch.uint8
    assert torch.equal(batch[1].float() / 255, clip)


def test_cache_stores_decoded_frames_like_slices(videos: Path, tmp_path: Path) -> None:
    index = ScanIndex.from_path(videos)[:2]
    index.to_csv(tmp_path / "two.csv")
    assert main(["build-volumes", str(tmp_path / "two.csv"), str(tmp_path / "cache"),
                 "--size", "16", "--no-progress"]) == 0  # fmt: skip
    stacker = SliceStacker(depth=4, size=16)
    cached = VolumeDataset(index, stacker, cache=tmp_path / "cache")
    assert cached.cache is not None
    assert cached.cache.slices(index[0].key).shape == (8, 16, 16, 3)
    decoded = VolumeDataset(index, stacker)
    for i in range(len(decoded)):
        assert np.array_equal(cached[i][0].numpy(), decoded[i][0].numpy())


def test_train_evaluate_predict_on_videos(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--data", str(videos), "--out-dir", str(run), "--model", "resnet10"]
    argv += ["--depth", "4", "--size", "16", "--channels", "3", "--epochs", "1"]
    argv += ["--batch-size", "8", "--workers", "0", "--precision", "fp32", "--no-progress"]
    assert main(argv) == 0
    test_groups = json.loads((run / "split.json").read_text())["patients"]["test"]
    assert sorted(g.split("_")[0] for g in test_groups) == sorted(CLASSES)  # a group per class

    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(run / "last.pt"), "--data", str(videos)]
    assert main([*argv, "--out", str(out), "--no-plots", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "evaluated 16 clips of 8 videos (test split)" in printed
    document = json.loads((out / "evaluation.json").read_text())
    assert list(document["levels"]) == ["volume", "scan", "patient"]
    assert document["level_names"] == {"volume": "clip", "scan": "video", "patient": "group"}
    counts = [document["levels"][level]["n_samples"] for level in ("volume", "scan", "patient")]
    assert counts == [16, 8, 4]  # a group of 2 videos per class

    one = videos / "up" / "v_up_g01_c01.mp4"
    assert main(["predict", str(one), str(videos / "left"), "--checkpoint", str(run / "last.pt"),
                 "--json", str(tmp_path / "p.json")]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "p.json").read_text())
    assert [Path(r["scan"]) for r in rows] == [one, *expand_scans([videos / "left"])]
    assert len(rows) == 7 and all(r["n_volumes"] == 2 for r in rows)
    assert set(rows[0]["probabilities"]) == set(CLASSES)


def write_lists(videos: Path, folder: Path, test_groups: set[int]) -> tuple[Path, Path]:
    """UCF101-style lists of the fixture's videos: ``test_groups`` to test, the rest to train."""
    train, test = [], []
    for number, label in enumerate(sorted(CLASSES), start=1):
        for video in sorted((videos / label).glob("*.mp4")):
            name = f"{label}/{video.stem}.avi"  # the lists name .avi files; matched by stem
            group = int(video.stem.split("_g")[1][:2])
            (test if group in test_groups else train).append(name)
            if group not in test_groups:
                train[-1] += f" {number}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (folder / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return folder / "trainlist01.txt", folder / "testlist01.txt"


def test_ucf101_official_lists_give_a_fixed_split(videos: Path, tmp_path: Path) -> None:
    index = ScanIndex.from_path(videos)
    trainlist, testlist = write_lists(videos, tmp_path, {1})
    split = ucf101_split(index, trainlist, testlist, valid_groups=[3])
    for name, groups in (("train", {"g02"}), ("valid", {"g03"}), ("test", {"g01"})):
        assert {p.rsplit("_", 1)[1] for p in split[name].patients()} == groups
        assert len(split[name]) == 8  # 2 videos of one group per class
    assert split.seed is None and split.fractions == (0.3333, 0.3333, 0.3333)
    again = Split.from_json(split.to_json(), index)
    assert again.hash == split.hash
    # A saved fixed split is used by a run whatever its --fractions and --split-seed.
    split.to_json(tmp_path / "run" / "split.json")
    used = load_or_make_split(index, tmp_path / "run", fractions=(0.5, 0.25, 0.25), seed=9)
    assert used.hash == split.hash


def test_ucf101_lists_that_do_not_fit_are_refused(videos: Path, tmp_path: Path) -> None:
    index = ScanIndex.from_path(videos)
    trainlist, testlist = write_lists(videos, tmp_path, {1})
    lines = trainlist.read_text().splitlines()
    trainlist.write_text("\n".join(lines[1:]) + "\n")  # one video of the index unlisted
    with pytest.raises(DatasetLayoutError, match=r"1 video\(s\) of the data set are in neither"):
        ucf101_split(index, trainlist, testlist)
    assert len(ucf101_split(index, trainlist, testlist, strict=False).index) == 23
    trainlist.write_text("\n".join([*lines, "up/v_up_g09_c01.avi 4"]) + "\n")
    with pytest.raises(DatasetLayoutError, match=r"1 listed video\(s\) are not in the data set"):
        ucf101_split(index, trainlist, testlist)
    first_test = testlist.read_text().splitlines()[0]
    trainlist.write_text("\n".join([*lines, f"{first_test} 1"]) + "\n")
    with pytest.raises(DatasetLayoutError, match=r"1 video\(s\) are in both"):
        ucf101_split(index, trainlist, testlist)
    moved = [line for line in lines if "_g02_c01" not in line]
    trainlist.write_text("\n".join(moved) + "\n")
    testlist.write_text(testlist.read_text() + "down/v_down_g02_c01.avi\n")
    with pytest.raises(DatasetLayoutError, match="'down_g02' is in 'test' and 'train'"):
        ucf101_split(index, trainlist, testlist)
    trainlist.write_text("down/v_down_g02_c02.avi one\n")
    with pytest.raises(DatasetLayoutError, match=r"trainlist01\.txt:1: expected"):
        ucf101_split(index, trainlist, testlist)
