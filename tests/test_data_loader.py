"""Compact loader batches (gray as one channel, 8-bit as uint8) equal the full ones on device."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from resnet3d.data.cache import build_cache
from resnet3d.data.dataset import VolumeDataset, _stack_volumes
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.distributed import DistInfo
from resnet3d.engine.loader import loader_channels, make_loader, prepare_batch
from resnet3d.engine.train import TrainConfig, Trainer

CPU = torch.device("cpu")
SIZE = 8


def _write_scan(folder: Path, n: int, rng: np.random.Generator, kind: str) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        if kind == "rgb":
            image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        elif kind == "u16":
            image = Image.fromarray(rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16))
        else:
            image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8))
        image.save(folder / f"{i}.png")


def make_data(root: Path, extra: str | None = None) -> Path:
    """Three classes of 8-bit gray scans; ``extra`` adds one scan of RGB or 16-bit slices."""
    rng = np.random.default_rng(0)
    rows = []
    scans = [("NCP", "1", "10", 9), ("NCP", "2", "20", 5), ("CP", "3", "30", 8)]
    scans += [("Normal", "4", "40", 6), ("Normal", "5", "50", 7)]
    for label, patient, scan, n in scans:
        kind = extra if (extra is not None and scan == "30") else "gray"
        _write_scan(root / label / patient / scan, n, rng, kind)
        rows.append(["x.zip", label, patient, scan, n])
    with open(root / "unzip_filenames.csv", "w", newline="") as fh:
        header = ["zip_file", "label", "patient_id", "scan_id", "n_slice"]
        csv.writer(fh).writerows([header, *rows])
    return root


def loaders(dataset: Dataset, **kwargs: Any) -> tuple[Iterator[Any], int | None]:
    """Batches of the full path (items as before) and of the compact path, side by side."""
    full = make_loader(dataset, 4, device=CPU, dist_info=DistInfo(), shuffle=True, **kwargs)
    compact = make_loader(
        dataset, 4, device=CPU, dist_info=DistInfo(), shuffle=True, compact=True, **kwargs
    )
    assert loader_channels(full) is None
    return zip(full, compact, strict=True), loader_channels(compact)


def assert_same_model_inputs(dataset: VolumeDataset, channels_last: bool, **kwargs: Any) -> None:
    pairs, channels = loaders(dataset, **kwargs)
    assert channels == dataset.stacker.channels
    seen = 0
    for (i_full, (v_full, y_full, s_full, p_full)), (i_c, (v_c, y_c, s_c, p_c)) in pairs:
        assert torch.equal(i_full, i_c) and torch.equal(y_full, y_c)
        assert (s_full, p_full) == (s_c, p_c) and y_c.dtype == torch.int64
        # The old path: items, default_collate, prepare_batch without channels.
        old = torch.stack([dataset[int(i)][0] for i in i_full])
        assert torch.equal(v_full, old)
        expected = prepare_batch(old, CPU, channels_last)
        got = prepare_batch(v_c, CPU, channels_last, channels)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert torch.equal(got, expected)
        assert got.stride() == expected.stride()
        seen += len(i_c)
    assert seen == len(dataset)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_compact_batches_equal_full_batches_from_png_and_cache(
    tmp_path: Path, channels: int, channels_last: bool, dtype: str
) -> None:
    index = ScanIndex.from_ccii(make_data(tmp_path / "data"))
    stacker = SliceStacker(depth=2, size=SIZE, channels=channels, dtype=dtype)
    build_cache(index, tmp_path / "cache", stacker)
    decode = VolumeDataset(index, stacker)
    cached = VolumeDataset(index, stacker, cache=tmp_path / "cache")
    for dataset in (decode, cached):
        _, (_, (compact, *_)) = next(iter(loaders(dataset)[0]))
        # Gray 8-bit data travel as one uint8 channel whatever the stacker's dtype.
        assert compact.shape[1] == 1 and compact.dtype == torch.uint8
        assert_same_model_inputs(dataset, channels_last)


@pytest.mark.parametrize("extra", ["rgb", "u16"])
def test_batches_mixing_gray_with_colour_or_deep_scans(tmp_path: Path, extra: str) -> None:
    index = ScanIndex.from_ccii(make_data(tmp_path / "data", extra))
    stacker = SliceStacker(depth=2, size=SIZE, remainder="pad", pad_mode="zero")
    build_cache(index, tmp_path / "cache", stacker)
    decode = VolumeDataset(index, stacker)
    cached = VolumeDataset(index, stacker, cache=tmp_path / "cache")
    for dataset in (decode, cached):
        assert_same_model_inputs(dataset, channels_last=False)
    rows = [decode.load_batch([i], compact=True)[0] for i in range(len(decode))]
    colour_or_deep = [r for r in rows if r.shape[1] == 3 or r.dtype == torch.float32]
    assert colour_or_deep and len(colour_or_deep) < len(rows)


def test_workers_deliver_the_same_batches(tmp_path: Path) -> None:
    index = ScanIndex.from_ccii(make_data(tmp_path / "data"))
    stacker = SliceStacker(depth=2, size=SIZE, dtype="uint8")
    build_cache(index, tmp_path / "cache", stacker)
    dataset = VolumeDataset(index, stacker, cache=tmp_path / "cache")
    assert_same_model_inputs(dataset, channels_last=False, workers=1)


def test_transform_and_plain_datasets_keep_their_items(tmp_path: Path) -> None:
    index = ScanIndex.from_ccii(make_data(tmp_path / "data"))
    stacker = SliceStacker(depth=2, size=SIZE)
    flipped = VolumeDataset(index, stacker, transform=lambda v: v.flip(-1))
    item = flipped[0][0]
    assert item.shape == (3, 2, SIZE, SIZE)  # public items are unchanged
    batch = flipped.load_batch([0, 1], compact=True)[0]
    assert batch.shape == (2, 3, 2, SIZE, SIZE) and torch.equal(batch[0], item)
    assert_same_model_inputs(flipped, channels_last=False)
    plain = ItemsOnly(VolumeDataset(index, stacker))
    loader = make_loader(plain, 4, device=CPU, dist_info=DistInfo(), shuffle=False, compact=True)
    assert loader_channels(loader) is None
    _, (volumes, labels, _, _) = next(iter(loader))
    assert volumes.shape[1] == 3 and labels.dtype == torch.int64


def test_predict_scans_input_is_unchanged(tmp_path: Path) -> None:
    scan = tmp_path / "data" / "NCP" / "1" / "10"
    make_data(tmp_path / "data")
    for channels in (1, 3):
        stacker = SliceStacker(depth=4, size=SIZE, channels=channels)
        compact = torch.from_numpy(stacker.load(scan, compact=True))
        assert compact.shape == (2, 1, 4, SIZE, SIZE) and compact.dtype == torch.uint8
        for cl in (False, True):
            expected = prepare_batch(stacker(scan), CPU, cl)
            assert torch.equal(prepare_batch(compact, CPU, cl, stacker.channels), expected)


def test_uint8_scaling_is_an_exact_division() -> None:
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 1, 16, 16)
    expected = np.arange(256, dtype=np.uint8).astype(np.float32) / np.float32(255)
    got = prepare_batch(levels, CPU, False).flatten().numpy()
    assert np.array_equal(got, expected)


def test_bad_batches_give_clear_errors() -> None:
    two = torch.zeros(2, 2, 4, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\(B, 3, D, H, W\).*\(2, 2, 4, 8, 8\)"):
        prepare_batch(two, CPU, False, channels=3)
    with pytest.raises(ValueError, match=r"\(B, 3, D, H, W\).*got \(2, 4, 8, 8\)"):
        prepare_batch(torch.zeros(2, 4, 8, 8), CPU, False, channels=3)
    with pytest.raises(ValueError, match="channels must be an int >= 1"):
        prepare_batch(two, CPU, False, channels=0)
    assert prepare_batch(two, CPU, False).shape == two.shape  # no channels: as given
    with pytest.raises(ValueError, match=r"share \(D, H, W\).*\(1, 4, 8, 8\)"):
        _stack_volumes([np.zeros((1, 4, 8, 8), np.uint8), np.zeros((1, 4, 8, 6), np.uint8)])
    with pytest.raises(ValueError, match="at least one volume"):
        _stack_volumes([])


class ItemsOnly(Dataset):
    """A data set without ``load_batch``: the loader takes items one by one (the old path)."""

    def __init__(self, dataset: VolumeDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i]


def test_training_on_compact_batches_matches_the_old_path_bitwise(tmp_path: Path) -> None:
    index = ScanIndex.from_ccii(make_data(tmp_path / "data"))
    stacker = SliceStacker(depth=2, size=SIZE)  # float32 items, as `resnet3d train` makes
    build_cache(index, tmp_path / "cache", stacker)

    def train(name: str, wrap: Any) -> Trainer:
        config = TrainConfig(
            out_dir=str(tmp_path / name),
            model="resnet10",
            model_overrides={"widths": (4, 8, 8, 8)},
            epochs=2,
            batch_size=4,
            precise_bn=2,
            progress=False,
            device="cpu",
            precision="fp32",
        )
        data = VolumeDataset(index, stacker, cache=tmp_path / "cache")
        trainer = Trainer(config, wrap(data), wrap(data), index.classes)
        trainer.fit()
        return trainer

    new = train("compact", lambda d: d)
    old = train("items", ItemsOnly)
    assert loader_channels(new.train_loader) == 3 and loader_channels(old.train_loader) is None
    sa, sb = new.model.state_dict(), old.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r.val_loss for r in new.history] == [r.val_loss for r in old.history]
