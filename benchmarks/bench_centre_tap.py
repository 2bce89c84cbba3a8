"""Centre-tap weights: cropping with a negative pad against indexing, in one training step.

Depth-1 convolutions run ``conv2d`` on the 3D weight's centre tap. This times resnet3d's
training step (forward + backward, fp32, batch 2 x 3 x 4 x S x S) with the tap taken by
:func:`resnet3d.models.thin_depth.centre_tap` (a negative ``F.pad``) and by plain indexing
(``weight[:, :, pd]``), alternated in one process (rounds of a few steps each, medians), and
checks that both give the same gradients bit for bit.

Usage::

    python benchmarks/bench_centre_tap.py                        # resnet18, 128 px
    python benchmarks/bench_centre_tap.py --model resnet50 --size 96 --no-tune-malloc
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from resnet3d import create_model
from resnet3d.engine.malloc import tune_malloc
from resnet3d.models import thin_depth


def by_indexing(weight: Tensor, pad_depth: int) -> Tensor:
    """The tap as a strided view (the former way)."""
    return weight[:, :, pad_depth]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=128, help="slice height and width")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--no-tune-malloc", action="store_true", help="keep glibc's defaults")
    args = parser.parse_args()
    if not args.no_tune_malloc:
        tune_malloc()
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=3)
    x = torch.randn(2, 3, 4, args.size, args.size)
    y = torch.tensor([0, 1])

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    ways = {"indexing": by_indexing, "centre_tap": thin_depth.centre_tap}
    times: dict[str, list[float]] = {name: [] for name in ways}
    grads: dict[str, list[Tensor]] = {}
    try:
        for _ in range(args.rounds):
            for name, way in ways.items():
                thin_depth.centre_tap = way  # what thin_depth_conv3d calls
                step()  # untimed: the other way ran last
                per_step = []
                for _ in range(args.steps):
                    start = time.perf_counter()
                    step()
                    per_step.append(time.perf_counter() - start)
                times[name].append(statistics.median(per_step))
                grads[name] = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    finally:
        thin_depth.centre_tap = ways["centre_tap"]
    old, new = (statistics.median(times[n]) * 1e3 for n in ways)
    rounds = ", ".join(f"{n / o:.2f}" for n, o in zip(times["centre_tap"], times["indexing"]))
    same = all(torch.equal(a, b) for a, b in zip(grads["indexing"], grads["centre_tap"]))
    print(f"{args.model} at 2 x 3 x 4 x {args.size} x {args.size}, ms per training step")
    print(f"indexing {old:.0f}, centre_tap {new:.0f}: {new / old:.2f}x (rounds: {rounds})")
    print(f"gradients bit for bit equal: {same}")


if __name__ == "__main__":
    main()
