"""The stem: the paper's 7x7x7 convolution with stride (1, 2, 2), BN, ReLU, 3x3x3 max pool.

Its (2+1)D form factorises the convolution into a ``1 x 7 x 7`` spatial and a ``7 x 1 x 1``
temporal convolution. The stem's modules are registered directly on the model (``conv1``,
``bn1``, ``maxpool`` or ``conv1_s``, ``bn1_s``, ``conv1_t``, ``bn1_t``) because that is where
MONAI's and Hara et al.'s checkpoints keep them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .config import ResNet3DConfig
from .layers import FastMaxPool3d, conv3d, norm3d, spatial_temporal_pair, tran_midplanes


@dataclass(frozen=True)
class StemSpec:
    """The stem's modules by attribute name and the order to run them in.

    Attributes:
        modules: Attribute name -> module, to register on the model.
        steps: ``(conv, norm)`` attribute names, each followed by the model's ReLU.
        pool: Attribute name of the max pool, or ``None``.
    """

    modules: dict[str, nn.Module]
    steps: tuple[tuple[str, str], ...]
    pool: str | None


def stem_midplanes(config: ResNet3DConfig) -> int:
    """Intermediate width of the (2+1)D stem for ``config`` (its ``in_channels``, not 3)."""
    if config.stem_midplanes is not None:
        return config.stem_midplanes
    return tran_midplanes(config.in_channels, config.widths[0], config.stem_kernel)


def build_stem(config: ResNet3DConfig) -> StemSpec:
    """Build the stem described by ``config``."""
    width = config.widths[0]
    modules: dict[str, nn.Module] = {}
    if config.conv == "3d":
        modules["conv1"] = conv3d(config.in_channels, width, config.stem_kernel, config.stem_stride)
        modules["bn1"] = norm3d(width)
        steps: tuple[tuple[str, str], ...] = (("conv1", "bn1"),)
    else:
        mid = stem_midplanes(config)
        spatial, temporal = spatial_temporal_pair(
            config.in_channels, width, mid, config.stem_kernel, config.stem_stride
        )
        modules.update(conv1_s=spatial, bn1_s=norm3d(mid), conv1_t=temporal, bn1_t=norm3d(width))
        steps = (("conv1_s", "bn1_s"), ("conv1_t", "bn1_t"))
    pool = None
    if config.stem_pool:
        modules["maxpool"] = FastMaxPool3d(kernel_size=3, stride=2, padding=1)
        pool = "maxpool"
    return StemSpec(modules=modules, steps=steps, pool=pool)
