"""Training throughput (samples/s), peak memory and fraction of peak FLOP/s.

Same as ``resnet3d bench train``; ``--help`` lists the options. Examples::

    python benchmarks/bench_train.py --quick
    python benchmarks/bench_train.py --device cpu --out benchmarks/results
    python benchmarks/bench_train.py --device cuda --out benchmarks/results   # batch 32
"""

from __future__ import annotations

from _common import run_bench

if __name__ == "__main__":
    raise SystemExit(run_bench("train"))
