"""The device, precision and memory layout a run uses, resolved once and said in one line.

The commands and the examples print :meth:`Runtime.describe` before they start, so that a
user sees what ``"auto"`` chose on this machine (bf16 on a CPU with native bf16, say) and
knows which option changes it. The decisions are :mod:`resnet3d.engine.inference`'s
(:func:`~resnet3d.engine.device.resolve_device`,
:func:`~resnet3d.engine.device.resolve_precision`,
:func:`~resnet3d.engine.device.use_channels_last`); this module only collects them, so
what is printed is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .device import (
    available_devices,
    check_device,
    resolve_device,
    resolve_precision,
    use_channels_last,
)

__all__ = ["Runtime", "available_devices", "check_device", "resolve_runtime"]


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs.

    Attributes:
        device: The device.
        precision: The resolved autocast precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        channels_last: Whether tensors are laid out as ``channels_last_3d``.
        requested_precision: What was asked for (``"auto"`` or one of the above).
    """

    device: torch.device
    precision: str
    channels_last: bool
    requested_precision: str

    @property
    def memory_format(self) -> str:
        """``"channels_last_3d"`` or ``"contiguous"``."""
        return "channels_last_3d" if self.channels_last else "contiguous"

    def describe(self) -> str:
        """One line, e.g. ``device cpu, precision bf16 (auto), memory channels_last_3d``."""
        how = " (auto)" if self.requested_precision == "auto" else ""
        return f"device {self.device}, precision {self.precision}{how}, memory {self.memory_format}"


def resolve_runtime(
    device: str | torch.device | None = None,
    precision: str = "auto",
    channels_last: str | bool = "auto",
) -> Runtime:
    """Resolve a run's device, precision and memory layout as training and inference do.

    Args:
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; ``None`` picks CUDA when present.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        channels_last: ``"auto"``, ``"on"``, ``"off"`` or a bool.

    Returns:
        The :class:`Runtime`.

    Raises:
        ValueError: If ``device`` is not a device name or is not available here (see
            :func:`check_device`), ``precision`` or ``channels_last`` is not one of the
            allowed values, or fp16 is asked for on a CPU.
    """
    torch_device = resolve_device(device)
    resolved = resolve_precision(precision, torch_device)
    return Runtime(
        device=torch_device,
        precision=resolved,
        channels_last=use_channels_last(channels_last, torch_device, resolved),
        requested_precision=precision,
    )
