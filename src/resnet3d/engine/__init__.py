"""Running models: device and precision policy, loaders and batch transport, prediction,
the training loop, checkpoints, distributed helpers, augmentation and the CPU allocator
tuning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._utils import lazy_attribute

# Public name -> module that defines it; loaded on first use.
_EXPORTS = {
    "TrainConfig": "train",
    "TrainResult": "train",
    "Trainer": "train",
    "TrainingDivergedError": "train",
    "Predictions": "predict",
    "predict_loader": "predict",
    "resolve_device": "device",
    "resolve_precision": "device",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint",
    "Augment": "augment",
    "DistInfo": "distributed",
    "Runtime": "runtime",
    "available_devices": "device",
    "check_device": "device",
    "resolve_runtime": "runtime",
    "tune_malloc": "malloc",
}
__all__ = [
    "Augment",
    "CheckpointError",
    "DistInfo",
    "Predictions",
    "Runtime",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDivergedError",
    "available_devices",
    "check_device",
    "load_checkpoint",
    "predict_loader",
    "resolve_device",
    "resolve_precision",
    "resolve_runtime",
    "save_checkpoint",
    "tune_malloc",
]

if TYPE_CHECKING:
    from ..errors import CheckpointError, TrainingDivergedError
    from .augment import Augment
    from .checkpoint import load_checkpoint, save_checkpoint
    from .device import available_devices, check_device, resolve_device, resolve_precision
    from .distributed import DistInfo
    from .malloc import tune_malloc
    from .predict import Predictions, predict_loader
    from .runtime import Runtime, resolve_runtime
    from .train import TrainConfig, Trainer, TrainResult


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
