"""Every example's --tiny smoke mode runs on the CPU, says how it runs, and cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.helpers.cli import RUNTIME_LINE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["train_ccii.py", "finetune_pretrained.py", "predict_scan.py", "finetune_video.py"]
# "clip     n=   24  accuracy 0.6250 ...": what finetune_video.py --tiny prints per level.
ACCURACY = re.compile(r"^(clip|video|group) +n= *\d+ +accuracy (\d\.\d+)", re.MULTILINE)


def run(*command: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run an example with its own empty temporary directory (``TMPDIR``), to see what it leaves."""
    tmp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "examples"),
        "OMP_NUM_THREADS": "1",
        "TMPDIR": str(tmp),
    }
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def check_smoke_run(result: subprocess.CompletedProcess[str], tmp: Path) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert RUNTIME_LINE.search(result.stdout), result.stdout[-2000:]
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(("resnet3d-", "tmp"))]
    # The closing line names no path in the folder the example has just removed.
    assert str(tmp) not in result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES)
def test_python_example_tiny(script: str, tmp_path: Path) -> None:
    result = run(sys.executable, str(ROOT / "examples" / script), "--tiny", tmp=tmp_path / "tmp")
    check_smoke_run(result, tmp_path / "tmp")
    if script == "finetune_video.py":
        # 4 classes: chance is 0.25; the synthetic motion is learnt from scratch in 8 epochs.
        accuracy = {m[1]: float(m[2]) for m in ACCURACY.finditer(result.stdout)}
        assert set(accuracy) == {"clip", "video", "group"}, result.stdout[-2000:]
        assert accuracy["clip"] >= 0.45 and accuracy["video"] >= 0.45, accuracy


@pytest.mark.slow
def test_multigpu_example_tiny(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "train_multigpu.sh")
    result = run("bash", script, "--tiny", "--precision", "fp32", tmp=tmp_path / "tmp")
    check_smoke_run(result, tmp_path / "tmp")
    assert "last.pt" in result.stdout
    # Rank 0 alone says how it runs, and it runs as asked.
    assert [m[1] for m in RUNTIME_LINE.finditer(result.stdout)] == ["cpu"]
    assert RUNTIME_LINE.search(result.stdout)[2] == "fp32"  # type: ignore[index]


@pytest.mark.parametrize("script", EXAMPLES)
def test_python_examples_take_a_precision(script: str, tmp_path: Path) -> None:
    result = run(sys.executable, str(ROOT / "examples" / script), "--help", tmp=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--precision {auto,bf16,fp16,fp32}" in result.stdout


def test_predict_example_runs_at_the_precision_asked(tmp_path: Path) -> None:
    script = str(ROOT / "examples" / "predict_scan.py")
    result = run(sys.executable, script, "--tiny", "--precision", "bf16", tmp=tmp_path / "tmp")
    check_smoke_run(result, tmp_path / "tmp")
    assert RUNTIME_LINE.search(result.stdout)[2] == "bf16"  # type: ignore[index]
