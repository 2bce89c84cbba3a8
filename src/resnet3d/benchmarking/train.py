"""Training throughput: full optimizer steps as ``resnet3d train`` runs them.

One step is what :class:`resnet3d.engine.train.Trainer` does per batch, minus the data loader (see
:mod:`resnet3d.benchmarking.data` for that): a uint8 batch on the host is moved to the device
and scaled there (:func:`resnet3d.engine.loader.prepare_batch`), the model runs under the
trainer's autocast, the loss is the trainer's float32 cross-entropy, then backward and an
Adam step. Throughput is reported in samples/s and as a fraction of the device's peak
FLOP/s (forward+backward FLOPs from ``torch.utils.flop_counter``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .environment import describe, environment
from .flops import count_flops, peak_flops
from .report import RowsResult, fmt, markdown_table
from .timing import time_blocked
from .variants import make_step, parse_variants

__all__ = ["INPUTS", "TrainBenchResult", "bench_train", "parse_input"]

logger = logging.getLogger(__name__)

#: Named inputs ``(C, D, H, W)``: the paper's CT volumes and a video clip.
INPUTS = {"paper": (3, 4, 512, 512), "video": (3, 16, 112, 112)}


def parse_input(text: str) -> tuple[str, tuple[int, int, int, int]]:
    """``"paper"``, ``"video"`` or ``"CxDxHxW"`` -> ``(name, (C, D, H, W))``.

    Raises:
        ValueError: For anything else.
    """
    key = text.strip().lower()
    if key in INPUTS:
        return key, INPUTS[key]
    parts = key.split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 1:
        raise ValueError(
            f"input {text!r}: give {' or '.join(INPUTS)} or CxDxHxW with positive sizes, "
            "e.g. 3x4x128x128"
        )
    return key, (values[0], values[1], values[2], values[3])


@dataclass
class TrainBenchResult(RowsResult):
    """Rows of a training benchmark and the environment."""

    BENCHMARK: ClassVar[str] = "train"

    def to_markdown(self) -> str:
        """One table: input, variant, step time, samples/s, TFLOP/s, % of peak, memory."""
        s = self.settings
        lines = [
            f"Machine: {describe(self.environment)}.",
            "",
            f"Model {s['model']}, Adam, device {s['device']}; full training steps (uint8 batch "
            "to device, scale, forward, cross-entropy, backward, optimizer step); blocked "
            f"timing: {s['warmup']} warm-up steps, {s['passes']} passes of 1 + {s['calls']} "
            "steps; median (min).",
            "",
        ]
        if s.get("widths"):
            lines[-1:-1] = [f"Stage widths {s['widths']} instead of the paper's (a quick check)."]
        header = [
            "input",
            "batch",
            "variant",
            "ms/step",
            "samples/s",
            "vs fp32",
            "GFLOP/sample",
            "TFLOP/s",
            "% peak",
            "peak MiB",
        ]
        rows = []
        for r in self.rows:
            rows.append(
                [
                    _input_label(r["input_name"], r["input"]),
                    str(r["batch"]),
                    r["variant"] + (" (default)" if r["is_default"] else ""),
                    f"failed ({r['error'].split(':')[0]})"
                    if r.get("error")
                    else f"{fmt(r['ms_per_step'])} ({fmt(r['ms_per_step_min'])})",
                    r["samples_per_s"],
                    "-" if r["speedup_vs_fp32"] is None else f"{fmt(r['speedup_vs_fp32'])}x",
                    r["gflop_per_sample"],
                    r["tflops"],
                    None if r["peak_fraction"] is None else 100 * r["peak_fraction"],
                    r["peak_memory_mb"],
                ]
            )
        lines.append(markdown_table(header, rows, "lrl" + "r" * 7))
        sources = sorted({r["peak_source"] for r in self.rows})
        lines += ["", "Peak FLOP/s used for '% peak': " + "; ".join(sources) + "."]
        return "\n".join(lines)


def _input_label(name: str, shape: Sequence[int]) -> str:
    text = "x".join(map(str, shape))
    return text if name == text else f"{name} {text}"


def default_train_variants(device: torch.device, quick: bool = False) -> list[str]:
    """``default`` (what ``resnet3d train`` does), fp32 eager and, unless ``quick``, the
    default compiled (``TrainConfig(compile=True)``)."""
    variants = ["default", "fp32"]
    if not quick:
        variants.append("default+compile")
    return variants


def bench_train(
    model: str = "resnet18",
    *,
    inputs: Sequence[str] = ("paper", "video"),
    batch: int | None = None,
    variants: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    num_classes: int = 3,
    widths: Sequence[int] | None = None,
    warmup: int = 2,
    calls: int = 10,
    passes: int = 2,
    peak_tflops: float | None = None,
    lr: float = 1e-3,
    seed: int = 0,
) -> TrainBenchResult:
    """Training steps per second for each input and variant.

    Args:
        model: A registered model name.
        inputs: ``"paper"`` (3 x 4 x 512 x 512), ``"video"`` (3 x 16 x 112 x 112) or
            ``"CxDxHxW"`` strings.
        batch: Samples per step; default 32 (the paper's) on CUDA and 2 on CPU.
        variants: Variant names; ``default`` is the trainer's default and ``default+compile``
            the same with ``TrainConfig(compile=True)``. Default
            :func:`default_train_variants`.
        device: The device.
        num_classes: Classifier outputs.
        widths: Stage widths instead of the model's own (``None``: the paper's).
        warmup: Untimed steps per configuration first (compilation happens here).
        calls: Timed steps per block.
        passes: Blocks per configuration.
        peak_tflops: Peak TFLOP/s to divide by instead of the table.
        lr: Adam's learning rate (the paper's 1e-3).
        seed: Seed of weights and data.

    Returns:
        The :class:`TrainBenchResult`.

    Raises:
        ValueError: For an unknown model, input or variant, or a batch below 1.
    """
    from ..engine.loader import prepare_batch
    from ..models.factory import create_model

    device = torch.device(device)
    batch = batch if batch is not None else (32 if device.type == "cuda" else 2)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    parsed_inputs = [parse_input(text) for text in inputs]
    names = list(variants) if variants else default_train_variants(device)
    resolved, default = parse_variants(
        [_expand_default(v, "train", device) for v in names], "train", device
    )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result = TrainBenchResult(
        settings={
            "model": model,
            "widths": None if widths is None else list(widths),
            "inputs": {name: list(shape) for name, shape in parsed_inputs},
            "batch": batch,
            "variants": [v.name for v in resolved],
            "default": default.name,
            "device": str(device),
            "warmup": warmup,
            "calls": calls,
            "passes": passes,
            "optimizer": f"Adam(lr={lr})",
        },
        environment=environment(device),
    )
    from .models import _dynamo_limits

    for input_name, shape in parsed_inputs:
        torch.manual_seed(seed)
        overrides: dict[str, Any] = {"in_channels": shape[0], "num_classes": num_classes}
        if widths is not None:
            overrides["widths"] = tuple(widths)
        net = create_model(model, **overrides)
        count = count_flops(net, shape)
        generator = torch.Generator().manual_seed(seed)
        host = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)
        if device.type == "cuda":
            host = host.pin_memory()
        labels = torch.randint(0, num_classes, (batch,), generator=generator).to(device)
        torch._dynamo.reset()
        fns = {}
        for variant in resolved:

            def source(
                batch_in: torch.Tensor = host, cl: bool = variant.channels_last
            ) -> torch.Tensor:
                return prepare_batch(batch_in, device, cl)

            step, _ = make_step(
                net,
                source,
                variant,
                "train",
                device=device,
                labels=labels,
                optimizer=lambda params: torch.optim.Adam(params, lr=lr),
            )
            fns[variant.name] = step
        logger.info("%s %s: %d variants", model, input_name, len(fns))
        with _dynamo_limits():
            timings = time_blocked(
                fns, warmup=warmup, calls=calls, passes=passes, device=device, record_errors=True
            )
        fp32 = timings.get("fp32")
        if fp32 is not None and not fp32.ok:
            fp32 = None
        for variant in resolved:
            timing = timings[variant.name]
            peak = peak_flops(device, variant.precision, peak_tflops)
            achieved = count.forward_backward * batch / timing.median
            result.rows.append(
                {
                    "input_name": input_name,
                    "input": list(shape),
                    "batch": batch,
                    "variant": variant.name,
                    "is_default": variant == default,
                    "error": timing.error,
                    "ms_per_step": timing.median * 1e3,
                    "ms_per_step_min": timing.min * 1e3,
                    "samples_per_s": batch / timing.median,
                    "speedup_vs_fp32": fp32.median / timing.median if fp32 else None,
                    "gflop_per_sample": count.forward_backward / 1e9,
                    "tflops": achieved / 1e12,
                    "peak_fraction": achieved / peak.flops_per_s if peak.flops_per_s else None,
                    "peak_source": peak.source,
                    "peak_memory_mb": None
                    if timing.peak_memory_bytes is None
                    else timing.peak_memory_bytes / 2**20,
                    "timing": timing.to_dict(),
                }
            )
        del fns
    return result


def _expand_default(text: str, mode: str, device: torch.device) -> str:
    """``default+compile`` -> the default variant's name with ``+compile``."""
    key = text.strip().lower()
    if key.startswith("default+"):
        from .variants import default_variant

        base = default_variant(mode, device).name
        extra = [f for f in key.split("+")[1:] if f not in base.split("+")]
        return "+".join([base, *extra])
    return text
