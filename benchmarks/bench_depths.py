"""Time per sample against volume depth: ours folded, ours Conv3d, MONAI (one model).

Same as ``resnet3d bench depths``; ``--help`` lists the options. Examples::

    python benchmarks/bench_depths.py --quick                       # CI: tiny, seconds
    python benchmarks/bench_depths.py --device cpu --out benchmarks/results
"""

from __future__ import annotations

from _common import run_bench

if __name__ == "__main__":
    raise SystemExit(run_bench("depths"))
