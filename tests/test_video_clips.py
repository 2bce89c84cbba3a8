"""Random clips per epoch (VolumeDataset(clip_sampling="random"), TrainConfig.clip_sampling,
``resnet3d train --clip-sampling``): draws per epoch, from the cache, in DataLoader workers,
and an interrupted-then-resumed run that equals an uninterrupted one."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.toy import TINY, ToyVolumes

from resnet3d.cli import main
from resnet3d.cli.train import add_training_options, train_config
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.checkpoint import CheckpointError
from resnet3d.engine.distributed import DistInfo
from resnet3d.engine.loader import make_loader
from resnet3d.engine.train import TrainConfig, Trainer

pytest.importorskip("av")

STACKER = SliceStacker(depth=4, size=16)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 videos per class in 1 group, 12 frames of 16 x 16: 8 mp4 files, 3 clips each."""
    from resnet3d.data.synthetic_video import write_video_dataset

    root = tmp_path_factory.mktemp("clips") / "videos"
    return write_video_dataset(root, videos_per_class=2, groups=1, frames=12, size=16, seed=5)


@pytest.fixture(scope="module")
def index(videos: Path) -> ScanIndex:
    return ScanIndex.from_path(videos)


def frames(dataset: VolumeDataset) -> np.ndarray:
    """The frame numbers of every sample at the data set's current epoch."""
    return np.stack([dataset.locate(i)[2] for i in range(len(dataset))])


def test_random_clips_change_per_epoch_and_repeat_per_seed(index: ScanIndex) -> None:
    uniform = VolumeDataset(index, STACKER)
    dataset = VolumeDataset(index, STACKER, clip_sampling="random", seed=3)
    assert len(dataset) == len(uniform) == 24  # a video keeps its number of samples
    epochs = []
    for epoch in range(4):
        dataset.set_epoch(epoch)
        epochs.append(frames(dataset))
    assert all(not np.array_equal(epochs[0], other) for other in epochs[1:])
    again = VolumeDataset(index, STACKER, clip_sampling="random", seed=3)
    again.set_epoch(2)
    assert np.array_equal(frames(again), epochs[2])
    other_seed = VolumeDataset(index, STACKER, clip_sampling="random", seed=4)
    other_seed.set_epoch(2)
    assert not np.array_equal(frames(other_seed), epochs[2])
    # Consecutive frames; clip k of a video starts in the k-th third of the 9 possible starts.
    for drawn in epochs:
        assert np.array_equal(np.diff(drawn, axis=1), np.ones((24, 3), dtype=np.int64))
        starts = drawn[:, 0].reshape(8, 3)
        assert ((starts >= [0, 3, 6]) & (starts < [3, 6, 9])).all()
    # Uniform clips never move, whatever the epoch.
    fixed = frames(uniform)
    uniform.set_epoch(3)
    assert np.array_equal(frames(uniform), fixed)
    assert np.array_equal(fixed[:3], [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])


def test_random_clips_hold_the_frames_they_name(index: ScanIndex, tmp_path: Path) -> None:
    """Decoded, from the cache and batched: each sample is its located frames."""
    two = index[:2]
    dataset = VolumeDataset(two, STACKER, clip_sampling="random", seed=1)
    dataset.set_epoch(1)
    all_frames = [STACKER.replace(depth=12).load(row.path)[0] for row in two]  # (C, 12, H, W)
    for i in range(len(dataset)):
        row, _, numbers = dataset.locate(i)
        expected = all_frames[[r.key for r in two].index(row.key)]
        assert torch.equal(dataset[i][0], torch.from_numpy(expected[:, numbers]))

    two.to_csv(tmp_path / "two.csv")
    argv = ["build-volumes", str(tmp_path / "two.csv"), str(tmp_path / "cache")]
    assert main([*argv, "--size", "16", "--no-progress"]) == 0
    cached = VolumeDataset(two, STACKER, cache=tmp_path / "cache", clip_sampling="random", seed=1)
    cached.set_epoch(1)
    assert np.array_equal(frames(cached), frames(dataset))
    items = list(range(len(dataset)))
    for compact in (False, True):
        got = cached.load_batch(items, compact=compact)[0]
        want = dataset.load_batch(items, compact=compact)[0]
        assert torch.equal(got, want)


