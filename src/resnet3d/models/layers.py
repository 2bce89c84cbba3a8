"""The convolution module, convolution factories and the (2+1)D factorised convolution.

The ResNet blocks build every convolution through :func:`conv3d` (a :class:`ThinDepthConv3d`)
and, for (2+1)D nets, split it with :func:`tran_midplanes` into a spatial and a temporal
part; normalisation and activation are resolved here too, so there is one place to change
them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._utils import check_choice, to_3tuple
from .thin_depth import (
    CONV_IMPLS,
    centre_tap,
    choose_path,
    compute_dtype,
    needs_grad,
    thin_depth_conv3d,
)


class ThinDepthConv3d(nn.Conv3d):
    """``nn.Conv3d`` that runs thin depths as exact 2D convolutions.

    Same parameters, state-dict keys and results as ``nn.Conv3d`` (it is one, so converters,
    initialisers and ``isinstance`` checks see a ``Conv3d``). Per call it picks, from the
    input's depth: ``Conv3d``; a ``conv2d`` with the centre tap (depth 1); or a ``conv2d``
    with the depth folded into the channels (depth below the kernel's); see
    :mod:`resnet3d.models.thin_depth`. On the CPU in bf16 it also avoids oneDNN kernels that compute
    wrong weight gradients, whatever ``impl`` says.

    Args:
        *args: As for ``nn.Conv3d``.
        impl: ``"auto"`` (fold thin depths) or ``"conv3d"`` (never fold).
        **kwargs: As for ``nn.Conv3d``.
    """

    def __init__(self, *args: Any, impl: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.impl = check_choice("conv_impl", impl, CONV_IMPLS)
        # Inference at depth 1 runs conv2d on the centre tap: slicing it out of the 3D weight
        # on every call leaves a strided weight that the kernel re-packs each time (layer4 of
        # resnet18 ran 1.6x slower than Conv3d), so it is kept, with what it was made from.
        self._centre: tuple[tuple[Any, ...], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return thin_depth_conv3d(
            x,
            self.weight,
            self.bias,
            self.stride,  # type: ignore[arg-type]
            self.padding,  # type: ignore[arg-type]
            self.dilation,  # type: ignore[arg-type]
            self.groups,
            self.impl,
            centre_weight=self._centre_weight(x),
        )

    def _centre_weight(self, x: Tensor) -> Tensor | None:
        """The centre tap as a contiguous 2D weight, for inference on depth-1 inputs."""
        if (
            x.device.type not in ("cpu", "cuda")  # meta tensors (FLOP counts) and others
            or x.ndim != 5
            or needs_grad(x, self.weight, self.bias)
            or torch.compiler.is_compiling()  # compiled graphs fold constant weights
            or choose_path(
                x.shape[2],
                self.kernel_size[0],
                self.stride[0],
                self.padding[0],  # type: ignore[arg-type]
                self.impl,
                forward_only=True,
                device_type=x.device.type,
            )
            != "centre"
        ):
            return None
        weight = self.weight
        dtype = compute_dtype(x) if weight.dtype == torch.float32 else weight.dtype
        layout = (
            torch.channels_last
            if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d)
            else torch.contiguous_format
        )
        key = (weight.data_ptr(), weight._version, weight.device, dtype, layout)
        if self._centre is None or self._centre[0] != key:
            centre = centre_tap(weight.detach(), self.padding[0])  # type: ignore[arg-type]
            self._centre = (key, centre.to(dtype).contiguous(memory_format=layout))
        return self._centre[1]

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.impl == "auto" else f"{text}, impl={self.impl!r}"


class FastMaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` that runs CPU inference on a channels-last copy.

    PyTorch's CPU max pool is about 4x faster in ``channels_last_3d`` than in NCDHW, more
    than the two layout copies cost (the stem's pool of resnet18 at 4 x 128 x 128: 7.2 ms
    -> 1.6 ms per batch of 2, fp32 and bf16). Its backward in channels-last is slower, so
    with gradients the pool runs as it is. Same results, same (empty) state dict.
    """

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.device.type == "cpu"
            and x.ndim == 5
            and x.shape[1] > 1
            and x.is_contiguous()
            and not needs_grad(x)
        ):
            pooled = super().forward(x.contiguous(memory_format=torch.channels_last_3d))
            return pooled.contiguous()
        return super().forward(x)


