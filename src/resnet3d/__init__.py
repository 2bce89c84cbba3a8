"""resnet3d: 3D ResNets for CT volumes and video.

Importing the package does no work: names are loaded on first use, so ``import resnet3d``
is cheap and ``resnet3d.metrics`` works without touching the model code.

The code lives in rooms whose imports flow one way (a lower room never imports a higher one;
``tests/test_architecture.py`` reads the import graph and fails otherwise)::

    _utils, errors, presets, torch_files   stdlib-level helpers, one exception hierarchy
    metrics/    classification metrics (numpy only)
    data/       readers, video, volumes (SliceStacker), index, split, dataset, cache, phantom
    weights/    the weights table, PretrainedCfg, export format, Hub download and upload
    models/     config, layers, blocks, stems, ResNet3D, registry, converters, loading
    engine/     device and precision, loaders, predict, train, checkpoints, distributed
    workflows   fit_from_folder, evaluate_model, predict_scans
    explain/, sweep/, benchmarking/, cli/   on top
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _moved
from ._version import __version__

# The public API. tests/test_public_api.py checks that _EXPORTS (name -> module that defines
# it, imported on first use) and the TYPE_CHECKING imports below list exactly these names.
__all__ = [  # noqa: RUF022  (grouped by room, as in _EXPORTS)
    "__version__",
    "ResNet3DConfig",
    "ResNet3D",
    "register_model",
    "create_model",
    "list_models",
    "from_pretrained",
    "save_pretrained",
    "push_to_hub",
    "PretrainedEntry",
    "list_pretrained",
    "register_pretrained",
    "SliceStacker",
    "load_scan",
    "ScanIndex",
    "Split",
    "VolumeDataset",
    "split_by_patient",
    "classification_report",
    "TrainConfig",
    "Trainer",
    "fit_from_folder",
    "evaluate_model",
    "predict_scans",
]

_EXPORTS = {
    "ResNet3DConfig": "models.config",
    "ResNet3D": "models.resnet",
    "register_model": "models.registry",
    "create_model": "models.factory",
    "list_models": "models.registry",
    "from_pretrained": "models.pretrained",
    "save_pretrained": "weights.save",
    "push_to_hub": "weights.upload",
    "PretrainedEntry": "weights.table",
    "list_pretrained": "weights.table",
    "register_pretrained": "weights.table",
    "SliceStacker": "data.volumes",
    "load_scan": "data.volumes",
    "ScanIndex": "data.index",
    "Split": "data.split",
    "VolumeDataset": "data.dataset",
    "split_by_patient": "data.split",
    "classification_report": "metrics",
    "TrainConfig": "engine.train",
    "Trainer": "engine.train",
    "fit_from_folder": "workflows",
    "evaluate_model": "workflows",
    "predict_scans": "workflows",
}
# Names that were top-level before and still resolve, outside __all__ and dir(): the layer
# classes now live in resnet3d.models.
_FORMER_EXPORTS = {
    "Conv2Plus1d": "models.layers",
    "BasicBlock3d": "models.blocks",
    "Bottleneck3d": "models.blocks",
    "ZeroPadShortcut": "models.blocks",
    "ProjectionShortcut": "models.blocks",
}
# The rooms, importable as attributes (``resnet3d.metrics.accuracy``).
_SUBPACKAGES = (
    "benchmarking",
    "cli",
    "data",
    "engine",
    "errors",
    "explain",
    "metrics",
    "models",
    "presets",
    "sweep",
    "torch_files",
    "weights",
    "workflows",
)
# Module paths of version 0.1 -> where their names live now (see resnet3d._moved).
_MOVED = {
    "augment": ("engine.augment",),
    "blocks": ("models.blocks",),
    "cache": ("data.cache",),
    "checkpoint": ("engine.checkpoint",),
    "config": ("models.config",),
    "convert": ("models.convert",),
    "distributed": ("engine.distributed",),
    "hub": (
        "models.pretrained",
        "weights.save",
        "weights.upload",
        "weights.export_format",
        "weights.state_dict",
        "weights.evaluation",
        "weights.download",
        "engine.export",
        "errors",
        "_utils",
    ),
    "_hub_probe": ("weights.probe",),
    "inference": ("engine.device", "engine.loader", "engine.predict", "engine.loss"),
    "layers": ("models.layers",),
    "phantom": ("data.phantom",),
    "pretrained": ("weights.table",),
    "readers": ("data.readers",),
    "registry": ("models.registry", "models.factory"),
    "resnet": ("models.resnet",),
    "runtime": ("engine.runtime",),
    "stems": ("models.stems",),
    "synthetic_video": ("data.synthetic_video",),
    "thin_depth": ("models.thin_depth",),
    "train": ("engine.train",),
    "video": ("data.video",),
    "volumes": ("data.volumes",),
}
_moved.install(
    {f"{__name__}.{old}": tuple(f"{__name__}.{m}" for m in new) for old, new in _MOVED.items()}
)

if TYPE_CHECKING:
    from .data.dataset import VolumeDataset
    from .data.index import ScanIndex
    from .data.split import Split, split_by_patient
    from .data.volumes import SliceStacker, load_scan
    from .engine.train import TrainConfig, Trainer
    from .metrics import classification_report
    from .models.config import ResNet3DConfig
    from .models.factory import create_model
    from .models.pretrained import from_pretrained
    from .models.registry import list_models, register_model
    from .models.resnet import ResNet3D
    from .weights.save import save_pretrained
    from .weights.table import PretrainedEntry, list_pretrained, register_pretrained
    from .weights.upload import push_to_hub
    from .workflows import evaluate_model, fit_from_folder, predict_scans


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name) or _FORMER_EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES or name in _MOVED:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'resnet3d' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBPACKAGES})
