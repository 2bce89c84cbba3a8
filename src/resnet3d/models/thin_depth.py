"""Exact 3D convolutions for thin volumes: fold the depth axis into 2D convolutions.

The paper's volumes are 4 slices deep. After the stem and the max pool, most of a model runs
at depth 2 or 1, where a "same"-padded ``Conv3d`` spends most of its depth taps on zero
padding (a 3x3x3 conv at depth 1 uses 1 tap in 3). A convolution with depth kernel ``kd``,
stride ``sd`` and padding ``pd`` on input depth ``D`` (output depth ``Do``) is exactly

    out[t] = sum_s conv2d(x[s], w[:, :, s - t * sd + pd])   over 0 <= s - t * sd + pd < kd,

one ``conv2d`` on the input viewed as ``(B, C * D, H, W)`` with a block weight
``(Cout * Do, Cin * D, kh, kw)`` assembled from ``w`` (zero blocks where a tap falls outside
the kernel). Its cost is ``Do * D`` depth products against ``Do * kd`` for ``Conv3d``, so the
fold runs where ``D < kd``; at depth 1 it is a ``conv2d`` with the centre tap. Autograd
through the assembly gives the 3D weight's exact gradient: parameters, state dict and
optimiser state are those of ``Conv3d``.

This module also keeps reduced-precision convolutions on the CPU away from oneDNN kernels
that compute wrong weight gradients (see :func:`cpu_lowp_unsafe`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: Values of ``ResNet3DConfig.conv_impl``: ``"auto"`` folds thin depths, ``"conv3d"`` never.
CONV_IMPLS = ("auto", "conv3d")

#: The three ways :func:`thin_depth_conv3d` can compute a convolution.
PATHS = ("conv3d", "centre", "fold")

_LOW_PRECISION = (torch.bfloat16, torch.float16)

#: Fewest output positions (``B * Ho * Wo``) at which a depth-2-or-more fold runs: below it,
#: or below ``2 * Cin``, assembling the folded weight costs more than the padding saves
#: (measured on CPU, forward + backward; see :func:`choose_path`).
FOLD_MIN_POSITIONS = 256
#: ... and fewest output positions per input channel.
FOLD_POSITIONS_PER_CHANNEL = 2


def choose_path(
    depth: int,
    kernel_depth: int,
    stride_depth: int,
    pad_depth: int,
    impl: str,
    forward_only: bool = False,
    device_type: str = "cpu",
    positions: int | None = None,
    in_channels: int = 1,
) -> str:
    """Which computation :func:`thin_depth_conv3d` uses for an input ``depth`` slices deep.

    Args:
        depth: Input depth ``D``.
        kernel_depth: Depth of the kernel ``kd``.
        stride_depth: Depth stride ``sd``.
        pad_depth: Depth padding ``pd`` (zeros on each side).
        impl: ``"auto"`` or ``"conv3d"`` (always ``Conv3d``).
        forward_only: No gradient will be computed (inference).
        device_type: Where it runs (``"cpu"``, ``"cuda"``...).
        positions: Output positions per output slice over the batch, ``B * Ho * Wo``
            (``None``: enough to fold).
        in_channels: Input channels ``Cin``.

    Returns:
        ``"centre"`` (depth 1 in and out, ``kd > 1``: a ``conv2d`` with the tap at ``pd``),
        ``"fold"`` (a ``conv2d`` with the block weight, where ``D < kd``) or ``"conv3d"``.
    """
    if impl == "conv3d":
        return "conv3d"
    out_depth = output_depth(depth, kernel_depth, stride_depth, pad_depth)
    if out_depth < 1 or pad_depth >= kernel_depth:
        return "conv3d"  # let Conv3d raise its own error, or handle the odd padding
    if depth == 1 and out_depth == 1 and kernel_depth > 1:
        return "centre"  # a 1x1x1 kernel wastes nothing, and Conv3d measured as fast there
    if depth < kernel_depth:
        # oneDNN's forward Conv3d already skips the taps that fall on padding (its backward
        # does not): for inference on the CPU the fold only adds the cost of its layout
        # changes (the stem at depth 4 ran at 0.7x in fp32, layer1 at 0.8-0.95x).
        if forward_only and device_type == "cpu":
            return "conv3d"
        # The folded weight (Do * D * Cin * Cout * kh * kw values) is assembled, and its
        # gradient scattered back, on every training step; with few output positions that
        # costs more than the padding saves (a 512-channel conv at depth 2 on 2 x 4 x 4
        # positions ran 3x slower folded; 64 channels on 2 x 16 x 16 ran 1.3x faster).
        if positions is not None and positions < max(
            FOLD_MIN_POSITIONS, FOLD_POSITIONS_PER_CHANNEL * in_channels
        ):
            return "conv3d"
        return "fold"
    return "conv3d"


def output_depth(depth: int, kernel_depth: int, stride_depth: int, pad_depth: int) -> int:
    """Output depth of a convolution (below 1 for a geometry ``Conv3d`` refuses)."""
    return (depth + 2 * pad_depth - kernel_depth) // stride_depth + 1


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` runs in now: autocast's for float32 inputs under it."""
    if x.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will want gradients of a result computed from ``tensors`` now."""
    if not torch.is_grad_enabled():
        return False
    return any(t is not None and t.requires_grad for t in tensors)


def folded_weight(
    weight: Tensor, depth: int, stride_depth: int, pad_depth: int, depth_major: bool
) -> Tensor:
    """The block weight of the fold for an input ``depth`` slices deep.

    Block ``(t, s)`` is ``weight[:, :, s - t * sd + pd]`` where that tap exists, else zero.
    Built from slices of the zero-padded weight (no index tensors), so it is differentiable,
    deterministic and free of host-device copies.

    Args:
        weight: ``(Cout, Cin, kd, kh, kw)``.
        depth: Input depth ``D``.
        stride_depth: Depth stride ``sd``.
        pad_depth: Depth padding ``pd`` (``0 <= pd < kd``).
        depth_major: Order the channels ``(depth, channel)`` (for channels-last inputs)
            instead of ``(channel, depth)`` (a free view of contiguous inputs).

    Returns:
        ``(Cout * Do, Cin * D, kh, kw)``; rows ordered ``(Do, Cout)`` and columns ``(D, Cin)``
        if ``depth_major``, else ``(Cout, Do)`` and ``(Cin, D)``.
    """
    cout, cin, kd, kh, kw = weight.shape
    out_depth = output_depth(depth, kd, stride_depth, pad_depth)
    # Padding the tap axis by D - 1 on both sides turns "the taps slice t reads" into one
    # contiguous window: tap s - t*sd + pd sits at index D - 1 + pd - t*sd + s.
    padded = F.pad(weight, (0, 0, 0, 0, depth - 1, depth - 1))
    windows = [
        padded[:, :, depth - 1 + pad_depth - t * stride_depth :][:, :, :depth]
        for t in range(out_depth)
    ]
    if depth_major:
        blocks = torch.stack(windows, 0).transpose(2, 3)  # (Do, Cout, D, Cin, kh, kw)
        return blocks.reshape(out_depth * cout, depth * cin, kh, kw)
    blocks = torch.stack(windows, 1)  # (Cout, Do, Cin, D, kh, kw)
    return blocks.reshape(cout * out_depth, cin * depth, kh, kw)


def centre_tap(weight: Tensor, pad_depth: int) -> Tensor:
    """``weight[:, :, pad_depth]`` as a new dense 2D weight, differentiable at low cost.

    Indexing would give a strided view, which the convolution copies into a dense weight
    twice per training step (forward and backward), and whose backward fills a whole 3D
    gradient with zeros and then copies the tap into it. Cropping with a negative
    :func:`torch.nn.functional.pad` makes the dense copy once (in the weight's memory format),
    and its backward is a positive pad: one pass that writes the tap and the zeros (layer4 of
    resnet18: 3.8 ms instead of 10 ms per 512 x 512 x 3 x 3 x 3 gradient). Same values,
    same gradient.

    Args:
        weight: ``(Cout, Cin, kd, kh, kw)``.
        pad_depth: Which depth tap (``0 <= pad_depth < kd``).

    Returns:
        ``(Cout, Cin, kh, kw)``.
    """
    kd = weight.shape[2]
    return F.pad(weight, (0, 0, 0, 0, -pad_depth, pad_depth + 1 - kd)).squeeze(2)


def cpu_lowp_unsafe(x: Tensor, kernel: tuple[int, ...]) -> torch.dtype | None:
    """The reduced dtype to restore if this CPU convolution must run in float32, else ``None``.

    oneDNN's bf16 convolution computes wrong weight gradients (NaN, inf, errors of 10-100 %,
    or heap corruption that aborts the process) where an input extent is smaller than the
    kernel. Measured with torch 2.13.0 / oneDNN 3.12 on an AVX512-BF16 CPU without AMX
    (AMD Zen 4, and Intel with ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``): whenever
    ``1 < depth < kd``; and with AMX (Sapphire Rapids): stride-2 convolutions of a 1 x 1
    input, in ``conv2d`` too. Forward results and input gradients were right in every case
    measured; the weight gradient is what breaks. Such a convolution runs in float32 on the
    same (reduced-precision-rounded) operands; it is small or rare, so the cost is too.

    Args:
        x: The convolution's input.
        kernel: The kernel's spatial extents (2 or 3 of them).

    Returns:
        ``None`` on other devices, in float32, or when every extent covers its kernel.
    """
    if x.device.type != "cpu":
        return None
    dtype = compute_dtype(x)
    if dtype not in _LOW_PRECISION:
        return None
    extents = x.shape[2:]
    for size, k in zip(extents, kernel):
        if k > 1 and size < k:
            return dtype
    return None


def _conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int,
) -> Tensor:
    """``F.conv2d`` or ``F.conv3d`` by the input's rank, in float32 where bf16 is unsafe."""
    conv = F.conv3d if x.ndim == 5 else F.conv2d
    restore = cpu_lowp_unsafe(x, tuple(weight.shape[2:]))
    if restore is None:
        return conv(x, weight, bias, stride, padding, dilation, groups)
    with torch.autocast("cpu", enabled=False):
        out = conv(
            x.float(),
            weight.float(),
            None if bias is None else bias.float(),
            stride,
            padding,
            dilation,
            groups,
        )
    return out.to(restore)


