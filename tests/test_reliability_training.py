"""NaN or infinite input or loss stops training with one line naming the batch's scans.

The error is a ``ValueError`` (``TrainingDivergedError``, also a ``FloatingPointError``), so
the command line prints it as one line and exits 2. Under DDP the check is collective: a
fault on one rank stops every rank with the same error, none waits for the others.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from tests.helpers import toy
from tests.helpers.torchrun import ROOT, run_two_ranks
from tests.helpers.toy import LABELS, ToyVolumes, make_trainer

from resnet3d.cli import main
from resnet3d.data import phantom
from resnet3d.engine.checkpoint import load_checkpoint
from resnet3d.engine.train import TrainConfig, Trainer, TrainingDivergedError


def tiny_config(out: Path, **changes: object) -> TrainConfig:
    return toy.tiny_config(out, workers=0, **changes)


def test_nan_input_stops_training_naming_the_scan(tmp_path: Path) -> None:
    make_trainer(tmp_path, 1).fit()
    best = (tmp_path / "best.pt").read_bytes()
    poisoned = ToyVolumes(24, 0)
    poisoned.x[5, 0, 1, 2, 3] = float("nan")  # one voxel of sample 5: patient1/scan2
    trainer = Trainer(
        tiny_config(tmp_path), poisoned, ToyVolumes(12, 1), LABELS, split_hash="split-1"
    )
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit(resume="auto")
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert message.startswith("non-finite input at epoch 2, batch ")
    assert "scan(s) patient1/scan2 hold NaN or infinite values" in message
    assert "check the data" in message
    # Only the poisoned scan is named, not its batch mates; best.pt and last.pt are untouched.
    assert "patient0/" not in message and (tmp_path / "best.pt").read_bytes() == best
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_infinite_input_stops_training_naming_the_scan(tmp_path: Path) -> None:
    poisoned = ToyVolumes(24, 0)
    poisoned.x[17] = float("inf")  # patient4/scan8
    trainer = Trainer(tiny_config(tmp_path), poisoned, None, LABELS)
    with pytest.raises(TrainingDivergedError, match=r"non-finite input at epoch 1.*patient4/scan8"):
        trainer.fit()
    assert not (tmp_path / "last.pt").exists()


def test_nan_loss_stops_training_naming_the_batch_scans(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path, lr=1e30), ToyVolumes(24, 0), None, LABELS)
    with pytest.raises(TrainingDivergedError) as info:
        trainer.fit()
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert message.startswith("loss is ") and " at epoch 1, batch " in message
    # The batch's four volumes, as patient/scan ids (two volumes may share a scan).
    assert "on a batch of scan(s) patient" in message and "whose input is finite" in message
    assert "lower the learning rate (--lr, now 1e+30)" in message
    assert not (tmp_path / "last.pt").exists()


def test_huge_lr_in_cli_train_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = phantom.write_dataset(
        tmp_path / "data", patients=6, size=32, slices=8, scans_per_patient=1, masks=False
    )
    argv = [
        "train",
        *("--data", str(data), "--out-dir", str(tmp_path / "run"), "--model", "resnet10"),
        *("--size", "16", "--epochs", "3", "--batch-size", "2", "--lr", "1e30"),
        *("--fractions", "0.5", "0.5", "0", "--precision", "fp32", "--workers", "0"),
        "--no-progress",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert errors[0].startswith("resnet3d train: error: loss is ")
    assert "--lr, now 1e+30" in errors[0]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_empty_validation_split_warns_and_best_names_the_train_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # 2 patients per class: 0.7/0.15/0.15 gives the validation split none.
    data = phantom.write_dataset(
        tmp_path / "data", patients=6, size=32, slices=8, scans_per_patient=1, masks=False
    )
    argv = [
        "train",
        *("--data", str(data), "--out-dir", str(tmp_path / "run"), "--model", "resnet10"),
        *("--size", "16", "--epochs", "1", "--batch-size", "2", "--precision", "fp32"),
        *("--workers", "0", "--no-progress"),
    ]
    assert main(argv) == 0
    assert "the validation split has no patients" in caplog.text
    out = capsys.readouterr().out
    best = next(line for line in out.splitlines() if line.strip().startswith("best:"))
    # It used to say "val accuracy -1.47": the negated training loss under a validation name.
    assert "no validation set: lowest train loss" in best and "val accuracy" not in best


DDP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, sys.argv[2])
    from tests.helpers.toy import LABELS, TINY, ToyVolumes

    from resnet3d.engine.distributed import destroy_distributed
    from resnet3d.engine.train import TrainConfig, Trainer, TrainingDivergedError

    out = Path(sys.argv[1])
    poisoned = ToyVolumes(16, 0)
    poisoned.x[6] = float("nan")  # patient1/scan3: in one rank's share of some batch
    config = TrainConfig(
        out_dir=str(out / "run"), model="resnet10", model_overrides=dict(TINY), epochs=1,
        batch_size=2, progress=False, workers=0, precision="fp32",
    )
    trainer = Trainer(config, poisoned, None, LABELS)
    try:
        trainer.fit()
        message = "finished"
    except TrainingDivergedError as error:
        message = str(error)
    (out / f"rank{trainer.dist.rank}.txt").write_text(message)
    del trainer
    destroy_distributed(wait=False)
    """
)


@pytest.mark.slow
def test_nan_input_on_one_rank_stops_every_rank_without_hanging(tmp_path: Path) -> None:
    script = tmp_path / "ddp_nan.py"
    script.write_text(DDP_SCRIPT)
    proc = run_two_ranks(script, str(tmp_path), str(ROOT), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    messages = [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)]
    # Both ranks stop at the same batch with the same line, naming the poisoned scan.
    assert messages[0] == messages[1]
    assert messages[0].startswith("non-finite input at epoch 1")
    assert "patient1/scan3" in messages[0]