def tran_midplanes(in_planes: int, out_planes: int, kernel: tuple[int, int, int]) -> int:
    """Intermediate width that gives a (2+1)D convolution the parameters of the 3D one.

    Tran et al. (CVPR 2018): ``M = floor(t * d^2 * N_in * N_out / (d^2 * N_in + t * N_out))``
    for a ``t x d x d`` kernel; with a non-square spatial kernel ``d^2`` is ``kh * kw``.

    Args:
        in_planes: Input channels ``N_in``.
        out_planes: Output channels ``N_out``.
        kernel: The 3D kernel ``(t, kh, kw)`` being factorised.

    Returns:
        The intermediate width ``M`` (at least 1).
    """
    t, kh, kw = kernel
    spatial = kh * kw
    return max(1, (t * spatial * in_planes * out_planes) // (spatial * in_planes + t * out_planes))


def conv3d(
    in_planes: int,
    out_planes: int,
    kernel: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] = 1,
    impl: str = "auto",
) -> ThinDepthConv3d:
    """A bias-free :class:`ThinDepthConv3d` with "same" padding (``k // 2``) for odd kernels."""
    k = to_3tuple(kernel, "kernel")
    return ThinDepthConv3d(
        in_planes,
        out_planes,
        kernel_size=k,
        stride=to_3tuple(stride, "stride"),
        padding=(k[0] // 2, k[1] // 2, k[2] // 2),
        bias=False,
        impl=impl,
    )


def norm3d(channels: int) -> nn.BatchNorm3d:
    """The normalisation layer after every convolution (BatchNorm, as in the paper)."""
    return nn.BatchNorm3d(channels)


def activation() -> nn.ReLU:
    """The activation after every normalisation (in-place ReLU, as in the paper)."""
    return nn.ReLU(inplace=True)


def spatial_temporal_pair(
    in_planes: int,
    out_planes: int,
    mid_planes: int,
    kernel: int | tuple[int, int, int] = 3,
    stride: int | tuple[int, int, int] = 1,
) -> tuple[nn.Conv3d, nn.Conv3d]:
    """The two convolutions of a ``t x d x d`` conv factorised as ``1 x d x d`` then ``t x 1 x 1``.

    The spatial convolution takes the spatial stride, the temporal one the depth stride, so
    the pair changes the shape exactly as the 3D convolution would.
    """
    t, kh, kw = to_3tuple(kernel, "kernel")
    sd, sh, sw = to_3tuple(stride, "stride")
    spatial = conv3d(in_planes, mid_planes, (1, kh, kw), (1, sh, sw))
    temporal = conv3d(mid_planes, out_planes, (t, 1, 1), (sd, 1, 1))
    return spatial, temporal


class Conv2Plus1d(nn.Module):
    """A ``t x d x d`` convolution factorised into spatial conv, BN, ReLU and temporal conv.

    This is the (2+1)D unit as one module (torchvision's layout: the norm after the temporal
    convolution belongs to the caller). The ResNet blocks inline the same pieces under Hara et
    al.'s key names (``conv1_s``, ``bn1_s``, ``conv1_t``) so their checkpoints load unchanged.

    Args:
        in_planes: Input channels.
        out_planes: Output channels.
        mid_planes: Intermediate width; ``None`` uses :func:`tran_midplanes`.
        kernel: The 3D kernel being factorised, ``(t, d, d)``.
        stride: The 3D stride, ``(D, H, W)``.

    Shape:
        ``(B, in_planes, D, H, W) -> (B, out_planes, D', H', W')`` as for the 3D convolution.
    """

    def __init__(
        self,
        in_planes: int,
        out_planes: int,
        mid_planes: int | None = None,
        kernel: int | tuple[int, int, int] = 3,
        stride: int | tuple[int, int, int] = 1,
    ) -> None:
        super().__init__()
        k = to_3tuple(kernel, "kernel")
        self.mid_planes = mid_planes or tran_midplanes(in_planes, out_planes, k)
        self.conv_s, self.conv_t = spatial_temporal_pair(
            in_planes, out_planes, self.mid_planes, k, stride
        )
        self.bn_s = norm3d(self.mid_planes)
        self.act = activation()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_t(self.act(self.bn_s(self.conv_s(x))))
