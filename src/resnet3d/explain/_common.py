"""What every explanation method shares: the result type, input and target checks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._utils import did_you_mean
from ..engine.loader import prepare_batch


@dataclass
class CamResult:
    """Heatmaps of a batch of volumes: class activation maps or occlusion sensitivity.

    Attributes:
        heatmaps: One map per volume at the input's resolution, on the CPU, ``float32``; in
            ``[0, 1]`` per volume when normalised (an all-zero map when the class has no
            positive evidence anywhere in the volume).
        targets: The class each map explains.
        probs: Softmax class probabilities of each volume.
        layer: The module whose feature maps were weighted; ``"input"`` for occlusion.
        method: ``"gradcam"``, ``"gradcam++"``, ``"layercam"`` or ``"occlusion"``.
        feature_shape: ``(d, h, w)``: the map's true resolution before upsampling; the
            layer's feature map for the CAM methods, the grid of occluded windows for
            occlusion.

    Shape:
        ``heatmaps``: ``(N, D, H, W)``; ``targets``: ``(N,)``; ``probs``: ``(N, num_classes)``.
    """

    heatmaps: Tensor
    targets: Tensor
    probs: Tensor
    layer: str
    method: str
    feature_shape: tuple[int, int, int]


def _labels_of(model: nn.Module, num_classes: int) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    labels = [str(v) for v in (cfg.get("labels") or [])]
    return labels if len(labels) == num_classes else [str(i) for i in range(num_classes)]


def _class_index(value: Any, labels: Sequence[str]) -> int:
    """One target (class index or class name) as an index into ``labels``."""
    if isinstance(value, str):
        if value in labels:
            return list(labels).index(value)
        if value.lstrip("-").isdigit():
            value = int(value)
        else:
            raise ValueError(
                f"target {value!r} is not a class of this model; classes are {list(labels)}."
                + did_you_mean(value, labels)
            )
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"a target is a class index or a class name, got {value!r}")
    if not 0 <= int(value) < len(labels):
        raise ValueError(
            f"target {int(value)} is out of range: the model has {len(labels)} classes "
            f"(0..{len(labels) - 1}: {list(labels)})"
        )
    return int(value)


def _resolve_targets(target: Any, n: int, labels: Sequence[str]) -> Tensor | None:
    """``None`` (each volume's predicted class), or one class index per volume."""
    if target is None:
        return None
    if isinstance(target, (str, int, np.integer)) and not isinstance(target, bool):
        return torch.full((n,), _class_index(target, labels), dtype=torch.long)
    if isinstance(target, Tensor):
        target = target.tolist()
    if isinstance(target, np.ndarray):
        target = target.tolist()
    if not isinstance(target, Sequence) or isinstance(target, bool):
        raise TypeError(
            f"target must be None, a class index or name, or one per volume; got {target!r}"
        )
    if len(target) != n:
        raise ValueError(f"target lists {len(target)} classes for {n} volumes; give one per volume")
    return torch.tensor([_class_index(t, labels) for t in target], dtype=torch.long)


def _as_volumes(volumes: Any) -> Tensor:
    if isinstance(volumes, np.ndarray):
        volumes = torch.from_numpy(volumes)
    if not isinstance(volumes, Tensor):
        raise TypeError(
            f"volumes must be a torch.Tensor or numpy array (N, C, D, H, W), got "
            f"{type(volumes).__name__}"
        )
    if volumes.ndim != 5:
        raise ValueError(
            f"volumes must be 5-D (N, C, D, H, W), got shape {tuple(volumes.shape)}; add the "
            "batch axis with volumes[None] for a single volume"
        )
    if volumes.shape[0] == 0:
        raise ValueError("volumes is empty: no volume to explain (shape[0] == 0)")
    if volumes.is_complex() or volumes.dtype == torch.bool:
        raise TypeError(f"volumes must be real numbers, got dtype {volumes.dtype}")
    return volumes


def _minmax(maps: Tensor) -> Tensor:
    """Scale each map of ``(N, ...)`` to ``[0, 1]``; a constant map becomes all zeros."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    out = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1.0), 0.0)
    return out.reshape(maps.shape)


def _device_and_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the model's parameters are and their float type (CPU float32 without any)."""
    try:
        param = next(model.parameters())
    except StopIteration:
        return torch.device("cpu"), torch.float32
    dtype = param.dtype if param.dtype.is_floating_point else torch.float32
    return param.device, dtype


def _model_input(volumes: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A batch as the model's input: on its device and dtype, ``uint8`` scaled to ``[0, 1]``
    exactly as in training and evaluation (:func:`~resnet3d.engine.loader.prepare_batch`)."""
    if volumes.dtype == torch.uint8:
        return prepare_batch(volumes, device, channels_last=False).to(dtype)
    return volumes.to(device, dtype)


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; afterwards every module gets its own ``training`` flag back
    (a mixed state, e.g. a frozen BatchNorm in a training model, comes back exactly)."""
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for mod, flag in training.items():
            mod.training = flag
