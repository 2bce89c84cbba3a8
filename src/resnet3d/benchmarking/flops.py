"""FLOP counts (``torch.utils.flop_counter``) and the peak FLOP/s of known accelerators.

Counts run on the ``meta`` device: only shapes are propagated, so counting the paper's
input (3 x 4 x 512 x 512) takes a fraction of a second and no memory. The counter counts
convolutions and matrix products (2 FLOPs per multiply-add); batch norm, ReLU and pooling
are not counted, which is the usual convention for "model FLOPs".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["PEAK_TFLOPS", "FlopCount", "PeakFlops", "count_flops", "peak_flops"]


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one sample.

    Attributes:
        forward: FLOPs of the forward pass.
        forward_backward: FLOPs of forward plus backward (gradients for every parameter;
            none for the input, as in training).
    """

    forward: int
    forward_backward: int


def count_flops(
    model: nn.Module, input_shape: Sequence[int], conv_impl: str | None = "conv3d"
) -> FlopCount:
    """FLOPs per sample of ``model`` for one input of shape ``(C, D, H, W)``.

    The model is copied to the ``meta`` device (the original is untouched) and run on a
    batch of one.

    Args:
        model: Any module taking ``(B, C, D, H, W)``.
        input_shape: ``(C, D, H, W)`` of one sample.
        conv_impl: For a ``ResNet3D``, count its convolutions as this implementation runs
            them: ``"conv3d"`` (default) gives the usual "model FLOPs", what a ``Conv3d``
            network computes and what other libraries' counts mean, zero padding included;
            ``"auto"`` the work the library does (thin depths folded to 2D). ``None`` counts
            the model as it is set.

    Returns:
        Forward and forward+backward FLOPs of one sample.

    Raises:
        ValueError: If ``input_shape`` does not have four positive entries.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, D, H, W) with positive sizes, got {shape}")
    meta = copy.deepcopy(model).to("meta").eval()  # BN in eval: batch 1 works at any size
    set_conv_impl = getattr(meta, "set_conv_impl", None)
    if conv_impl is not None and set_conv_impl is not None:
        set_conv_impl(conv_impl)
    x = torch.empty((1, *shape), device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        meta(x).float().sum().backward()
    return FlopCount(forward=int(forward), forward_backward=int(counter.get_total_flops()))


#: Dense (no sparsity) peak TFLOP/s by GPU: ``(bf16/fp16 tensor, tf32 tensor, fp32)``, from
#: NVIDIA's data sheets. Matched against ``torch.cuda.get_device_name()`` in order.
PEAK_TFLOPS: dict[str, tuple[float, float, float]] = {
    "H100 PCIe": (756.0, 378.0, 51.0),
    "H100": (989.0, 495.0, 67.0),  # SXM (HBM3); the name has no "PCIe"
    "H200": (989.0, 495.0, 67.0),
    "A100": (312.0, 156.0, 19.5),
}


@dataclass(frozen=True)
class PeakFlops:
    """The peak a measured rate is divided by, and where it came from.

    Attributes:
        flops_per_s: Peak FLOP/s, or ``None`` when unknown (CPUs, unlisted GPUs).
        source: Human-readable origin, e.g. ``"H100 SXM dense bf16 (table)"``.
    """

    flops_per_s: float | None
    source: str


def peak_flops(
    device: torch.device | str, precision: str, override_tflops: float | None = None
) -> PeakFlops:
    """The device's peak FLOP/s for a precision.

    fp32 on CUDA uses the TF32 tensor-core peak when cuDNN may use TF32 for convolutions
    (``torch.backends.cudnn.allow_tf32``, PyTorch's default), since that is what the
    convolutions then run on.

    Args:
        device: The device.
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        override_tflops: A peak in TFLOP/s to use instead of the table (``--peak-tflops``).

    Returns:
        The peak and its source; ``flops_per_s`` is ``None`` when it is not known.
    """
    if override_tflops is not None:
        if override_tflops <= 0:
            raise ValueError(f"the peak must be positive TFLOP/s, got {override_tflops!r}")
        return PeakFlops(override_tflops * 1e12, f"{override_tflops:g} TFLOP/s (given)")
    device = torch.device(device)
    if device.type != "cuda":
        return PeakFlops(None, "unknown for CPUs: pass --peak-tflops")
    name = torch.cuda.get_device_name(device)
    for key, (half, tf32, fp32) in PEAK_TFLOPS.items():
        if key in name:
            label = "H100 SXM" if key == "H100" else key
            if precision in ("bf16", "fp16"):
                return PeakFlops(half * 1e12, f"{label} dense {precision} {half:g} TFLOP/s (table)")
            if torch.backends.cudnn.allow_tf32:
                return PeakFlops(
                    tf32 * 1e12, f"{label} dense TF32 {tf32:g} TFLOP/s (table; fp32 convs use TF32)"
                )
            return PeakFlops(fp32 * 1e12, f"{label} fp32 {fp32:g} TFLOP/s (table)")
    return PeakFlops(None, f"{name} is not in the table: pass --peak-tflops")