def thin_depth_conv3d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: tuple[int, int, int] = (1, 1, 1),
    padding: tuple[int, int, int] = (0, 0, 0),
    dilation: tuple[int, int, int] = (1, 1, 1),
    groups: int = 1,
    impl: str = "auto",
    centre_weight: Tensor | None = None,
) -> Tensor:
    """``F.conv3d`` that folds thin depths into ``conv2d`` (same result, less work).

    Args:
        x: ``(B, Cin, D, H, W)``, contiguous or ``channels_last_3d``.
        weight: ``(Cout, Cin, kd, kh, kw)``.
        bias: ``(Cout,)`` or ``None``.
        stride: ``(D, H, W)`` strides.
        padding: ``(D, H, W)`` zero padding.
        dilation: ``(D, H, W)``; the fold runs only without dilation.
        groups: Groups; the fold runs only for 1.
        impl: ``"auto"`` (path by :func:`choose_path`) or ``"conv3d"``.
        centre_weight: ``weight[:, :, padding[0]]``, laid out for ``conv2d`` (a module can
            keep it between inference calls); used only for the depth-1 path without
            gradients.

    Returns:
        ``(B, Cout, Do, Ho, Wo)``, channels-last when ``x`` is.

    Shape:
        As :func:`torch.nn.functional.conv3d`.
    """
    if impl not in CONV_IMPLS:
        raise ValueError(f"impl={impl!r} is not supported; choose one of {CONV_IMPLS}")
    path = "conv3d"
    forward_only = not needs_grad(x, weight, bias)
    if groups == 1 and tuple(dilation) == (1, 1, 1) and x.ndim == 5:
        out_h = (x.shape[3] + 2 * padding[1] - weight.shape[3]) // stride[1] + 1
        out_w = (x.shape[4] + 2 * padding[2] - weight.shape[4]) // stride[2] + 1
        path = choose_path(
            x.shape[2],
            weight.shape[2],
            stride[0],
            padding[0],
            impl,
            forward_only,
            x.device.type,
            positions=x.shape[0] * max(out_h, 0) * max(out_w, 0),
            in_channels=x.shape[1],
        )
    if path == "conv3d":
        return _conv(x, weight, bias, stride, padding, dilation, groups)
    plane_stride, plane_padding = tuple(stride[1:]), tuple(padding[1:])
    if path == "centre":
        taps = centre_weight if forward_only and centre_weight is not None else None
        if taps is None:
            taps = centre_tap(weight, padding[0])
        out = _conv(x.squeeze(2), taps, bias, plane_stride, plane_padding, (1, 1), 1)
        return out.unsqueeze(2)
    return _fold(x, weight, bias, stride, padding)


