"""resnet3d: 3D ResNets for CT volumes and video.

Importing the package does no work: names are loaded on first use, so ``import resnet3d``
is cheap and ``resnet3d.metrics`` works without touching the model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

# Public name -> module that defines it. Submodules listed in _SUBMODULES load on access.
_EXPORTS = {
    "ResNet3DConfig": "config",
    "ResNet3D": "resnet",
    "register_model": "registry",
    "create_model": "registry",
    "list_models": "registry",
    "Conv2Plus1d": "layers",
    "BasicBlock3d": "blocks",
    "Bottleneck3d": "blocks",
    "ZeroPadShortcut": "blocks",
    "ProjectionShortcut": "blocks",
    "from_pretrained": "hub",
    "save_pretrained": "hub",
    "push_to_hub": "hub",
    "list_pretrained": "pretrained",
    "register_pretrained": "pretrained",
    "SliceStacker": "volumes",
    "load_scan": "volumes",
    "ScanIndex": "data",
    "VolumeDataset": "data",
    "split_by_patient": "data",
    "classification_report": "metrics",
    "TrainConfig": "train",
    "Trainer": "train",
}
_SUBMODULES = (
    "config",
    "registry",
    "layers",
    "blocks",
    "stems",
    "resnet",
    "volumes",
    "data",
    "phantom",
    "metrics",
    "pretrained",
    "hub",
    "convert",
    "train",
    "workflows",
    "inference",
    "runtime",
    "checkpoint",
    "distributed",
    "cache",
    "readers",
    "errors",
    "explain",
    "augment",
)

__all__ = [  # noqa: RUF022  (grouped by module, as in _EXPORTS)
    "__version__",
    "ResNet3DConfig",
    "ResNet3D",
    "register_model",
    "create_model",
    "list_models",
    "Conv2Plus1d",
    "BasicBlock3d",
    "Bottleneck3d",
    "ZeroPadShortcut",
    "ProjectionShortcut",
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "list_pretrained",
    "register_pretrained",
    "SliceStacker",
    "load_scan",
    "ScanIndex",
    "VolumeDataset",
    "split_by_patient",
    "classification_report",
    "TrainConfig",
    "Trainer",
]

if TYPE_CHECKING:
    from .blocks import BasicBlock3d, Bottleneck3d, ProjectionShortcut, ZeroPadShortcut
    from .config import ResNet3DConfig
    from .data import ScanIndex, VolumeDataset, split_by_patient
    from .hub import from_pretrained, push_to_hub, save_pretrained
    from .layers import Conv2Plus1d
    from .metrics import classification_report
    from .pretrained import list_pretrained, register_pretrained
    from .registry import create_model, list_models, register_model
    from .resnet import ResNet3D
    from .train import TrainConfig, Trainer
    from .volumes import SliceStacker, load_scan


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'resnet3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
