"""Benchmarks of models, training and the input pipeline (``resnet3d bench``).

The measuring code lives here so that ``resnet3d bench models|train|data`` and the scripts in
``benchmarks/`` run the same thing. Conventions every benchmark follows:

* blocked timing (:func:`time_blocked`): warm-up, then calls back to back, several passes
  interleaved across configurations; median and min reported;
* side by side in one process: ``resnet3d`` against MONAI's identical network;
* the machine, versions, threads and memory allocator recorded with every result
  (:func:`environment`);
* FLOPs from ``torch.utils.flop_counter`` (:func:`count_flops`) and, where the device's peak
  is known (:func:`peak_flops`), the fraction of it reached.

Submodules are imported on first use: ``import resnet3d.benchmarking`` does no work.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "DataBenchResult",
    "FlopCount",
    "ModelBenchResult",
    "PeakFlops",
    "Timing",
    "TrainBenchResult",
    "Variant",
    "allocator",
    "bench_data",
    "bench_models",
    "bench_train",
    "count_flops",
    "environment",
    "markdown_table",
    "peak_flops",
    "time_blocked",
    "workers_needed",
    "write_result",
]

_WHERE = {
    "Timing": "timing",
    "time_blocked": "timing",
    "allocator": "environment",
    "environment": "environment",
    "FlopCount": "flops",
    "PeakFlops": "flops",
    "count_flops": "flops",
    "peak_flops": "flops",
    "markdown_table": "report",
    "write_result": "report",
    "Variant": "variants",
    "ModelBenchResult": "models",
    "bench_models": "models",
    "TrainBenchResult": "train",
    "bench_train": "train",
    "DataBenchResult": "data",
    "bench_data": "data",
    "workers_needed": "data",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
