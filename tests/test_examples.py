"""Every example's --tiny smoke mode runs on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_ccii.py", "finetune_pretrained.py", "predict_scan.py"])
def test_python_example_tiny(script: str) -> None:
    result = run(sys.executable, str(ROOT / "examples" / script), "--tiny")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_multigpu_example_tiny() -> None:
    result = run("bash", str(ROOT / "examples" / "train_multigpu.sh"), "--tiny")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "last.pt" in result.stdout
