"""Residual blocks and shortcuts.

Parameter names follow the 3D ResNet weight ecosystem so that existing checkpoints load
strictly: MONAI / Hara et al. (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``conv3``, ``bn3``,
``downsample.0`` / ``downsample.1``) and, for (2+1)D convolutions, Hara et al.'s
``resnet2p1d`` (``conv1_s``, ``bn1_s``, ``conv1_t``, ``bn1_t``, ...).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import check_choice, to_3tuple
from .config import CONVS, MIDPLANES, SHORTCUTS
from .layers import activation, conv3d, norm3d, spatial_temporal_pair, tran_midplanes

Stride = int | tuple[int, int, int]


class ZeroPadShortcut(nn.Module):
    """Type-A shortcut (He et al. 2016, option A): identity, subsampled and zero-padded.

    The input is subsampled by the stride (like a 1x1x1 average pool with that stride) and
    padded with zero channels up to ``out_planes``. It has no parameters and passes gradients
    to its input: nothing is detached.

    Args:
        in_planes: Input channels.
        out_planes: Output channels (>= ``in_planes``).
        stride: Subsampling stride, ``(D, H, W)``.

    Shape:
        ``(B, in_planes, D, H, W) -> (B, out_planes, ceil(D/sd), ceil(H/sh), ceil(W/sw))``.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: Stride = 1) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(
                f"a zero-padding (type A) shortcut cannot reduce channels: {in_planes} -> "
                f"{out_planes}; use shortcut='B'"
            )
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.stride = to_3tuple(stride, "stride")

    def forward(self, x: Tensor) -> Tensor:
        sd, sh, sw = self.stride
        if (sd, sh, sw) != (1, 1, 1):
            x = x[:, :, ::sd, ::sh, ::sw]
        extra = self.out_planes - self.in_planes
        if extra:
            # F.pad lists (before, after) pairs from the last dim backwards: W, H, D, then C.
            x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


