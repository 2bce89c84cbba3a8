"""The training loop: exact resume, checkpoints, divergence, logs, bad input."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from tests.helpers.toy import LABELS, TINY, ToyVolumes, make_trainer, tiny_config

from resnet3d.engine.checkpoint import (
    CheckpointError,
    clean_temporary_files,
    load_checkpoint,
    save_checkpoint,
)
from resnet3d.engine.train import TrainConfig, Trainer, TrainingDivergedError


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_two_plus_two_equals_four_bitwise(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "straight", 4)
    straight.fit()
    first = make_trainer(tmp_path / "resumed", 2)
    first.fit()
    second = make_trainer(tmp_path / "resumed", 4)
    second.fit(resume="auto")
    assert second.epoch == 4 and second.step == straight.step
    assert params_equal(straight.model, second.model)
    # The learning-rate schedule continued too (x0.1 after 2 epochs with lr_step=2).
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    # The log continues cleanly: one header, epochs 1..4 once each, same values.
    with open(tmp_path / "resumed" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    with open(tmp_path / "straight" / "log.csv") as handle:
        rows_straight = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["val_loss"] for r in rows] == [r["val_loss"] for r in rows_straight]


def test_checkpoint_contents_load_weights_only(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 1)
    result = trainer.fit()
    assert result.best_checkpoint is not None and result.best_checkpoint.exists()
    state = torch.load(result.last_checkpoint, weights_only=True)
    for key in (
        "model",
        "optimizer",
        "scheduler",
        "scaler",
        "rng",
        "epoch",
        "step",
        "model_config",
        "train_config",
        "split_hash",
        "labels",
    ):
        assert key in state
    assert state["split_hash"] == "split-1" and state["epoch"] == 1


def test_fresh_run_refuses_to_overwrite(tmp_path: Path) -> None:
    make_trainer(tmp_path, 1).fit()
    with pytest.raises(FileExistsError, match="--resume auto"):
        make_trainer(tmp_path, 2).fit()


def test_resume_refuses_other_split_or_model(tmp_path: Path) -> None:
    make_trainer(tmp_path, 1).fit()
    trainer = make_trainer(tmp_path, 2)
    trainer.split_hash = "another-split"
    with pytest.raises(CheckpointError, match="split"):
        trainer.fit(resume="auto")
    config = tiny_config(tmp_path, model="resnet18")
    other = Trainer(config, ToyVolumes(8, 0), None, LABELS, split_hash="split-1")
    with pytest.raises(CheckpointError, match="model: 'resnet10' -> 'resnet18'"):
        other.fit(resume="auto")


def test_corrupt_or_missing_checkpoint_is_an_error(tmp_path: Path) -> None:
    make_trainer(tmp_path, 1).fit()
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=str(last)):
        make_trainer(tmp_path, 2).fit(resume="auto")
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        make_trainer(tmp_path / "b", 2).fit(resume=tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


def test_nan_loss_stops_and_keeps_best(tmp_path: Path) -> None:
    make_trainer(tmp_path, 1).fit()
    best_before = (tmp_path / "best.pt").read_bytes()
    poisoned = ToyVolumes(24, 0)
    poisoned.x[5] = float("nan")
    config = tiny_config(tmp_path, epochs=3)
    trainer = Trainer(config, poisoned, ToyVolumes(12, 1), LABELS, split_hash="split-1")
    with pytest.raises(TrainingDivergedError, match="non-finite input at epoch 2"):
        trainer.fit(resume="auto")
    assert (tmp_path / "best.pt").read_bytes() == best_before
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_uint8_volumes_train(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, epochs=1, precision="bf16")
    trainer = Trainer(config, ToyVolumes(8, 0, uint8=True), ToyVolumes(4, 1, uint8=True), LABELS)
    result = trainer.fit()
    assert math.isfinite(result.history[0].train_loss)
    assert trainer.precision == "bf16"


def test_gradient_accumulation_steps(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, 1, grad_accum=2)
    trainer.fit()
    assert trainer.step == 3  # 24 samples / (4 per batch x 2 batches per optimizer step)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epochs", 0, "epochs"),
        ("lr", -1.0, "lr"),
        ("precision", "fp8", "precision"),
        ("monitor", "acc", "accuracy"),
        ("batch_size", 2.5, "batch_size"),
    ],
)
def test_bad_train_config(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_empty_training_set_is_an_error(tmp_path: Path) -> None:
    config = TrainConfig(out_dir=str(tmp_path), model="resnet10", progress=False)
    with pytest.raises(ValueError, match="empty"):
        Trainer(config, ToyVolumes(0, 0), None, LABELS)


def test_sigkill_while_saving_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    good = {
        "format_version": 1,
        "model": {"w": torch.zeros(3)},
        "optimizer": {},
        "epoch": 1,
        "step": 1,
        "model_config": {},
    }
    target = tmp_path / "last.pt"
    save_checkpoint(good, target)
    script = textwrap.dedent(
        f"""
        import torch, sys
        from resnet3d.engine.checkpoint import save_checkpoint
        big = {{"format_version": 1, "model": {{"w": torch.randn(64, 1024, 1024)}},
               "optimizer": {{}}, "epoch": 2, "step": 2, "model_config": {{}}}}
        print("ready", flush=True)
        while True:
            save_checkpoint(big, {str(target)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    # Kill it while a write is under way (a 256 MB write takes a while; wait for its temp file).
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".last.pt.tmp-") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline, "the writer never started a temporary file"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(target)
    assert state["epoch"] in (1, 2)
    removed = clean_temporary_files(tmp_path)
    assert removed and not any(".tmp-" in p.name for p in tmp_path.iterdir())


def test_last_batch_of_one_sample_is_dropped_not_fatal(tmp_path: Path) -> None:
    # 9 volumes in batches of 4 leave one: BatchNorm cannot train on a single 1x1x1 map.
    config = tiny_config(tmp_path, epochs=1)
    trainer = Trainer(config, ToyVolumes(9, 0), None, LABELS)
    trainer.fit()
    assert trainer.step == 2


def test_precise_bn_recomputes_statistics_and_keeps_resume_exact(tmp_path: Path) -> None:
    straight = make_trainer(tmp_path / "a", 2, precise_bn=2)
    straight.fit()
    norms = [m for m in straight.model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    # Cumulative averaging was used and the momentum restored afterwards.
    assert all(m.momentum == 0.1 for m in norms)
    assert all(int(m.num_batches_tracked) == 2 for m in norms)
    first = make_trainer(tmp_path / "b", 1, precise_bn=2)
    first.fit()
    resumed = make_trainer(tmp_path / "b", 2, precise_bn=2)
    resumed.fit(resume="auto")
    assert params_equal(straight.model, resumed.model)
    with pytest.raises(ValueError, match="precise_bn"):
        TrainConfig(precise_bn=-1)


def test_resume_reads_the_checkpoint_onto_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression (found on an H100): reading a checkpoint onto the CUDA device put the RNG
    # states there, and restoring numpy's RNG from a CUDA tensor failed. Whatever the
    # training device, checkpoints are read onto the CPU.
    import resnet3d.engine.train as train_module

    make_trainer(tmp_path, 1).fit()
    seen: list[object] = []
    original = train_module.ckpt.load_checkpoint

    def spy(path: object, map_location: object = "cpu") -> dict:
        seen.append(map_location)
        return original(path, map_location=map_location)

    monkeypatch.setattr(train_module.ckpt, "load_checkpoint", spy)
    make_trainer(tmp_path, 2).fit(resume="auto")
    assert seen == ["cpu"]


def test_resume_at_another_thread_count_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # CPU kernels split reductions by thread: another count continues the recipe, not the bits.
    make_trainer(tmp_path, 1).fit()
    threads = torch.get_num_threads()
    assert load_checkpoint(tmp_path / "last.pt")["threads"] == threads
    with caplog.at_level("WARNING", logger="resnet3d.engine.train"):
        make_trainer(tmp_path, 2).fit(resume="auto")
    assert "CPU threads" not in caplog.text
    state = load_checkpoint(tmp_path / "last.pt")
    state["threads"] = threads + 1
    save_checkpoint(state, tmp_path / "last.pt")
    caplog.clear()
    with caplog.at_level("WARNING", logger="resnet3d.engine.train"):
        make_trainer(tmp_path, 3).fit(resume="auto")
    assert f"OMP_NUM_THREADS={threads + 1} for an exact resume" in caplog.text


def test_data_and_model_channels_must_agree(tmp_path: Path) -> None:
    data = pytest.importorskip("resnet3d.data")
    from resnet3d.data.phantom import write_dataset
    from resnet3d.data.volumes import SliceStacker

    root = write_dataset(tmp_path / "data", patients=3, size=32, slices=4, scans_per_patient=1)
    index = data.ScanIndex.from_path(root)
    gray = data.VolumeDataset(index, SliceStacker(depth=4, size=32, channels=1))
    config = TrainConfig(out_dir=str(tmp_path / "run"), model="resnet10", progress=False)
    # Before any step, with both ways out named (the model takes 3 channels by default).
    with pytest.raises(ValueError, match=r"training set gives 1-channel.*takes 3.*channels=3"):
        Trainer(config, gray, None, index.classes)
    with pytest.raises(ValueError, match="validation set gives 1-channel"):
        Trainer(config, ToyVolumes(6, 0), gray, index.classes)
    one = TrainConfig(
        out_dir=str(tmp_path / "run1"),
        model="resnet10",
        model_overrides={"in_channels": 1, **TINY},
        epochs=1,
        batch_size=2,
        progress=False,
    )
    Trainer(one, gray, gray, index.classes).fit()
