"""bf16 on the CPU computes right weight gradients on every instruction set, or it is a bug.

oneDNN's bf16 convolutions compute wrong weight gradients, or corrupt the heap and abort,
for some shapes: on AVX512-BF16 CPUs without AMX (AMD Zen 4) whenever ``1 < depth < kd`` (the
paper's stem on 4-slice volumes); with AMX for stride-2 convolutions of a 1 x 1 input. The
library routes around both (:mod:`resnet3d.models.thin_depth`). These checks run in a subprocess,
so an abort fails one test instead of killing the suite, and once per instruction set this
CPU can emulate by capping oneDNN with ``ONEDNN_MAX_CPU_ISA``: a machine with AMX checks
the Zen 4 code path too, although it never takes it by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

#: oneDNN code paths: this CPU's best, AVX512-BF16 without AMX (Zen 4's), AVX2 (no bf16).
#: A cap above what the CPU has changes nothing, so every machine runs all three.
ISAS = ("native", "AVX512_CORE_BF16", "AVX2")


def _has_avx512_bf16() -> bool:
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(probe and probe())


def _run_check(isa: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.bf16_check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _rows(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.parametrize("isa", ISAS)
def test_bf16_weight_gradients_are_right(isa: str) -> None:
    """Every conv of resnet18 at depth 4 and 2, wide and narrow, both layouts, auto and conv3d:
    finite, and within 5 % (relative L2) of the float32 gradient of the same operands."""
    result = _run_check(isa)
    last = result.stderr.strip().splitlines()[-3:]
    assert result.returncode == 0, f"the check died ({result.returncode}) at: {last}"
    rows = _rows(result)
    assert len(rows) == 2 * 2 * 3 * 2 * 17  # impl, depth, model, layout x 17 convs
    bad = [row for row in rows if not float(row["error"]) <= 0.05]  # type: ignore[arg-type]
    assert not bad, bad[:5]
    # bf16 really ran: the gradients carry bf16 rounding, they are not float32 results.
    assert max(float(row["error"]) for row in rows) > 1e-4  # type: ignore[arg-type]


@pytest.mark.skipif(not _has_avx512_bf16(), reason="this CPU cannot run oneDNN's bf16 kernels")
def test_the_check_finds_the_onednn_bug() -> None:
    """The control: plain ``nn.Conv3d`` on the Zen 4 code path fails the check (it aborts,
    or gives non-finite or wrong gradients), so the test above can fail."""
    result = _run_check("AVX512_CORE_BF16", "--plain-conv3d", "--impl", "conv3d", "--depth", "4")
    rows = _rows(result)
    failed = result.returncode != 0 or any(
        not float(row["error"]) <= 0.05  # type: ignore[arg-type]
        for row in rows
    )
    assert failed, "plain Conv3d passed: the check cannot tell a broken kernel from a good one"