class ProjectionShortcut(nn.Sequential):
    """Type-B shortcut where the shape changes: 1x1x1 convolution (no bias) + BatchNorm.

    A ``Sequential`` so that its parameters are ``downsample.0.weight`` and
    ``downsample.1.*``, the keys of MONAI's and Hara et al.'s checkpoints.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: Stride = 1) -> None:
        super().__init__(conv3d(in_planes, out_planes, 1, stride), norm3d(out_planes))


def make_shortcut(kind: str, in_planes: int, out_planes: int, stride: Stride) -> nn.Module | None:
    """The shortcut for a block: ``None`` (identity) when the shape is unchanged.

    Args:
        kind: ``"A"`` (zero-padding) or ``"B"`` (projection).
        in_planes: Block input channels.
        out_planes: Block output channels.
        stride: The block's stride.
    """
    check_choice("shortcut", kind, SHORTCUTS)
    if to_3tuple(stride, "stride") == (1, 1, 1) and in_planes == out_planes:
        return None
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride)
    return ProjectionShortcut(in_planes, out_planes, stride)


class _ResidualBlock(nn.Module):
    """Shared machinery: a chain of (conv, BN) steps with ReLU between, plus a shortcut."""

    expansion = 1
    downsample: nn.Module | None

    def __init__(self, conv: str, midplanes: str) -> None:
        super().__init__()
        self.conv_kind = check_choice("conv", conv, CONVS)
        self.midplanes_rule = check_choice("midplanes", midplanes, MIDPLANES)
        # Names of the (conv, norm) attributes in forward order. Names, not modules, so that
        # the parameters keep their checkpoint keys (conv1, bn1, conv1_s, ...).
        self._steps: list[tuple[str, str]] = []
        self.relu = activation()

    def _add_conv(
        self,
        index: int,
        in_planes: int,
        out_planes: int,
        kernel: int,
        stride: Stride,
        mid_planes: int | None,
    ) -> None:
        """Add convolution number ``index`` (and its BN), factorised if the block is (2+1)D."""
        k = to_3tuple(kernel, "kernel")
        if self.conv_kind == "3d" or k == (1, 1, 1):
            setattr(self, f"conv{index}", conv3d(in_planes, out_planes, k, stride))
            setattr(self, f"bn{index}", norm3d(out_planes))
            self._steps.append((f"conv{index}", f"bn{index}"))
            return
        mid = mid_planes if mid_planes is not None else tran_midplanes(in_planes, out_planes, k)
        spatial, temporal = spatial_temporal_pair(in_planes, out_planes, mid, k, stride)
        setattr(self, f"conv{index}_s", spatial)
        setattr(self, f"bn{index}_s", norm3d(mid))
        setattr(self, f"conv{index}_t", temporal)
        setattr(self, f"bn{index}_t", norm3d(out_planes))
        self._steps += [(f"conv{index}_s", f"bn{index}_s"), (f"conv{index}_t", f"bn{index}_t")]

    def _shared_midplanes(self, in_planes: int, planes: int) -> int | None:
        # torchvision's r2plus1d: one width per block from the block's input and width.
        if self.midplanes_rule == "shared":
            return tran_midplanes(in_planes, planes, (3, 3, 3))
        return None

    @property
    def last_norm(self) -> nn.BatchNorm3d:
        """The BN before the residual addition (zeroed by ``zero_init_residual``)."""
        norm = getattr(self, self._steps[-1][1])
        assert isinstance(norm, nn.BatchNorm3d)  # internal invariant, not user input
        return norm

    def forward(self, x: Tensor) -> Tensor:
        out = x
        last = len(self._steps) - 1
        for i, (conv_name, norm_name) in enumerate(self._steps):
            out = getattr(self, norm_name)(getattr(self, conv_name)(out))
            if i < last:
                out = self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class BasicBlock3d(_ResidualBlock):
    """Two 3x3x3 convolutions (or their (2+1)D factorisations) and a residual connection.

    Args:
        in_planes: Input channels.
        planes: Width and output channels.
        stride: Stride of the first convolution (and of the shortcut).
        shortcut: ``"A"`` or ``"B"``, used where the shape changes.
        conv: ``"3d"`` or ``"2plus1d"``.
        midplanes: (2+1)D widths: ``"tran"`` per convolution or ``"shared"`` per block.

    Shape:
        ``(B, in_planes, D, H, W) -> (B, planes, D', H', W')`` with ``D' = ceil(D / stride)``.
    """

    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: Stride = 1,
        shortcut: str = "A",
        conv: str = "3d",
        midplanes: str = "tran",
    ) -> None:
        super().__init__(conv, midplanes)
        mid = self._shared_midplanes(in_planes, planes)
        self._add_conv(1, in_planes, planes, 3, stride, mid)
        self._add_conv(2, planes, planes, 3, 1, mid)
        self.downsample = make_shortcut(shortcut, in_planes, planes, stride)


class Bottleneck3d(_ResidualBlock):
    """1x1x1 reduce, 3x3x3 (or (2+1)D), 1x1x1 expand (x4), and a residual connection.

    Args:
        in_planes: Input channels.
        planes: Inner width; the output has ``4 * planes`` channels.
        stride: Stride of the 3x3x3 convolution (and of the shortcut).
        shortcut: ``"A"`` or ``"B"``, used where the shape changes.
        conv: ``"3d"`` or ``"2plus1d"`` (only the 3x3x3 convolution is factorised).
        midplanes: (2+1)D widths: ``"tran"`` per convolution or ``"shared"`` per block.

    Shape:
        ``(B, in_planes, D, H, W) -> (B, 4 * planes, D', H', W')``.
    """

    expansion = 4

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: Stride = 1,
        shortcut: str = "B",
        conv: str = "3d",
        midplanes: str = "tran",
    ) -> None:
        super().__init__(conv, midplanes)
        self._add_conv(1, in_planes, planes, 1, 1, None)
        self._add_conv(2, planes, planes, 3, stride, self._shared_midplanes(in_planes, planes))
        self._add_conv(3, planes, planes * self.expansion, 1, 1, None)
        self.downsample = make_shortcut(shortcut, in_planes, planes * self.expansion, stride)


BLOCK_TYPES: dict[str, type[BasicBlock3d] | type[Bottleneck3d]] = {
    "basic": BasicBlock3d,
    "bottleneck": Bottleneck3d,
}
