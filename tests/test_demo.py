"""The README's main command: ``resnet3d demo`` end to end, and what it reaches."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.helpers.cli import RUNTIME_LINE
from tests.helpers.demo import demo_log
from tests.helpers.modules import hide_module

from resnet3d.cli import build_parser, main
from resnet3d.cli.demo import folder_bytes

ROOT = Path(__file__).resolve().parents[1]

CHANCE = 1 / 3


@pytest.mark.slow
def test_demo_learns_the_phantom_well_above_chance(demo_run: Path) -> None:
    summary = json.loads((demo_run / "demo-summary.json").read_text())
    accuracy = summary["test_accuracy"]
    # Measured on this 2-core CPU (120 patients, 5 epochs, flips and shifts): seed 0 volume
    # 0.727, scan 0.958, patient 0.958; seed 1: 0.805, 0.958, 0.958 (24 test patients; 0.93
    # scan accuracy on 90 new patients for both). The bounds leave room for other CPUs'
    # arithmetic and still demand far better than chance (0.333).
    assert accuracy["volume"] >= 0.6
    assert accuracy["scan"] >= 0.75
    assert accuracy["patient"] >= 0.75
    assert summary["chance"] == pytest.approx(CHANCE)
    for name in (
        "run/split.json",
        "run/log.csv",
        "export/model.safetensors",
        "export/config.json",
        "export/README.md",
        "eval/evaluation.json",
        "eval/confusion_scan.png",
        "eval/roc_patient.png",
    ):
        assert (demo_run / name).is_file(), name


@pytest.mark.slow
def test_demo_keeps_no_checkpoint_and_says_where_it_wrote(demo_run: Path) -> None:
    # The training checkpoints (400 MB each with the optimizer state) lived in a temporary
    # folder; the export is the model that stays.
    assert not list(demo_run.rglob("*.pt"))
    assert not list(demo_run.glob(".checkpoints-*"))
    total = folder_bytes(demo_run)
    assert total < 300e6, f"{total / 1e6:.0f} MB"
    printed = demo_log(demo_run).splitlines()
    closing = printed[next(i for i, line in enumerate(printed) if line.startswith("wrote ")) :]
    assert closing[0] == f"wrote {demo_run.resolve()} ({total / 1e6:.1f} MB):"
    assert [line.split()[0] for line in closing[1:-1]] == ["data/", "run/", "eval/", "export/"]
    assert closing[-1].startswith("evaluate it again: resnet3d evaluate --pretrained ")


@pytest.mark.slow
def test_demo_says_its_device_precision_and_layout_first(demo_run: Path) -> None:
    first = demo_log(demo_run).splitlines()[0]
    match = RUNTIME_LINE.match(first)
    assert match is not None, first
    assert first.endswith(" for training; evaluation in fp32")
    summary = json.loads((demo_run / "demo-summary.json").read_text())
    assert (summary["device"], summary["precision"]) == (match[1], match[2])


def test_demo_without_matplotlib_stops_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hide_module(monkeypatch, "matplotlib")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install matplotlib" in err and "--no-plots" in err
    assert not (tmp_path / "demo").exists()


def test_gitignore_covers_the_demos_default_folder() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    default = build_parser().parse_args(["demo"]).out
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", str(default / "export/model.safetensors")],
        check=False,
    )
    assert ignored.returncode == 0, f"{default}/ is not in .gitignore"


def test_demo_refuses_a_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not a previous demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
