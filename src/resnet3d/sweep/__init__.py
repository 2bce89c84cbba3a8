"""Sweeps: a grid of training runs on one data set and one patient split, restartable.

``resnet3d sweep --data ROOT --out DIR --grid depth=2,4,8 batch_size=8`` (or ``--paper
depth|batch|models|all`` for the paper's runs) trains and evaluates every cell of the grid,
each in its own folder, and tabulates the results. :func:`sweep` is the same from Python;
:func:`expand_grid` and :func:`parse_grid` say which cells a grid makes.
"""

from __future__ import annotations

from typing import Any

from .grid import PAPER_PRESETS, SweepCell, expand_grid, parse_grid
from .runner import SweepEvent, SweepResult, read_cells, sweep, tiny_sweep

__all__ = [
    "PAPER_PRESETS",
    "SweepCell",
    "SweepEvent",
    "SweepResult",
    "expand_grid",
    "parse_grid",
    "read_cells",
    "sweep",
    "tiny_sweep",
    "write_sweep_report",
]


def __getattr__(name: str) -> Any:
    # The report (tables and plots) is imported when first asked for.
    if name == "write_sweep_report":
        from .report import write_sweep_report

        return write_sweep_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
