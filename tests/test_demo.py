"""The README's main command: ``resnet3d demo`` end to end, and what it reaches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from resnet3d.cli import main

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
        "run/best.pt",
        "run/split.json",
        "export/model.safetensors",
        "export/config.json",
        "export/README.md",
        "eval/evaluation.json",
    ):
        assert (demo_run / name).is_file(), name


def test_demo_refuses_a_foreign_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not a previous demo" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"
