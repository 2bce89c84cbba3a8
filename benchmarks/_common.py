"""Shared by the benchmark scripts: they are thin entry points to ``resnet3d bench``.

The measuring code lives in :mod:`resnet3d.benchmarking` (blocked timing, allocator and
machine detection, FLOP counts, markdown/JSON output) so that ``resnet3d bench`` and these
scripts run exactly the same thing. Re-exported here for ad-hoc scripts::

    from _common import time_blocked, environment, allocator
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from resnet3d.benchmarking.environment import allocator, describe, environment
from resnet3d.benchmarking.flops import count_flops, peak_flops
from resnet3d.benchmarking.report import markdown_table, write_result
from resnet3d.benchmarking.timing import Timing, time_blocked

__all__ = [
    "Timing",
    "allocator",
    "count_flops",
    "describe",
    "environment",
    "markdown_table",
    "peak_flops",
    "run_bench",
    "time_blocked",
    "write_result",
]


def run_bench(name: str, argv: Sequence[str] | None = None) -> int:
    """Run ``resnet3d bench NAME ARGS`` (ARGS default: this script's command line)."""
    from resnet3d.cli import main

    args = list(sys.argv[1:] if argv is None else argv)
    return main(["bench", name, *args])
