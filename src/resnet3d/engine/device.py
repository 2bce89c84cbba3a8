"""Where and how a run computes: the device, the precision and the memory layout.

The policy lives here and nowhere else: ``precision="auto"`` picks bf16 only on devices where
it is correct and measured faster (CUDA with bf16, CPUs with native bf16 such as AMX), and
``channels_last="auto"`` picks ``channels_last_3d`` where it helps."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..constants import CHANNELS_LAST_CHOICES, PRECISIONS

__all__ = [
    "PRECISIONS",
    "autocast",
    "available_devices",
    "check_device",
    "cpu_has_fast_bf16",
    "resolve_device",
    "resolve_precision",
    "use_channels_last",
]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; by default CUDA when present, else CPU.

    Raises:
        ValueError: If ``device`` is not a device or not available here (:func:`check_device`).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(device))


def check_device(device: str | torch.device) -> str | torch.device:
    """Return ``device`` unchanged if it names a device that this machine has.

    PyTorch's own errors come late and name neither the option nor what exists ("Torch not
    compiled with CUDA enabled" from deep inside ``.to()``, or "Expected one of cpu, cuda,
    ..." for ``"tpu"``), so a run is checked before any work.

    Raises:
        ValueError: If ``device`` is not a device string, or names CUDA (or an index) or MPS
            where it is not available; the message says what is available.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device {device!r} is not a device: use cpu, cuda, cuda:N or mps "
            f"(available here: {', '.join(available_devices())})"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU-only build" if torch.version.cuda is None else "no CUDA GPU visible"
            raise ValueError(
                f"device {device!r}: CUDA is not available here (torch {torch.__version__}, "
                f"{build}); use --device cpu, or leave --device out to pick CUDA when present"
            )
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device {device!r}: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device {device!r} is not supported by resnet3d: use cpu, cuda, cuda:N or mps "
            f"(available here: {', '.join(available_devices())})"
        )
    return device


def available_devices() -> list[str]:
    """The devices this machine offers: ``cpu`` and each CUDA device, or ``mps``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def cpu_has_fast_bf16() -> bool:
    """True if this CPU computes bf16 natively (AVX-512 BF16 or AMX), where autocast pays."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into ``"bf16"``, ``"fp16"`` or ``"fp32"`` for ``device``.

    ``"auto"`` is bf16 on CUDA devices that support it (else fp16) and on CPUs with native
    bf16; fp32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; choose one of {PRECISIONS}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(setting: str | bool, device: torch.device, precision: str) -> bool:
    """Whether to run in ``channels_last_3d``.

    ``"auto"``: on CUDA, and on CPU with bf16; not for fp32 on CPU, where the backward
    convolutions copy channels-last tensors and training gets slower.
    """
    if isinstance(setting, bool):
        return setting
    if setting not in CHANNELS_LAST_CHOICES:
        raise ValueError(f"channels_last={setting!r} is not supported; use 'auto', 'on' or 'off'")
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda" or precision == "bf16"
