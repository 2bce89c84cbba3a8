"""How speed depends on volume depth: ours (folded and ``Conv3d``) against MONAI, per depth.

The fold pays where a convolution's input is thinner than its kernel (see
:mod:`resnet3d.models.thin_depth`), so its gain shrinks as volumes deepen. :func:`bench_depths`
times one model at several depths with the same batch and slice size, each depth as one
:func:`~resnet3d.benchmarking.models.bench_models` run (side by side in one process), and
puts the per-depth rows in one table with the FLOPs as a ``Conv3d`` network counts them and
as the library computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .environment import describe
from .flops import count_flops
from .models import bench_models
from .report import RowsResult, fmt, markdown_table
from .variants import MODES, Variant

__all__ = ["DepthBenchResult", "bench_depths"]


@dataclass
class DepthBenchResult(RowsResult):
    """One row per (depth, mode): ours folded, ours ``Conv3d``, MONAI; and the settings."""

    BENCHMARK: ClassVar[str] = "depths"

    def to_markdown(self) -> str:
        """One table per mode."""
        s = self.settings
        lines = [
            f"Machine: {describe(self.environment)}.",
            "",
            f"{s['model']}, batch {s['batch']} x {s['channels']} x D x {s['size']} x {s['size']}, "
            f"variant {s['variant']}, device {s['device']}; median ms per sample of "
            f"{s['passes']} passes of {s['calls']} calls.",
        ]
        for mode in s["modes"]:
            title = "Forward (inference)" if mode == "forward" else "Forward + backward"
            lines += ["", f"### {title}", ""]
            rows = [
                [
                    r["depth"],
                    fmt(r["ours_ms"]),
                    fmt(r["conv3d_ms"]),
                    fmt(r["monai_ms"]),
                    fmt(r["ours_vs_monai"]),
                    fmt(r["conv3d_vs_ours"]),
                    fmt(r["gflop_model"]),
                    fmt(r["gflop_done"]),
                ]
                for r in self.rows
                if r["mode"] == mode
            ]
            header = [
                "depth",
                "ours ms",
                "ours Conv3d ms",
                "MONAI ms",
                "ours / MONAI",
                "Conv3d / ours",
                "GFLOP (model)",
                "GFLOP (done)",
            ]
            lines.append(markdown_table(header, rows, "r" * len(header)))
        return "\n".join(lines)


def bench_depths(
    model: str = "resnet18",
    depths: Sequence[int] = (1, 2, 4, 8, 16, 32),
    *,
    variant: str = "fp32",
    modes: Sequence[str] = MODES,
    batch: int = 2,
    channels: int = 3,
    size: int = 128,
    widths: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    calls: int = 10,
    passes: int = 2,
    seed: int = 0,
) -> DepthBenchResult:
    """Time ``model`` at each depth: ``variant``, ``variant+conv3d`` and MONAI's ``variant``.

    Args:
        model: A registered model name (MONAI has no (2+1)D ResNet: its column is then empty).
        depths: Volume depths ``D``.
        variant: The variant to compare (e.g. ``"fp32"`` or ``"bf16+cl"``), without
            ``+conv3d``.
        modes: ``"forward"`` and/or ``"train"``.
        batch: Samples per call.
        channels: Input channels.
        size: Slice height and width.
        widths: Stage widths instead of the model's own (a quick check).
        device: The device.
        warmup: Untimed calls per configuration first.
        calls: Timed calls per block.
        passes: Blocks per configuration.
        seed: Seed of weights and inputs.

    Returns:
        The :class:`DepthBenchResult`.

    Raises:
        ValueError: For a depth below 1, a variant with ``+conv3d``, or what
            :func:`~resnet3d.benchmarking.models.bench_models` refuses.
    """
    from ..models.factory import create_model

    base = Variant.parse(variant)
    if base.conv3d:
        raise ValueError(f"variant {variant!r}: name it without '+conv3d' (both are timed)")
    if not depths or any(int(d) < 1 for d in depths):
        raise ValueError(f"depths must be positive, got {list(depths)}")
    twin = Variant(base.precision, base.channels_last, base.compile, conv3d=True)
    device = torch.device(device)
    result: DepthBenchResult | None = None
    for depth in depths:
        shape = (channels, int(depth), size, size)
        run = bench_models(
            [model],
            variants=[base.name, twin.name],
            modes=modes,
            batch=batch,
            input_shape=shape,
            widths=widths,
            device=device,
            libraries=("resnet3d", "monai"),
            warmup=warmup,
            calls=calls,
            passes=passes,
            flops_input=None,
            seed=seed,
        )
        if result is None:
            result = DepthBenchResult(
                settings={
                    "model": model,
                    "depths": [int(d) for d in depths],
                    "variant": base.name,
                    "modes": list(modes),
                    "batch": batch,
                    "channels": channels,
                    "size": size,
                    "widths": None if widths is None else list(widths),
                    "device": str(device),
                    "warmup": warmup,
                    "calls": calls,
                    "passes": passes,
                },
                environment=run.environment,
            )
        overrides: dict[str, Any] = {"in_channels": channels}
        if widths is not None:
            overrides["widths"] = tuple(widths)
        net = create_model(model, **overrides)
        model_flops = count_flops(net, shape)
        done_flops = count_flops(net, shape, conv_impl="auto")
        for mode in modes:
            ours = run.row(mode, model, "resnet3d", base.name)
            conv3d = run.row(mode, model, "resnet3d", twin.name)
            monai = run.row(mode, model, "monai", base.name)
            flop = "forward" if mode == "forward" else "forward_backward"
            result.rows.append(
                {
                    "depth": int(depth),
                    "mode": mode,
                    "ours_ms": _ms(ours),
                    "conv3d_ms": _ms(conv3d),
                    "monai_ms": _ms(monai),
                    "ours_vs_monai": _ratio(_ms(ours), _ms(monai)),
                    "conv3d_vs_ours": _ratio(_ms(conv3d), _ms(ours)),
                    "gflop_model": getattr(model_flops, flop) / 1e9,
                    "gflop_done": getattr(done_flops, flop) / 1e9,
                    "timings": {
                        "ours": None if ours is None else ours["timing"],
                        "conv3d": None if conv3d is None else conv3d["timing"],
                        "monai": None if monai is None else monai["timing"],
                    },
                }
            )
    assert result is not None  # depths is not empty
    return result


def _ms(row: dict[str, Any] | None) -> float | None:
    if row is None or row.get("error"):
        return None
    return float(row["ms_per_sample"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
