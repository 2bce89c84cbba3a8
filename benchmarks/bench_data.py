"""Volumes/s through the DataLoader: on-the-fly PNG decoding vs the uint8 volume cache.

Same as ``resnet3d bench data``; ``--help`` lists the options. Examples::

    python benchmarks/bench_data.py --quick
    python benchmarks/bench_data.py --out benchmarks/results
    python benchmarks/bench_data.py --device cuda --train-rate 1464 --out benchmarks/results
"""

from __future__ import annotations

from _common import run_bench

if __name__ == "__main__":
    raise SystemExit(run_bench("data"))
