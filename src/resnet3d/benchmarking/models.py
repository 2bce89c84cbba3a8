"""Forward and forward+backward time per sample, side by side with MONAI (and torchvision).

For each model, ``resnet3d``'s network and MONAI's ResNet of the identical configuration
(same stem, shortcut type and weights: ours loads MONAI's state dict strictly) are timed in
one process with :func:`~resnet3d.benchmarking.timing.time_blocked`, for every requested
variant (precision, ``channels_last_3d``, ``torch.compile``). torchvision's ``r3d_18`` and
``r2plus1d_18`` are timed where torchvision imports; they are similar, not identical,
networks (other stem, type-B shortcuts), so no ratio is formed with them.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .environment import describe, environment
from .flops import FlopCount, count_flops, peak_flops
from .report import fmt, markdown_table
from .timing import Timing, time_blocked
from .variants import MODES, Variant, make_step, parse_variants

__all__ = [
    "PAPER_INPUT",
    "ModelBenchResult",
    "bench_models",
    "default_model_variants",
    "reference_models",
]

logger = logging.getLogger(__name__)

#: One sample of the paper's input: 3 channels, 4 slices of 512 x 512.
PAPER_INPUT = (3, 4, 512, 512)
#: The issue's FLOP counts for resnet18 at :data:`PAPER_INPUT` (GFLOP per sample).
EXPECTED_RESNET18_GFLOP = (101.6, 270.2)

_TORCHVISION = {"resnet18": "r3d_18", "resnet18_2plus1d": "r2plus1d_18"}
LIBRARIES = ("resnet3d", "monai", "torchvision")


def default_model_variants(device: torch.device, quick: bool = False) -> list[str]:
    """The variants timed unless ``--variants`` says otherwise.

    fp32 NCDHW and ``channels_last_3d`` everywhere, each also with ``Conv3d`` convolutions
    (``+conv3d``: no thin-depth folding); bf16 where the hardware computes it natively (CUDA,
    AMX/AVX512-BF16 CPUs); compiled variants unless ``quick`` (compiling takes tens of
    seconds per model on a small CPU); and ``default``, what the library runs.
    """
    from ..engine.device import cpu_has_fast_bf16

    variants = ["fp32", "fp32+conv3d", "fp32+cl", "fp32+cl+conv3d"]
    bf16 = device.type == "cuda" or cpu_has_fast_bf16()
    if bf16:
        variants += ["bf16", "bf16+cl"]
    if not quick:
        variants += ["fp32+compile", "fp32+cl+compile"]
        if bf16:
            variants += ["bf16+cl+compile"]
    return [*variants, "default"]


def reference_models(
    name: str, ours: nn.Module, libraries: Sequence[str] = LIBRARIES
) -> dict[str, nn.Module]:
    """Other libraries' networks to time beside ``ours`` (created with ``name``).

    MONAI's ``ResNet`` is built with ours' block, layers, widths, stem kernel, stride and
    pool, and shortcut type, without a downsample bias, and ``ours`` is loaded with its
    state dict (strict), so both compute the same function. MONAI has no (2+1)D ResNet.
    torchvision's nets are added for ``resnet18`` and ``resnet18_2plus1d`` when torchvision
    imports (at their own widths).

    Returns:
        Library name -> model, for the libraries that have a counterpart and import.
    """
    config: Any = getattr(ours, "config")  # noqa: B009 - a ResNet3D's config
    refs: dict[str, nn.Module] = {}
    if "monai" in libraries and config.conv == "3d":
        try:
            from monai.networks.nets import ResNet
        except ImportError:
            logger.warning("MONAI is not installed (pip install monai): no MONAI column")
        else:
            monai_model = ResNet(
                block=config.block,
                layers=list(config.layers),
                block_inplanes=list(config.widths),
                spatial_dims=3,
                n_input_channels=config.in_channels,
                conv1_t_size=config.stem_kernel,
                conv1_t_stride=config.stem_stride,
                no_max_pool=not config.stem_pool,
                shortcut_type=config.shortcut,
                num_classes=config.num_classes,
                bias_downsample=False,
            )
            ours.load_state_dict(monai_model.state_dict(), strict=True)
            refs["monai"] = monai_model
    if "torchvision" in libraries and name in _TORCHVISION:
        try:
            from torchvision.models import video
        except Exception:  # torchvision missing or built for another torch
            logger.info("torchvision does not import: no torchvision column")
        else:
            refs["torchvision"] = getattr(video, _TORCHVISION[name])(num_classes=config.num_classes)
    return refs


@dataclass
class ModelBenchResult:
    """Rows of a models benchmark, the FLOP table, the targets and the environment."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    flops: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "benchmark": "models",
            "settings": self.settings,
            "environment": self.environment,
            "rows": self.rows,
            "flops": self.flops,
            "targets": self.targets,
        }

    def row(self, mode: str, model: str, library: str, variant: str) -> dict[str, Any] | None:
        """The row of one configuration, or ``None``."""
        for row in self.rows:
            if (row["mode"], row["model"], row["library"], row["variant"]) == (
                mode,
                model,
                library,
                variant,
            ):
                return row
        return None

    def to_markdown(self) -> str:
        """Tables per mode, the FLOP table and the targets."""
        s = self.settings
        shape = "x".join(map(str, s["input"]))
        lines = [
            f"Machine: {describe(self.environment)}.",
            "",
            f"Input: batch {s['batch']} x {shape} (C x D x H x W), device {s['device']}; blocked "
            f"timing: {s['warmup']} warm-up calls, then {s['passes']} passes of 1 + "
            f"{s['calls']} calls per configuration; median (min) ms per sample.",
        ]
        if s.get("widths"):
            lines.append(f"Stage widths {s['widths']} instead of the paper's (a quick check).")
        for mode in s["modes"]:
            title = (
                "Forward (inference: eval, no_grad)"
                if mode == "forward"
                else ("Forward + backward (training: train mode, cross-entropy, backward)")
            )
            lines += ["", f"### {title}", ""]
            header = [
                "model",
                "variant",
                "resnet3d ms/sample",
                "MONAI ms/sample",
                "ours/MONAI",
                "vs ours fp32",
                "Conv3d/fold",
                "TFLOP/s",
                "% peak",
            ]
            has_tv = any(r["library"] == "torchvision" for r in self.rows)
            if has_tv:
                header.insert(4, "torchvision ms/sample (similar net)")
            if mode == "forward":
                header.append("max rel. diff")
            if any(r["peak_memory_mb"] is not None for r in self.rows):
                header.append("peak MiB")
            rows = []
            for r in self.rows:
                if r["mode"] != mode or r["library"] != "resnet3d":
                    continue
                monai = self.row(mode, r["model"], "monai", r["variant"])
                cells: list[Any] = [
                    r["model"],
                    r["variant"] + (" (default)" if r["is_default"] else ""),
                    _ms_cell(r),
                    _ms_cell(monai) if monai else "-",
                    fmt(r["ratio_vs_monai"]),
                    f"{fmt(r['speedup_vs_fp32'])}x",
                    _fold_speedup(self, r),
                    fmt(r["tflops"]),
                    fmt(None if r["peak_fraction"] is None else 100 * r["peak_fraction"]),
                ]
                if has_tv:
                    tv = self.row(mode, r["model"], "torchvision", r["variant"])
                    cells.insert(4, fmt(tv["ms_per_sample"]) if tv else "-")
                if mode == "forward":
                    diff = r["max_rel_diff"]
                    cells.append("-" if diff is None else f"{diff:.1e}")
                if "peak MiB" in header:
                    cells.append(fmt(r["peak_memory_mb"]))
                rows.append(cells)
            lines.append(markdown_table(header, rows, "ll" + "r" * (len(header) - 2)))
        peak_sources = sorted({r["peak_source"] for r in self.rows})
        lines += ["", "Peak FLOP/s used for '% peak': " + "; ".join(peak_sources) + "."]
        if self.flops:
            lines += [
                "",
                "### FLOPs per sample (torch.utils.flop_counter)",
                "",
                "Model FLOPs count the network as `Conv3d` computes it (zero padding "
                "included; what other libraries' counts mean, and what TFLOP/s above divides); "
                "done is what the library computes with thin depths folded.",
                "",
            ]
            frows = [
                [
                    f["model"],
                    "x".join(map(str, f["input"])),
                    f["gflop_forward"],
                    f.get("gflop_forward_done"),
                    f["gflop_forward_backward"],
                    f.get("gflop_forward_backward_done"),
                    f["h100_bf16_samples_per_s_at_peak"],
                ]
                for f in self.flops
            ]
            lines.append(
                markdown_table(
                    [
                        "model",
                        "input",
                        "GFLOP forward (model)",
                        "GFLOP forward (done)",
                        "GFLOP fwd+bwd (model)",
                        "GFLOP fwd+bwd (done)",
                        "H100 bf16 samples/s at 100% (989 TFLOP/s, model FLOPs)",
                    ],
                    frows,
                    "llrrrrr",
                )
            )
        if self.targets:
            lines += ["", "### Targets", ""]
            trows = [
                [t["target"], t["model"], fmt(t["value"]), t["threshold"], _met(t), t["note"]]
                for t in self.targets
            ]
            lines.append(
                markdown_table(
                    ["target", "model", "measured", "goal", "met", "note"], trows, "llrlll"
                )
            )
        return "\n".join(lines)


