"""The train / evaluate / predict commands end to end on a tiny phantom, and their bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from tests.helpers.cli import RUNTIME_LINE
from tests.helpers.modules import hide_module

from resnet3d.cli import main
from resnet3d.data import phantom


def train_argv(root: Path, run: Path, epochs: int) -> list[str]:
    """``resnet3d train`` on the tiny phantom: resnet10, 32 px, batch 4, lr decay every epoch."""
    return [
        "train",
        *("--data", str(root), "--out-dir", str(run), "--model", "resnet10", "--size", "32"),
        *("--epochs", str(epochs), "--batch-size", "4", "--lr-step", "1"),
        *("--fractions", "0.34", "0.33", "0.33", "--no-progress"),
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli")
    root = phantom.write_dataset(
        base / "data", patients=9, size=32, seed=1, slices=(8, 8), scans_per_patient=(1, 1)
    )
    run = base / "run"
    code = main(train_argv(root, run, epochs=2))
    assert code == 0
    return root, run


def test_train_writes_checkpoints_split_and_log(trained: tuple[Path, Path]) -> None:
    _, run = trained
    for name in ("last.pt", "best.pt", "split.json", "log.csv"):
        assert (run / name).is_file(), name
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_train_resume_auto_continues(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, run = trained
    code = main([*train_argv(root, run, epochs=3), "--resume", "auto"])
    assert code == 0
    assert len((run / "log.csv").read_text().strip().splitlines()) == 4


def test_evaluate_levels_plots_and_json(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(run / "best.pt"),
                "--data",
                str(root),
                "--split",
                "test",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "volume" in text and "patient" in text
    # evaluate's default precision is fp32 (reported numbers); fp32 on a CPU is contiguous.
    assert re.search(r"^device cpu, precision fp32, memory contiguous$", text, re.MULTILINE)
    document = json.loads((out / "evaluation.json").read_text())
    assert set(document["levels"]) == {"volume", "scan", "patient"}
    assert document["levels"]["patient"]["n_samples"] == 3  # one test patient per class
    for level in ("volume", "scan", "patient"):
        assert (out / f"confusion_{level}.png").stat().st_size > 0
        assert (out / f"roc_{level}.png").stat().st_size > 0


def test_predict_table_and_files(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    scans = sorted(p for p in (root / "NCP").glob("*/*") if p.is_dir())[:2]
    out_json, out_csv = tmp_path / "p.json", tmp_path / "p.csv"
    assert (
        main(
            [
                "predict",
                *map(str, scans),
                "--checkpoint",
                str(run / "best.pt"),
                "--json",
                str(out_json),
                "--csv",
                str(out_csv),
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    assert "device cpu, precision fp32, memory contiguous" in capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    assert [Path(r["scan"]) for r in rows] == scans
    for row in rows:
        assert set(row["probabilities"]) == {"NCP", "CP", "Normal"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        assert row["n_volumes"] == 2  # 8 slices, depth 4
    assert out_csv.read_text().startswith("scan,")


def test_train_says_its_device_precision_and_layout(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = trained
    argv = [*train_argv(root, tmp_path / "run", epochs=1), "--precision", "fp32"]
    assert main([*argv, "--channels-last", "on"]) == 0
    lines = RUNTIME_LINE.findall(capsys.readouterr().out)
    assert lines == [("cpu", "fp32", "", "channels_last_3d")]
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["train_config"]["precision"] == "fp32"


def test_fp16_on_a_cpu_is_a_one_line_error(
    trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    scan = next(p for p in (root / "NCP").glob("*/*") if p.is_dir())
    argv = ["predict", str(scan), "--checkpoint", str(run / "best.pt"), "--device", "cpu"]
    assert main([*argv, "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "precision='fp16' needs a CUDA device" in err


def test_evaluate_without_matplotlib_says_how_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked first: the checkpoint and data here do not even exist."""
    hide_module(monkeypatch, "matplotlib")
    argv = ["evaluate", "--checkpoint", str(tmp_path / "best.pt"), "--data", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install matplotlib" in err and "--no-plots" in err


def test_evaluate_without_matplotlib_and_plots_writes_the_metrics(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, run = trained
    hide_module(monkeypatch, "matplotlib")
    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(root)]
    assert main([*argv, "--out", str(out), "--no-plots"]) == 0
    assert [p.name for p in out.iterdir()] == ["evaluation.json"]


def test_train_missing_data_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", str(tmp_path / "nope"), "--out-dir", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_train_bad_augment_is_a_clear_error(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = trained
    argv = [*train_argv(root, tmp_path / "run", epochs=1), "--augment", "flip,rotate"]
    assert main(argv) == 2
    assert "unknown augmentation 'rotate'" in capsys.readouterr().err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_train_with_augmentation(trained: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = trained
    run = tmp_path / "run"
    assert main([*train_argv(root, run, epochs=1), "--augment", "flip,shift=0.1"]) == 0
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["train_config"]["augment"] == "flip,shift=0.1"


def test_evaluate_pretrained_without_split_is_a_clear_error(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, run = trained
    from resnet3d.workflows import model_from_checkpoint

    export = tmp_path / "export"
    model = model_from_checkpoint(run / "best.pt")
    model.save_pretrained(
        export,
        preprocessing=model.pretrained_cfg["preprocessing"],
        labels=model.pretrained_cfg["labels"],
    )
    assert main(["evaluate", "--pretrained", str(export), "--data", str(root)]) == 2
    assert "--split-file" in capsys.readouterr().err
    # With --split all it evaluates every scan, configured from the export's spec.
    assert (
        main(
            [
                "evaluate",
                "--pretrained",
                str(export),
                "--data",
                str(root),
                "--split",
                "all",
                "--out",
                str(tmp_path / "e"),
                "--no-plots",
            ]
        )
        == 0
    )


def test_predict_missing_scan_and_unpublished_alias(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, run = trained
    assert main(["predict", str(tmp_path / "missing"), "--checkpoint", str(run / "best.pt")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--pretrained", "ccii-depth4"]) == 2
    assert "resnet3d train" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "demo", "models"])
def test_help_texts(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert len(text) > 200
    if command != "models":
        assert "--precision {auto,bf16,fp16,fp32}" in text
