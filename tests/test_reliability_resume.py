"""A resume continues the same run or none: changed settings are refused, listed old -> new.

Every setting that shapes the result (recipe, model, preprocessing, split, precision, seed,
augmentation) must be the checkpoint's; only more epochs, patience and where and how fast the
run goes may change. A refused resume writes nothing, and an allowed one records what it used.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.toy import TINY

from resnet3d.cli import main
from resnet3d.data import phantom
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.checkpoint import CheckpointError, load_checkpoint
from resnet3d.engine.train import TrainConfig
from resnet3d.workflows import fit_from_folder

FRACTIONS = (0.5, 0.5, 0.0)
STACKER = dict(depth=4, size=16)


def config(out: Path, **changes: Any) -> TrainConfig:
    settings: dict[str, Any] = dict(
        out_dir=str(out),
        model="resnet10",
        model_overrides=dict(TINY),
        epochs=1,
        batch_size=2,
        lr_step=1,
        progress=False,
        workers=0,
        precision="fp32",
    )
    return TrainConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six one-scan patients, two per class; 16 x 16 volumes of depth 4."""
    return phantom.write_dataset(
        tmp_path_factory.mktemp("resume") / "data",
        patients=6,
        size=32,
        seed=2,
        slices=8,
        scans_per_patient=1,
        masks=False,
    )


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of a tiny run (fit_from_folder); tests resume copies of its folder."""
    run = tmp_path_factory.mktemp("trained") / "run"
    fit_from_folder(data, config(run), SliceStacker(**STACKER), fractions=FRACTIONS)
    return run


def copy_run(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def resume(
    data: Path,
    run: Path,
    stacker: dict[str, Any] | None = None,
    fractions: tuple[float, ...] = FRACTIONS,
    split_seed: int = 0,
    **changes: Any,
) -> None:
    """``fit_from_folder(..., resume="auto")`` of ``run`` with 2 epochs and ``changes``."""
    fit_from_folder(
        data,
        config(run, **{"epochs": 2, **changes}),
        SliceStacker(**{**STACKER, **(stacker or {})}),
        fractions=fractions,
        split_seed=split_seed,
        resume="auto",
    )


CHANGED = [
    ("depth", {}, {"depth": 2}, "preprocessing.depth: 4 -> 2"),
    ("size", {}, {"size": 24}, "preprocessing.size: [16, 16] -> [24, 24]"),
    ("lr", {"lr": 0.5}, {}, "lr: 0.001 -> 0.5"),
    ("batch_size", {"batch_size": 3}, {}, "batch_size: 2 -> 3"),
    ("seed", {"seed": 7}, {}, "seed: 0 -> 7"),
    ("model", {"model": "resnet18"}, {}, "model: 'resnet10' -> 'resnet18'"),
    ("dropout", {"model_overrides": {**TINY, "dropout": 0.5}}, {}, "model_overrides: "),
    ("augment", {"augment": "flip"}, {}, "augment: 'none' -> 'flip'"),
    ("precision", {"precision": "bf16"}, {}, "precision: 'fp32' -> 'bf16'"),
    ("lr_step", {"lr_step": 5}, {}, "lr_step: 1 -> 5"),
    ("weight_decay", {"weight_decay": 0.1}, {}, "weight_decay: 0.0 -> 0.1"),
    ("grad_accum", {"grad_accum": 2}, {}, "grad_accum: 1 -> 2"),
    ("monitor", {"monitor": "loss"}, {}, "monitor: 'accuracy' -> 'loss'"),
    ("precise_bn", {"precise_bn": 2}, {}, "precise_bn: 0 -> 2"),
]


@pytest.mark.parametrize(
    ("changes", "stacker", "listed"),
    [pytest.param(c, s, listed, id=name) for name, c, s, listed in CHANGED],
)
def test_resume_with_a_changed_setting_is_refused(
    trained: Path,
    data: Path,
    tmp_path: Path,
    changes: dict[str, Any],
    stacker: dict[str, Any],
    listed: str,
) -> None:
    run = copy_run(trained, tmp_path)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="cannot resume") as info:
        resume(data, run, stacker, **changes)
    message = str(info.value)
    assert listed in message and "\n" not in message
    assert (run / "last.pt").read_bytes() == before  # nothing recorded


def test_resume_with_fewer_epochs_than_trained_is_refused(
    trained: Path, data: Path, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    resume(data, run)
    with pytest.raises(CheckpointError, match=r"epochs: 2 -> 1 \(2 already trained\)"):
        resume(data, run, epochs=1)


def test_resume_with_other_split_settings_is_refused(
    trained: Path, data: Path, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    with pytest.raises(CheckpointError) as info:
        resume(data, run, fractions=(0.34, 0.66, 0.0), split_seed=3)
    assert "split.seed: 0 -> 3" in str(info.value)
    assert "split.fractions: [0.5, 0.5, 0.0] -> [0.34, 0.66, 0.0]" in str(info.value)


def test_resume_with_several_changes_lists_each_in_one_error(
    trained: Path, data: Path, tmp_path: Path
) -> None:
    run = copy_run(trained, tmp_path)
    with pytest.raises(CheckpointError) as info:
        resume(data, run, {"depth": 2, "size": 24}, lr=0.5, seed=1)
    message = str(info.value)
    for listed in (
        "lr: 0.001 -> 0.5",
        "seed: 0 -> 1",
        "preprocessing.depth: 4 -> 2",
        "preprocessing.size: [16, 16] -> [24, 24]",
    ):
        assert listed in message
    assert "\n" not in message


def test_resume_with_other_depth_size_and_lr_in_cli_is_one_line_exit_2(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = [
        "train",
        *("--data", str(data), "--out-dir", str(run), "--model", "resnet10"),
        *("--epochs", "1", "--batch-size", "2", "--fractions", "0.5", "0.5", "0"),
        *("--precision", "fp32", "--workers", "0", "--no-progress"),
    ]
    assert main([*argv, "--depth", "4", "--size", "16"]) == 0
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    changed = [*argv, "--depth", "2", "--size", "24", "--lr", "0.5", "--resume", "auto"]
    changed[changed.index("--epochs") + 1] = "2"
    assert main(changed) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err
    for listed in ("preprocessing.depth: 4 -> 2", "[16, 16] -> [24, 24]", "lr: 0.001 -> 0.5"):
        assert listed in errors[0]
    assert (run / "last.pt").read_bytes() == before


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"workers": 1}, id="workers"),
        pytest.param({"progress": True}, id="progress"),
        pytest.param({"patience": 3}, id="patience"),
        pytest.param({"channels_last": "on"}, id="channels_last"),
        pytest.param({"device": "cpu"}, id="device"),
    ],
)
def test_resume_with_a_harmless_change_is_allowed_and_recorded(
    trained: Path, data: Path, tmp_path: Path, changes: dict[str, Any]
) -> None:
    run = copy_run(trained, tmp_path)
    resume(data, run, **changes)
    state = load_checkpoint(run / "last.pt")
    assert state["epoch"] == 2
    # What ran is what is recorded.
    assert state["train_config"] == config(run, epochs=2, **changes).to_dict()


def test_resume_with_more_epochs_is_allowed(trained: Path, data: Path, tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path)
    spelled = tmp_path / "." / "run"  # another spelling of the same folder
    used = config(spelled, epochs=3)
    result = fit_from_folder(
        data, used, SliceStacker(**STACKER), fractions=FRACTIONS, resume="auto"
    )
    assert [row.epoch for row in result.history] == [1, 2, 3]
    state = load_checkpoint(run / "last.pt")
    assert state["train_config"]["epochs"] == 3 and state["metadata"]["preprocessing"]["depth"] == 4


def test_new_run_over_a_split_made_with_other_settings_is_refused(
    data: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    fit_from_folder(data, config(run), SliceStacker(**STACKER), fractions=FRACTIONS)
    (run / "last.pt").unlink()
    (run / "best.pt").unlink()
    # A fresh start in that folder reuses split.json only with the settings it was made with.
    with pytest.raises(ValueError, match=r"split_seed: 0 -> 4"):
        fit_from_folder(
            data, config(run), SliceStacker(**STACKER), fractions=FRACTIONS, split_seed=4
        )