def _fold(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int, int],
    padding: tuple[int, int, int],
) -> Tensor:
    batch, cin, depth, height, width = x.shape
    cout = weight.shape[0]
    out_depth = output_depth(depth, weight.shape[2], stride[0], padding[0])
    plane_stride, plane_padding = tuple(stride[1:]), tuple(padding[1:])
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        # Channels-last: (B, D, H, W, C) in memory. One copy makes it (B, H, W, D, C), a
        # channels-last 2D tensor with D * C channels; the result goes back the same way.
        planes = x.permute(0, 3, 4, 2, 1).reshape(batch, height, width, depth * cin)
        w2d = folded_weight(weight, depth, stride[0], padding[0], depth_major=True)
        b2d = None if bias is None else bias.repeat(out_depth)
        out = _conv(planes.permute(0, 3, 1, 2), w2d, b2d, plane_stride, plane_padding, (1, 1), 1)
        ho, wo = out.shape[-2:]
        out = out.permute(0, 2, 3, 1).reshape(batch, ho, wo, out_depth, cout)
        return out.permute(0, 4, 3, 1, 2).contiguous(memory_format=torch.channels_last_3d)
    # Contiguous: (B, C, D, H, W) is already (B, C * D, H, W) in memory; so is the result.
    planes = x.contiguous().reshape(batch, cin * depth, height, width)
    w2d = folded_weight(weight, depth, stride[0], padding[0], depth_major=False)
    b2d = None if bias is None else bias.repeat_interleave(out_depth)
    out = _conv(planes, w2d, b2d, plane_stride, plane_padding, (1, 1), 1)
    return out.reshape(batch, cout, out_depth, out.shape[-2], out.shape[-1])