def _fold_speedup(result: ModelBenchResult, row: dict[str, Any]) -> str:
    """Time of the ``+conv3d`` twin over this row's (folded) time, e.g. ``2.4x``."""
    variant = Variant.parse(row["variant"])
    if variant.conv3d:
        return "-"
    twin = result.row(row["mode"], row["model"], row["library"], f"{variant.name}+conv3d")
    if not twin or not _finite(twin["ms_per_sample"], row["ms_per_sample"]):
        return "-"
    return f"{fmt(twin['ms_per_sample'] / row['ms_per_sample'])}x"


def _ms_cell(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"failed ({row['error'].split(':')[0]})"
    return f"{fmt(row['ms_per_sample'])} ({fmt(row['ms_per_sample_min'])})"


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _met(target: dict[str, Any]) -> str:
    if not target["applies"]:
        return "n/a"
    return "yes" if target["met"] else "no"


def _rel_diff(out: torch.Tensor, ref: torch.Tensor) -> float:
    scale = float(ref.abs().max())
    return float((out.float() - ref).abs().max()) / max(scale, 1e-12)


def bench_models(
    models: Sequence[str] = (
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet18_2plus1d",
        "resnet34_2plus1d",
    ),
    *,
    variants: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    batch: int = 2,
    input_shape: Sequence[int] = (3, 4, 128, 128),
    num_classes: int = 3,
    widths: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    libraries: Sequence[str] = LIBRARIES,
    warmup: int = 2,
    calls: int = 10,
    passes: int = 2,
    peak_tflops: float | None = None,
    flops_input: Sequence[int] | None = PAPER_INPUT,
    seed: int = 0,
) -> ModelBenchResult:
    """Time models and their counterparts per variant and mode.

    Args:
        models: Registered model names.
        variants: Variant names (see :mod:`~resnet3d.benchmarking.variants`); default
            :func:`default_model_variants`. Only the variants named are timed (``default``
            too), so any of them can be left out.
        modes: ``"forward"`` and/or ``"train"``.
        batch: Samples per call.
        input_shape: ``(C, D, H, W)`` of one sample.
        num_classes: Classifier outputs.
        widths: Stage widths instead of the models' own (MONAI gets the same), e.g. tiny
            ones for a quick check; ``None`` keeps the paper's.
        device: ``"cpu"``, ``"cuda"``...
        libraries: Which of ``resnet3d``, ``monai``, ``torchvision`` to time (resnet3d
            always).
        warmup: Untimed calls per configuration before timing (compilation happens here).
        calls: Timed calls per block.
        passes: Blocks per configuration.
        peak_tflops: Peak TFLOP/s for the "% peak" column instead of the table.
        flops_input: Also count FLOPs at this ``(C, D, H, W)`` (default the paper's input);
            ``None`` skips it.
        seed: Seed of the weights and inputs.

    Returns:
        The :class:`ModelBenchResult`.

    Raises:
        ValueError: For an unknown model, variant, mode or library, or a bad size.
    """
    from .._utils import check_choice
    from ..models.factory import create_model
    from ..models.registry import list_models

    device = torch.device(device)
    for mode in modes:
        check_choice("mode", mode, MODES)
    for library in libraries:
        check_choice("library", library, LIBRARIES)
    known = list_models()
    for name in models:
        if name not in known:
            create_model(name)  # raises the registry's error with the closest names
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or min(shape) < 1 or batch < 1:
        raise ValueError(f"need batch >= 1 and input (C, D, H, W) > 0, got {batch}, {shape}")
    variant_names = list(variants) if variants else default_model_variants(device)
    parsed = {mode: parse_variants(variant_names, mode, device) for mode in modes}
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does

    result = ModelBenchResult(
        settings={
            "models": list(models),
            "variants": {m: [v.name for v in parsed[m][0]] for m in modes},
            "defaults": {m: parsed[m][1].name for m in modes},
            "modes": list(modes),
            "batch": batch,
            "input": list(shape),
            "num_classes": num_classes,
            "widths": None if widths is None else list(widths),
            "device": str(device),
            "libraries": list(libraries),
            "warmup": warmup,
            "calls": calls,
            "passes": passes,
        },
        environment=environment(device),
    )
    dynamo_config = _dynamo_limits()
    for name in models:
        torch.manual_seed(seed)
        overrides: dict[str, Any] = {"in_channels": shape[0], "num_classes": num_classes}
        if widths is not None:
            overrides["widths"] = tuple(widths)
        ours = create_model(name, **overrides)
        refs = reference_models(name, ours, libraries)
        nets = {"resnet3d": ours, **refs}
        flops = count_flops(ours, shape)
        ref_flops = {lib: count_flops(m, shape) for lib, m in refs.items()}
        generator = torch.Generator().manual_seed(seed)
        x = torch.rand((batch, *shape), generator=generator).to(device)
        labels = torch.randint(0, num_classes, (batch,), generator=generator).to(device)
        reference_out: torch.Tensor | None = None
        for mode in modes:
            mode_variants, default = parsed[mode]
            torch._dynamo.reset()  # fresh compile caches per model and mode
            fns = {}
            for variant in mode_variants:
                for library, net in nets.items():
                    if variant.conv3d and library != "resnet3d":
                        continue  # others have one way to run; timed as variant.without_conv3d
                    step, _ = make_step(net, x, variant, mode, labels=labels)
                    fns[(library, variant)] = step
            if mode == "forward":
                with torch.no_grad():
                    reference_out = ours.to(device).eval()(x).float()
                    ours.cpu()
            logger.info("%s %s: %d configurations", name, mode, len(fns))
            keyed = {f"{lib}:{v.name}": fn for (lib, v), fn in fns.items()}
            with dynamo_config:
                timings = time_blocked(
                    keyed,
                    warmup=warmup,
                    calls=calls,
                    passes=passes,
                    device=device,
                    record_errors=True,
                )
            baseline = {
                lib: timings[f"{lib}:{Variant().name}"]
                for lib in nets
                if f"{lib}:{Variant().name}" in timings and timings[f"{lib}:{Variant().name}"].ok
            }
            for (library, variant), fn in fns.items():
                timing = timings[f"{library}:{variant.name}"]
                count = flops if library == "resnet3d" else ref_flops[library]
                max_rel_diff = None
                if (
                    mode == "forward"
                    and reference_out is not None
                    and library != "torchvision"
                    and timing.ok
                ):
                    with torch.no_grad():
                        max_rel_diff = _rel_diff(fn(), reference_out)  # type: ignore[arg-type]
                result.rows.append(
                    _row(
                        name,
                        mode,
                        library,
                        variant,
                        default,
                        timing,
                        batch,
                        count,
                        baseline.get(library),
                        device,
                        peak_tflops,
                        max_rel_diff,
                    )
                )
            for row in result.rows:
                if row["mode"] == mode and row["model"] == name and row["library"] == "resnet3d":
                    variant_ = Variant.parse(row["variant"]).without_conv3d
                    monai = result.row(mode, name, "monai", variant_.name)
                    row["ratio_vs_monai"] = (
                        row["ms_per_sample"] / monai["ms_per_sample"] if monai else None
                    )
            del fns, keyed
        if flops_input is not None:
            result.flops.append(
                _flops_row(
                    name,
                    flops_input,
                    count_flops(ours, flops_input),
                    count_flops(ours, flops_input, conv_impl="auto"),
                )
            )
    result.targets = _targets(result, device)
    return result


class _DynamoLimits:
    """Raise dynamo's recompile limit while timing: every model instance and variant
    compiles ``ResNet3D.forward`` anew, and past the limit dynamo silently runs eager."""

    def __enter__(self) -> None:
        import torch._dynamo.config as config

        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        self._patch = config.patch({name: 256})
        self._patch.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._patch.__exit__(*exc)


def _dynamo_limits() -> _DynamoLimits:
    return _DynamoLimits()


def _flops_row(
    name: str, shape: Sequence[int], count: FlopCount, work: FlopCount
) -> dict[str, Any]:
    row = {
        "model": name,
        "input": list(shape),
        "gflop_forward": count.forward / 1e9,
        "gflop_forward_backward": count.forward_backward / 1e9,
        "gflop_forward_done": work.forward / 1e9,
        "gflop_forward_backward_done": work.forward_backward / 1e9,
        "h100_bf16_samples_per_s_at_peak": 989e12 / count.forward_backward,
    }
    if name == "resnet18" and tuple(shape) == PAPER_INPUT:
        row["issue_gflop"] = list(EXPECTED_RESNET18_GFLOP)
    return row


def _row(
    name: str,
    mode: str,
    library: str,
    variant: Variant,
    default: Variant,
    timing: Timing,
    batch: int,
    count: FlopCount,
    baseline: Timing | None,
    device: torch.device,
    peak_tflops: float | None,
    max_rel_diff: float | None,
) -> dict[str, Any]:
    flop = count.forward if mode == "forward" else count.forward_backward
    peak = peak_flops(device, variant.precision, peak_tflops)
    achieved = flop * batch / timing.median
    return {
        "model": name,
        "mode": mode,
        "library": library,
        "variant": variant.name,
        "is_default": library == "resnet3d" and variant == default,
        "error": timing.error,
        "ms_per_call": timing.median * 1e3,
        "ms_per_call_min": timing.min * 1e3,
        "ms_per_sample": timing.median * 1e3 / batch,
        "ms_per_sample_min": timing.min * 1e3 / batch,
        "samples_per_s": batch / timing.median,
        "speedup_vs_fp32": baseline.median / timing.median if baseline else None,
        "ratio_vs_monai": None,
        "gflop_per_sample": flop / 1e9,
        "tflops": achieved / 1e12,
        "peak_fraction": achieved / peak.flops_per_s if peak.flops_per_s else None,
        "peak_source": peak.source,
        "max_rel_diff": max_rel_diff,
        "peak_memory_mb": None
        if timing.peak_memory_bytes is None
        else timing.peak_memory_bytes / 2**20,
        "resident_memory_mb": None
        if timing.resident_memory_bytes is None
        else timing.resident_memory_bytes / 2**20,
        "timing": timing.to_dict(),
    }


def _targets(result: ModelBenchResult, device: torch.device) -> list[dict[str, Any]]:
    from ..engine.device import cpu_has_fast_bf16

    targets: list[dict[str, Any]] = []
    cpu = device.type == "cpu"
    native_bf16 = cpu and cpu_has_fast_bf16()
    spreads = [r["timing"]["spread"] for r in result.rows if r["timing"]["spread"]]
    noise = statistics.median(spreads) if spreads else 1.0
    for name in result.settings["models"]:
        ours = result.row("train", name, "resnet3d", "fp32")
        monai = result.row("train", name, "monai", "fp32")
        if ours and monai and _finite(ours["ms_per_sample"], monai["ms_per_sample"]):
            value = ours["ms_per_sample"] / monai["ms_per_sample"]
            targets.append(
                {
                    "target": "fp32 eager forward+backward, ours / MONAI",
                    "model": name,
                    "value": value,
                    "threshold": "<= 1.0",
                    "applies": True,
                    "met": value <= 1.0,
                    "note": f"median pass spread on this run {noise:.2f}x",
                }
            )
        for mode, limit, label in (
            ("train", 0.50, "CPU fast training path (trainer default) / MONAI eager fp32"),
            ("forward", 0.25, "CPU fast inference path (predict default) / MONAI eager fp32"),
        ):
            default = result.settings["defaults"].get(mode)
            ours = result.row(mode, name, "resnet3d", default) if default else None
            monai = result.row(mode, name, "monai", "fp32")
            if not (ours and monai and _finite(ours["ms_per_sample"], monai["ms_per_sample"])):
                continue
            value = ours["ms_per_sample"] / monai["ms_per_sample"]
            applies = cpu and native_bf16
            note = f"default here: {default}"
            if not cpu:
                note += "; a CPU target, shown for information"
            elif not native_bf16:
                note += "; the target assumes native bf16 (AMX/AVX512-BF16), absent here"
            targets.append(
                {
                    "target": label,
                    "model": name,
                    "value": value,
                    "threshold": f"<= {limit}",
                    "applies": applies,
                    "met": value <= limit,
                    "note": note,
                }
            )
        for mode in result.settings["modes"]:
            default = result.settings["defaults"][mode]
            rows = [
                r
                for r in result.rows
                if r["mode"] == mode
                and r["model"] == name
                and r["library"] == "resnet3d"
                and _finite(r["ms_per_sample"])
            ]
            if not any(r["variant"] == default for r in rows):
                continue
            fastest = min(rows, key=lambda r: r["ms_per_sample"])
            mine = next(r for r in rows if r["variant"] == default)
            value = mine["ms_per_sample"] / fastest["ms_per_sample"]
            targets.append(
                {
                    "target": f"{mode}: the default is the fastest variant measured "
                    "(default / fastest)",
                    "model": name,
                    "value": value,
                    "threshold": "1.0",
                    "applies": True,
                    "met": fastest["variant"] == default or value <= noise,
                    "note": f"default {default}; fastest {fastest['variant']}",
                }
            )
    return targets