def test_workers_see_the_epoch(index: ScanIndex) -> None:
    """A persistent DataLoader worker holds a copy of the data set made once; set_epoch in
    the main process still reaches it."""
    dataset = VolumeDataset(index[:2], STACKER, clip_sampling="random", seed=2)
    loader = make_loader(
        dataset, 6, device=torch.device("cpu"), dist_info=DistInfo(), shuffle=False, workers=1
    )
    for epoch in (0, 1, 2):
        dataset.set_epoch(epoch)
        (batch,) = [volumes for _, (volumes, *_rest) in loader]
        assert torch.equal(batch, torch.stack([dataset[i][0] for i in range(6)]))


def test_bad_values_are_named(index: ScanIndex) -> None:
    with pytest.raises(ValueError, match="clip_sampling"):
        VolumeDataset(index, STACKER, clip_sampling="randm")
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        VolumeDataset(index, STACKER, clip_sampling="random", seed=-1)
    with pytest.raises(ValueError, match="epoch must be an int >= 0, got -2"):
        VolumeDataset(index, STACKER).set_epoch(-2)
    with pytest.raises(ValueError, match="clip_sampling"):
        TrainConfig(clip_sampling="random-ish")
    config = TrainConfig(clip_sampling="random", model="resnet10", model_overrides=dict(TINY))
    with pytest.raises(ValueError, match=r"needs a training set that draws clips.*ToyVolumes"):
        Trainer(config, ToyVolumes(8, 0), None, ["a", "b", "c"])
    own = VolumeDataset(index, STACKER, clip_sampling="random")
    with pytest.raises(ValueError, match="samples clips 'random' but TrainConfig"):
        Trainer(TrainConfig(model="resnet10", model_overrides=dict(TINY)), own, None, index.classes)


def make_trainer(out: Path, index: ScanIndex, epochs: int, **kwargs: object) -> Trainer:
    config = TrainConfig(
        out_dir=str(out),
        model="resnet10",
        model_overrides=dict(TINY),
        epochs=epochs,
        batch_size=8,
        lr_step=2,
        workers=0,
        precision="fp32",
        progress=False,
        **kwargs,  # type: ignore[arg-type]
    )
    train = VolumeDataset(index[::2], STACKER)
    valid = VolumeDataset(index[1::2], STACKER)
    return Trainer(config, train, valid, index.classes, split_hash="clips")


def test_interrupted_and_resumed_run_sees_the_same_clips(index: ScanIndex, tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "straight", index, 2, clip_sampling="random")
    straight.fit()
    uniform = make_trainer(tmp_path / "uniform", index, 2)
    uniform.fit()
    first = make_trainer(tmp_path / "resumed", index, 1, clip_sampling="random")
    first.fit()
    resumed = make_trainer(tmp_path / "resumed", index, 2, clip_sampling="random")
    resumed.fit(resume="auto")
    sa, sb, su = (t.model.state_dict() for t in (straight, resumed, uniform))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fc.weight"], su["fc.weight"])  # random clips were trained on
    # The trainer's copy draws; the data set handed to it, and validation, stay uniform.
    assert straight.train_set.clip_sampling == "random"  # type: ignore[attr-defined]
    assert straight.valid_set.clip_sampling == "uniform"  # type: ignore[attr-defined]

    changed = make_trainer(tmp_path / "resumed", index, 3)
    with pytest.raises(CheckpointError, match="clip_sampling: 'random' -> 'uniform'"):
        changed.fit(resume="auto")


def test_cli_option_reaches_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_training_options(parser)
    assert train_config(parser.parse_args([]), Path("x")).clip_sampling == "uniform"
    args = parser.parse_args(["--clip-sampling", "random"])
    assert train_config(args, Path("x")).clip_sampling == "random"
    with pytest.raises(SystemExit):
        parser.parse_args(["--clip-sampling", "sometimes"])
