from __future__ import annotations

import subprocess
import sys

import pytest

from resnet3d.cli import main


def test_models_lists_every_model_with_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet18 " in out and "33.03M" in out  # same count as MONAI's ResNet-18, 3 classes
    assert "resnet50_2plus1d" in out


def test_models_pattern_without_match(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "vgg*"]) == 1
    assert "no model matches" in capsys.readouterr().out


def test_console_script_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resnet3d.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "models" in result.stdout
