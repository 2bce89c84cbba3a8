"""VolumeDataset: volume-level samples, splits, locating slices, errors in DataLoader workers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import ccii
from torch.utils.data import DataLoader

from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.data.split import split_by_patient
from resnet3d.data.volumes import SliceStacker
from resnet3d.errors import CorruptSliceError, DatasetLayoutError

LAYOUT: Mapping[str, Mapping[str, Mapping[str, int]]] = {
    "NCP": {"1": {"10": 9, "11": 4}, "2": {"20": 3}},
    "CP": {"3": {"30": 8}, "4": {"40": 5}},
    "Normal": {"5": {"50": 6}, "6": {"60": 7}},
}


def make_ccii(root: Path) -> Path:
    return ccii.make_ccii(root, LAYOUT, rgb=True)


@pytest.fixture
def index(tmp_path: Path) -> ScanIndex:
    return ScanIndex.from_ccii(make_ccii(tmp_path / "ccii"))


def test_every_volume_of_every_scan_is_a_sample(index: ScanIndex) -> None:
    stacker = SliceStacker(depth=4, size=None)
    ds = VolumeDataset(index, stacker)
    # drop: floor(n / 4) volumes per scan: 9->2, 4->1, 3->0, 8->2, 5->1, 6->1, 7->1
    assert len(ds) == 8
    assert ds.targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    seen = []
    for i in range(len(ds)):
        volume, label, scan_id, patient_id = ds[i]
        assert isinstance(volume, torch.Tensor) and volume.shape == (3, 4, 6, 6)
        assert volume.dtype == torch.float32
        row, v, slices = ds.locate(i)
        assert (label, scan_id, patient_id) == (row.label_index, row.scan_id, row.patient_id)
        np.testing.assert_array_equal(volume.numpy(), stacker.load(row.path)[v])
        assert slices.tolist() == stacker.volume_indices(row.n_slices)[v].tolist()
        seen.append((scan_id, v))
    assert seen[:3] == [("10", 0), ("10", 1), ("11", 0)]
    paths = ds.slice_paths(1)
    assert [p.name for p in paths] == ["4.png", "5.png", "6.png", "7.png"]  # type: ignore[union-attr]
    assert ds[-1][2] == "60"
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_pad_policy_and_uint8_and_transform(index: ScanIndex) -> None:
    stacker = SliceStacker(depth=4, size=(3, 3), remainder="pad", dtype="uint8")
    ds = VolumeDataset(index, stacker, transform=lambda v: v[:1])
    assert len(ds) == sum(-(-r.n_slices // 4) for r in index)
    volume, *_ = ds[0]
    assert volume.dtype == torch.uint8 and volume.shape == (1, 4, 3, 3)


def test_split_argument(index: ScanIndex) -> None:
    split = split_by_patient(index, (0.5, 0.25, 0.25), seed=0)
    stacker = SliceStacker(depth=2, size=None)
    parts = {n: VolumeDataset(split, stacker, split=n) for n in ("train", "valid", "test")}
    assert sum(len(p) for p in parts.values()) == len(VolumeDataset(index, stacker))
    patients = [{p.index[i].patient_id for i in range(len(p.index))} for p in parts.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    with pytest.raises(ValueError, match="pass split="):
        VolumeDataset(split, stacker)
    with pytest.raises(ValueError, match="needs a Split"):
        VolumeDataset(index, stacker, split="train")
    with pytest.raises(KeyError, match="Did you mean 'test'"):
        VolumeDataset(split, stacker, split="tests")


def test_stale_index_is_reported(index: ScanIndex) -> None:
    ds = VolumeDataset(index, SliceStacker(depth=2, size=None))
    row = index[0]
    (row.path / "0.png").unlink()
    with pytest.raises(DatasetLayoutError, match="rebuild the index") as info:
        ds[0]
    assert str(row.path) in str(info.value)


def test_dataloader_worker_reports_the_bad_slice(index: ScanIndex) -> None:
    row = index[0]
    bad = row.path / "2.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    ds = VolumeDataset(index, SliceStacker(depth=4, size=None, threads=1))
    loader = DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(CorruptSliceError) as info:
        next(iter(loader))
    assert str(bad) in str(info.value)
    assert "worker" in str(info.value)  # re-raised from the worker process, same type
