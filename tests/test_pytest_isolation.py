"""The README's test command reports every test, even one that crashes or hangs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run with this project's pytest configuration: a test that kills the interpreter and one
# that hangs, between two that pass.
CRASHING_TESTS = """
import os
import time

import pytest


def test_before():
    pass


def test_aborts():
    os.abort()  # as a segfault or an abort in native code does


@pytest.mark.timeout(3)
def test_hangs():
    time.sleep(600)


def test_after():
    pass
"""


def test_the_default_timeout_is_set(pytestconfig: pytest.Config) -> None:
    assert float(pytestconfig.getini("timeout")) == 300


@pytest.mark.slow
def test_a_crash_and_a_hang_fail_one_test_each_and_the_counts_are_printed(tmp_path: Path) -> None:
    (tmp_path / "test_crashing.py").write_text(CRASHING_TESTS)
    # This run's own xdist and pytest settings must not leak into the inner run.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "XDIST_"))}
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    start = time.perf_counter()
    result = subprocess.run(
        [*command, "-p", "no:cacheprovider", str(tmp_path / "test_crashing.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert re.search(r"=+ 2 failed, 2 passed in ", output), output[-3000:]
    assert re.search(r"FAILED \S*test_aborts", output), output[-3000:]
    assert re.search(r"FAILED \S*test_hangs", output), output[-3000:]
    assert seconds < 120, f"the hang held the run for {seconds:.0f} s"
