"""Run in a subprocess: is every convolution's bf16 weight gradient right on this CPU?

For each convolution of resnet18 (full and narrow widths) on depth-4 and depth-2 volumes
(and both memory layouts), the weight gradient that bf16 autocast computes is compared with
the float32 gradient of the same operands rounded to bf16: the input the conv saw, its
weight and the gradient that reached its output (float32 convolutions are right on every
CPU measured). A kernel that corrupts the heap aborts this process, so the
calling test runs it in a subprocess; each conv prints a line before it is checked.

    python -m tests.helpers.bf16_check [--impl auto] [--plain-conv3d] [--depth 4]

``--plain-conv3d`` runs ``torch.nn.Conv3d.forward`` instead of the library's routing: the
control that shows the check finds the oneDNN bug where it exists.
Prints one JSON line per convolution: ``{"conv", "shape", "layout", "error"}`` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from resnet3d import create_model
from resnet3d.models.layers import ThinDepthConv3d

#: (widths, slice size): the paper's widths, and narrow ones at a size where layer4 sees a
#: 1 x 1 input. oneDNN picks kernels by channel count: the AMX bug (stride 2 over a 1 x 1
#: input) shows with 8-64 channels, not with 256-512.
MODELS = (((64, 128, 256, 512), 48), ((8, 16, 32, 64), 48), ((8, 16, 32, 64), 16))


def check(
    impl: str, depth: int, size: int, channels_last: bool, widths: tuple[int, ...]
) -> list[dict[str, object]]:
    torch.manual_seed(depth * 1000 + size)
    model = create_model("resnet18", conv_impl=impl, widths=widths).train()
    x = torch.rand(2, 3, depth, size, size)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    seen: dict[str, list[torch.Tensor]] = {}

    def remember(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
            seen[name] = [inputs[0].detach()]
            output.register_hook(lambda grad: seen[name].append(grad.detach()))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Conv3d):
            module.register_forward_hook(remember(name))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    F.cross_entropy(logits.float(), torch.tensor([0, 1])).backward()

    rows = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv3d):
            continue
        inp, grad_out = seen[name]
        print(f"# {name} {tuple(inp.shape)}", file=sys.stderr, flush=True)
        weight = module.weight.detach().bfloat16().float().requires_grad_()
        out = F.conv3d(inp.bfloat16().float(), weight, None, module.stride, module.padding)
        out.backward(grad_out.bfloat16().float())
        got = module.weight.grad.double()  # type: ignore[union-attr]
        exact = weight.grad
        assert exact is not None
        finite = bool(torch.isfinite(got).all())
        error = float((got - exact).norm() / exact.norm().clamp_min(1e-30)) if finite else math.inf
        rows.append(
            {
                "conv": name,
                "shape": list(inp.shape),
                "layout": "channels_last" if channels_last else "contiguous",
                "impl": impl,
                "widths": list(widths),
                "error": error,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", action="append", choices=("auto", "conv3d"))
    parser.add_argument("--plain-conv3d", action="store_true")
    parser.add_argument("--depth", type=int, action="append")
    args = parser.parse_args()
    if args.plain_conv3d:
        ThinDepthConv3d.forward = nn.Conv3d.forward  # type: ignore[method-assign]
    for impl in args.impl or ["auto", "conv3d"]:
        for depth in args.depth or [4, 2]:
            for widths, size in MODELS:
                for channels_last in (False, True):
                    for row in check(impl, depth, size, channels_last, widths):
                        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
