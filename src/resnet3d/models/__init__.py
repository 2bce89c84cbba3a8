"""The networks: config, layers (the thin-depth aware convolution), blocks, stems,
:class:`ResNet3D`, the model registry, converters from other libraries' checkpoints and
loading of pretrained weights.

Importing this package registers every built-in architecture (``resnet3d.models.resnet``
declares the factories), so ``create_model`` and ``list_models`` see them all.
"""

from __future__ import annotations

from .blocks import BasicBlock3d, Bottleneck3d, ProjectionShortcut, ZeroPadShortcut
from .config import ResNet3DConfig
from .factory import create_model
from .layers import Conv2Plus1d, ThinDepthConv3d
from .registry import list_models, register_model
from .resnet import ResNet3D

__all__ = [
    "BasicBlock3d",
    "Bottleneck3d",
    "Conv2Plus1d",
    "ProjectionShortcut",
    "ResNet3D",
    "ResNet3DConfig",
    "ThinDepthConv3d",
    "ZeroPadShortcut",
    "create_model",
    "list_models",
    "register_model",
]
