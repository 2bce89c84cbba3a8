"""Forward and forward+backward time per sample: resnet3d vs MONAI (and torchvision), per variant.

Same as ``resnet3d bench models``; ``--help`` lists the options. Examples::

    python benchmarks/bench_models.py --quick                       # CI: tiny, seconds
    python benchmarks/bench_models.py --device cpu --out benchmarks/results
    python benchmarks/bench_models.py --device cuda --batch 32 --input 3x4x512x512 \\
        --out benchmarks/results
"""

from __future__ import annotations

from _common import run_bench

if __name__ == "__main__":
    raise SystemExit(run_bench("models"))
