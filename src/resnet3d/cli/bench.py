"""``resnet3d bench models|depths|train|data``: performance benchmarks (see docs/performance.md).

Each prints a markdown report and, with ``--out DIR``, writes ``DIR/<name>.json`` and
``DIR/<name>.md`` (name ``<benchmark>-<device type>``, ``-quick`` added in quick mode).
``--quick`` shrinks every size so that a run takes seconds (CI); its timings mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from . import CLIError

#: Settings of ``--quick`` (tiny sizes, one short pass) and of a full run, per benchmark.
QUICK: dict[str, dict[str, Any]] = {
    "models": {
        "models": ["resnet18", "resnet18_2plus1d"],
        "variants": ["fp32", "fp32+conv3d", "fp32+cl", "default"],
        "batch": 2,
        "input": "3x4x32x32",
        "widths": [8, 16, 16, 32],
        "warmup": 1,
        "calls": 2,
        "passes": 1,
    },
    "depths": {
        "depths": [1, 4],
        "size": 32,
        "widths": [8, 16, 16, 32],
        "warmup": 1,
        "calls": 2,
        "passes": 1,
    },
    "train": {
        "inputs": ["3x4x32x32"],
        "widths": [8, 16, 16, 32],
        "batch": 2,
        "variants": ["default", "fp32"],
        "warmup": 1,
        "calls": 2,
        "passes": 1,
    },
    "data": {"patients": 3, "slices": 8, "size": 64, "workers": [0, 1], "epochs": 1, "batch": 2},
}
FULL: dict[str, dict[str, Any]] = {
    "models": {
        "models": ["resnet18", "resnet34", "resnet50", "resnet18_2plus1d", "resnet34_2plus1d"],
        "variants": None,
        "batch": 2,
        "input": "3x4x128x128",
        "widths": None,
        "warmup": 2,
        "calls": 10,
        "passes": 2,
    },
    "depths": {
        "depths": [1, 2, 4, 8, 16, 32],
        "size": 128,
        "widths": None,
        "warmup": 2,
        "calls": 10,
        "passes": 2,
    },
    "train": {
        "inputs": ["paper", "video"],
        "widths": None,
        "batch": None,
        "variants": None,
        "warmup": 2,
        "calls": 10,
        "passes": 2,
    },
    "data": {"patients": 6, "slices": 32, "size": 512, "workers": None, "epochs": 2, "batch": 4},
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="performance benchmarks: models, training, data loading",
        description="Time resnet3d side by side with MONAI (models), full training steps "
        "(train) and the input pipeline (data). Prints markdown; --out writes JSON too.",
    )
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)

    models = sub.add_parser(
        "models",
        help="forward and forward+backward per sample, resnet3d vs MONAI, per variant",
        description="Forward and forward+backward time per sample for each model and variant "
        "(PRECISION[+cl][+compile][+conv3d], or 'default': what the library does; +conv3d "
        "runs Conv3d without folding thin depths), side by side with MONAI's identical "
        "network (and torchvision's where it imports), blocked timing. Only the variants "
        "named are timed.",
    )
    _common(models)
    models.add_argument("--models", nargs="+", metavar="NAME", help="registered model names")
    models.add_argument(
        "--variants",
        nargs="+",
        metavar="V",
        help="e.g. fp32 fp32+conv3d fp32+cl bf16+cl bf16+cl+compile default (default: per "
        "device, 'default' included; name only those you want timed)",
    )
    models.add_argument(
        "--modes", nargs="+", choices=("forward", "train"), default=["forward", "train"]
    )
    models.add_argument("--batch", type=int, help="samples per call (default 2; quick 1)")
    models.add_argument(
        "--input", metavar="CxDxHxW", help="one sample (default 3x4x128x128; quick 3x4x32x32)"
    )
    models.add_argument(
        "--widths",
        type=int,
        nargs=4,
        metavar="W",
        help="stage widths for every model and its MONAI twin (default the paper's 64 128 "
        "256 512; quick 8 16 16 32)",
    )
    models.add_argument(
        "--libraries",
        nargs="+",
        choices=("resnet3d", "monai", "torchvision"),
        default=["resnet3d", "monai", "torchvision"],
        help="which libraries to time (default all that import)",
    )
    models.add_argument(
        "--no-flops", action="store_true", help="skip the FLOP count at the paper input"
    )
    models.set_defaults(func=run)

    depths = sub.add_parser(
        "depths",
        help="time per sample against volume depth: ours folded, ours Conv3d, MONAI",
        description="One model at several volume depths (same batch and slice size): ours "
        "with thin depths folded to 2D, ours with Conv3d (+conv3d) and MONAI's identical "
        "network, forward and forward+backward, with FLOPs as Conv3d counts them and as "
        "the library computes them.",
    )
    _common(depths)
    depths.add_argument("--model", default="resnet18", help="registered model (default resnet18)")
    depths.add_argument(
        "--depths",
        type=int,
        nargs="+",
        metavar="D",
        help="volume depths (default 1 2 4 8 16 32; quick 1 4)",
    )
    depths.add_argument(
        "--variant", default="fp32", help="variant to compare, without +conv3d (default fp32)"
    )
    depths.add_argument(
        "--modes", nargs="+", choices=("forward", "train"), default=["forward", "train"]
    )
    depths.add_argument("--batch", type=int, default=2, help="samples per call (default 2)")
    depths.add_argument("--size", type=int, help="slice size in px (default 128; quick 32)")
    depths.add_argument(
        "--widths", type=int, nargs=4, metavar="W", help="stage widths (quick: 8 16 16 32)"
    )
    depths.set_defaults(func=run)

    train = sub.add_parser(
        "train",
        help="training samples/s, peak memory and fraction of peak FLOP/s",
        description="Full training steps as 'resnet3d train' runs them (uint8 batch to the "
        "device, autocast, cross-entropy, backward, Adam) for the paper input and a video "
        "input; samples/s, fraction of the device's peak FLOP/s, peak memory on CUDA.",
    )
    _common(train)
    train.add_argument("--model", default="resnet18", help="registered model (default resnet18)")
    train.add_argument(
        "--inputs",
        nargs="+",
        metavar="INPUT",
        help="paper (3x4x512x512), video (3x16x112x112) or CxDxHxW (default: paper video)",
    )
    train.add_argument("--batch", type=int, help="default 32 on CUDA, 2 on CPU; quick 2")
    train.add_argument(
        "--widths", type=int, nargs=4, metavar="W", help="stage widths (quick: 8 16 16 32)"
    )
    train.add_argument(
        "--variants",
        nargs="+",
        metavar="V",
        help="default (the trainer's), default+compile, fp32, bf16+cl, ... "
        "(default: default fp32 default+compile)",
    )
    train.set_defaults(func=run)

    data = sub.add_parser(
        "data",
        help="volumes/s through the DataLoader: PNG decoding vs the uint8 cache",
        description="Volumes/s of on-the-fly PNG decoding and of the uint8 volume cache, in "
        "process and through the trainer's DataLoader with N workers, and the workers needed "
        "to feed a training rate: workers = ceil(R / r1).",
    )
    _common(data, timing=False)
    data.add_argument("--data", type=Path, help="a CC-CCII-style folder (default: a phantom)")
    data.add_argument("--patients", type=int, help="phantom scans (default 6; quick 3)")
    data.add_argument("--slices", type=int, help="slices per phantom scan (default 32; quick 8)")
    data.add_argument("--size", type=int, help="slice size (default 512; quick 64)")
    data.add_argument("--depth", type=int, default=4, help="slices per volume (default 4)")
    data.add_argument(
        "--workers", type=int, nargs="+", help="worker counts (default 0..usable CPUs)"
    )
    data.add_argument("--batch", type=int, help="DataLoader batch (default 4; quick 2)")
    data.add_argument("--epochs", type=int, help="timed epochs per setting (default 2)")
    data.add_argument(
        "--train-rate",
        type=float,
        metavar="R",
        help="training samples/s to feed (default: measured here with resnet3d train's "
        "default step for resnet18)",
    )
    data.set_defaults(func=run)


def _common(parser: argparse.ArgumentParser, timing: bool = True) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI (seconds)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1... (default: CUDA when present)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="also write JSON and markdown")
    parser.add_argument("--name", help="file stem in --out (default BENCHMARK-DEVICE[-quick])")
    if timing:
        parser.add_argument("--warmup", type=int, help="untimed calls first (default 2)")
        parser.add_argument("--calls", type=int, help="timed calls per block (default 10)")
        parser.add_argument("--passes", type=int, help="blocks per configuration (default 2)")
        parser.add_argument(
            "--peak-tflops",
            type=float,
            metavar="T",
            help="the device's peak TFLOP/s for '%% peak' (default: a table of NVIDIA GPUs; "
            "none for CPUs)",
        )


def _setting(args: argparse.Namespace, bench: str, name: str, attr: str | None = None) -> Any:
    value = getattr(args, attr or name, None)
    if value is not None:
        return value
    return (QUICK if args.quick else FULL)[bench][name]


def run(args: argparse.Namespace) -> int:
    import torch

    from ..benchmarking.report import write_result
    from ..engine.device import resolve_device

    try:
        device = resolve_device(args.device)
    except RuntimeError as error:
        raise CLIError(f"--device {args.device!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device}: CUDA is not available in this torch build")
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    for name in ("warmup", "calls", "passes", "batch", "epochs", "patients", "slices", "size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise CLIError(f"--{name} must be >= 1, got {value}")

    result: Any
    if args.bench == "models":
        from ..benchmarking.models import PAPER_INPUT, bench_models, default_model_variants
        from ..benchmarking.train import parse_input

        _, shape = parse_input(_setting(args, "models", "input"))
        variants = _setting(args, "models", "variants") or default_model_variants(device)
        result = bench_models(
            _setting(args, "models", "models"),
            variants=variants,
            modes=args.modes,
            batch=_setting(args, "models", "batch"),
            input_shape=shape,
            widths=_setting(args, "models", "widths"),
            device=device,
            libraries=args.libraries,
            warmup=_setting(args, "models", "warmup"),
            calls=_setting(args, "models", "calls"),
            passes=_setting(args, "models", "passes"),
            peak_tflops=args.peak_tflops,
            flops_input=None if args.no_flops else PAPER_INPUT,
        )
    elif args.bench == "depths":
        from ..benchmarking.depths import bench_depths

        result = bench_depths(
            args.model,
            _setting(args, "depths", "depths"),
            variant=args.variant,
            modes=args.modes,
            batch=args.batch,
            size=_setting(args, "depths", "size"),
            widths=_setting(args, "depths", "widths"),
            device=device,
            warmup=_setting(args, "depths", "warmup"),
            calls=_setting(args, "depths", "calls"),
            passes=_setting(args, "depths", "passes"),
        )
    elif args.bench == "train":
        from ..benchmarking.train import bench_train, default_train_variants

        result = bench_train(
            args.model,
            inputs=_setting(args, "train", "inputs"),
            batch=_setting(args, "train", "batch"),
            widths=_setting(args, "train", "widths"),
            variants=_setting(args, "train", "variants") or default_train_variants(device),
            device=device,
            warmup=_setting(args, "train", "warmup"),
            calls=_setting(args, "train", "calls"),
            passes=_setting(args, "train", "passes"),
            peak_tflops=args.peak_tflops,
        )
    else:
        from ..benchmarking.data import bench_data

        result = bench_data(
            args.data,
            patients=_setting(args, "data", "patients"),
            slices=_setting(args, "data", "slices"),
            size=_setting(args, "data", "size"),
            depth=args.depth,
            workers=_setting(args, "data", "workers"),
            batch=_setting(args, "data", "batch"),
            epochs=_setting(args, "data", "epochs"),
            train_rate=args.train_rate,
            device=device,
        )
    # The load at the end too: a number that rose during the run explains noisy timings.
    with contextlib.suppress(OSError):
        result.environment["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    markdown = result.to_markdown()
    print(markdown)
    if args.out is not None:
        stem = args.name or f"{args.bench}-{device.type}" + ("-quick" if args.quick else "")
        json_path, md_path = write_result(result.to_dict(), markdown, args.out, stem)
        print(f"\nwrote {json_path} and {md_path}")
    return 0
