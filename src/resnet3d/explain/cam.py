"""Grad-CAM, Grad-CAM++ and LayerCAM of 3D volumes, and the default layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import check_choice, did_you_mean
from ._common import (
    CamResult,
    _as_volumes,
    _device_and_dtype,
    _evaluating,
    _labels_of,
    _minmax,
    _model_input,
    _resolve_targets,
)

CAM_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam")
"""The class activation map methods :func:`grad_cam` implements."""


def default_layer(model: nn.Module, input_size: Sequence[int]) -> str:
    """The layer :func:`grad_cam` uses by default: deepest stage with depth > 1.

    A stage's output depth is ``ceil(D / reduction_D)`` from ``model.feature_info``. Deeper
    stages are more class-specific but coarser; once a stage's depth is 1, its Grad-CAM map
    cannot tell the slices of a volume apart, so the deepest stage that still resolves depth
    is chosen. When no stage does (``D`` too small), the last stage is used.

    Args:
        model: A model with ``feature_info`` (every
            :class:`~resnet3d.models.resnet.ResNet3D` has it).
        input_size: The input's ``(D, H, W)`` (or ``(C, D, H, W)``/``(N, C, D, H, W)``: the
            last three numbers are used).

    Returns:
        The stage's module name, e.g. ``"layer1"`` for the paper's stem at depth 4.

    Raises:
        ValueError: If the model has no ``feature_info`` (then pass ``layer=`` explicitly)
            or ``input_size`` has fewer than three numbers.

    Example:
        >>> default_layer(resnet3d.create_model("resnet18"), (4, 64, 64))
        'layer1'
        >>> default_layer(resnet3d.create_model("resnet18"), (16, 64, 64))
        'layer3'
    """
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(
            f"{type(model).__name__} has no feature_info, so the Grad-CAM layer cannot be chosen "
            "automatically; pass layer='<module name>' (see model.named_modules())"
        )
    sizes = tuple(int(v) for v in input_size)
    if len(sizes) < 3:
        raise ValueError(f"input_size must end with (D, H, W), got {tuple(input_size)!r}")
    depth = sizes[-3]
    for stage in reversed(info):
        if math.ceil(depth / stage["reduction"][0]) > 1:
            return str(stage["module"])
    return str(info[-1]["module"])


def _module_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def _cam_weights(grads: Tensor, acts: Tensor, method: str) -> Tensor:
    """Weights of the feature maps: per channel ``(B, K, 1, 1, 1)``, or per voxel for LayerCAM."""
    dims = (2, 3, 4)
    if method == "layercam":
        # LayerCAM (Jiang et al., IEEE TIP 2021): a weight per channel *and* position, the
        # positive gradient there, which keeps shallow layers' maps class-specific.
        return F.relu(grads)
    if method == "gradcam":
        return grads.mean(dim=dims, keepdim=True)
    # Grad-CAM++ with the exponential-score closed form (Chattopadhay et al., eq. 19): the
    # second and third derivatives become powers of the first, so one backward pass suffices.
    g2 = grads.pow(2)
    g3 = g2 * grads
    denom = 2 * g2 + acts.sum(dim=dims, keepdim=True) * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
    return (alpha * F.relu(grads)).sum(dim=dims, keepdim=True)


def grad_cam(
    model: nn.Module,
    volumes: Tensor | np.ndarray,
    target: int | str | Sequence[int | str] | Tensor | None = None,
    layer: str = "auto",
    *,
    method: str = "gradcam",
    batch_size: int = 8,
    normalize: bool = True,
) -> CamResult:
    """Grad-CAM (or Grad-CAM++, LayerCAM) maps of volumes, at the input's ``D x H x W``.

    For each volume, the gradient of the target class's logit with respect to ``layer``'s
    output weights that output's channels (Grad-CAM: the gradient averaged over the feature
    map; Grad-CAM++: a positive-gradient weighting; LayerCAM: the positive gradient at each
    voxel, not averaged); the weighted sum, clipped at zero, is
    upsampled trilinearly to the input's size. Volumes are run in batches of ``batch_size``,
    in eval mode, on the device the model's parameters are on.

    Args:
        model: A classifier returning logits ``(N, num_classes)``, e.g. any registered model.
        volumes: Input volumes; ``uint8`` input is scaled to ``[0, 1]`` as in training.
        target: The class to explain: ``None`` for each volume's predicted class, one class
            index or name (from ``model.pretrained_cfg["labels"]``) for all volumes, or one
            per volume.
        layer: The module whose output is weighted: ``"auto"`` (see :func:`default_layer`)
            or any name from ``model.named_modules()``, e.g. ``"layer3"`` or
            ``"layer3.1"``. For a module called several times in one forward pass the last
            call is used.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"layercam"`` (see :data:`METHODS`).
        batch_size: Volumes per forward/backward pass.
        normalize: Scale each volume's map to ``[0, 1]`` (min-max). Without it the maps are
            the raw, non-negative CAM values, comparable across volumes.

    Returns:
        The maps with the targets, probabilities, layer and method used.

    Raises:
        RuntimeError: When called inside ``torch.inference_mode()``.
        TypeError: For volumes or a target of the wrong type.
        ValueError: For a bad shape, an unknown layer or method (with the closest names), a
            target out of range, a model without a classifier, or a layer whose output is not
            a ``(B, C, D, H, W)`` feature map.

    Shape:
        ``volumes``: ``(N, C, D, H, W)``; ``heatmaps``: ``(N, D, H, W)``.

    Example:
        >>> model = resnet3d.create_model("resnet18", num_classes=3).eval()
        >>> cam = grad_cam(model, torch.rand(2, 3, 4, 64, 64))
        >>> cam.heatmaps.shape, cam.layer
        (torch.Size([2, 4, 64, 64]), 'layer1')
    """
    check_choice("method", method, CAM_METHODS)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if getattr(model, "num_classes", None) == 0:
        raise ValueError(
            "the model has no classifier (num_classes=0): there is no class score to explain; "
            "use model.reset_classifier(num_classes) and train it first"
        )
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "grad_cam needs gradients, which torch.inference_mode() disables; call it outside "
            "that context (torch.no_grad() is fine)"
        )
    vols = _as_volumes(volumes)
    n, _, depth, height, width = vols.shape
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module name (str) or 'auto', got {layer!r}")
    layer_name = default_layer(model, vols.shape) if layer == "auto" else layer
    names = _module_names(model)
    if layer_name not in names:
        raise ValueError(
            f"layer {layer_name!r} is not a submodule of {type(model).__name__}; stages are "
            f"{[n for n in names if '.' not in n]}." + did_you_mean(layer_name, names)
        )
    module = model.get_submodule(layer_name)
    device, dtype = _device_and_dtype(model)

    captured: list[Tensor] = []

    def keep_output(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor):
            raise ValueError(
                f"layer {layer_name!r} returns {type(output).__name__}, not a tensor; choose a "
                "layer with a (B, C, D, H, W) feature map, e.g. a stage like 'layer3'"
            )
        captured.append(output)
        # Hand the rest of the network a copy: an in-place op after this layer (the models'
        # ReLUs are in-place) then changes the copy, never the tensor we differentiate by.
        return output.clone()

    maps: list[Tensor] = []
    targets: list[Tensor] = []
    probs: list[Tensor] = []
    feature_shape: tuple[int, int, int] = (0, 0, 0)
    wanted = None
    # The hook's handle removes it on leaving the block, also when an error is raised.
    with module.register_forward_hook(keep_output), _evaluating(model):
        for start in range(0, n, batch_size):
            x = _model_input(vols[start : start + batch_size], device, dtype)
            # The input asks for gradients so that a graph exists even when every parameter
            # is frozen (requires_grad=False); only the feature map's gradient is computed.
            x = (x.clone() if x.is_inference() else x.detach()).requires_grad_(True)
            captured.clear()
            with torch.enable_grad():
                logits = model(x)
            if not captured:
                raise ValueError(
                    f"layer {layer_name!r} did not run in the forward pass; choose a module "
                    "that the model calls, e.g. a stage like 'layer3'"
                )
            acts = captured[-1]
            if acts.ndim != 5:
                raise ValueError(
                    f"layer {layer_name!r} gives shape {tuple(acts.shape)}, not a (B, C, D, H, W) "
                    "feature map; choose a convolutional layer such as a stage ('layer3')"
                )
            if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[1] < 1:
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits)
                raise ValueError(
                    f"the model must return logits (N, num_classes), got {shape}; a model "
                    "whose classifier was removed (num_classes=0) cannot be explained"
                )
            if wanted is None:
                wanted = _resolve_targets(target, n, _labels_of(model, int(logits.shape[1])))
            batch_targets = (
                logits.detach().argmax(dim=1)
                if wanted is None
                else wanted[start : start + len(x)].to(logits.device)
            )
            with torch.enable_grad():  # a caller's no_grad() must not cut the graph here
                score = logits.gather(1, batch_targets[:, None]).sum()
                (grads,) = torch.autograd.grad(score, acts)
            acts, grads = acts.detach().float(), grads.float()
            cam = F.relu((_cam_weights(grads, acts, method) * acts).sum(dim=1, keepdim=True))
            feature_shape = (int(cam.shape[2]), int(cam.shape[3]), int(cam.shape[4]))
            cam = F.interpolate(
                cam, size=(depth, height, width), mode="trilinear", align_corners=False
            )[:, 0]
            # Trilinear interpolation of non-negative values is non-negative up to rounding.
            cam = cam.clamp_min_(0.0)
            maps.append((_minmax(cam) if normalize else cam).cpu())
            targets.append(batch_targets.cpu())
            probs.append(torch.softmax(logits.detach().float(), dim=1).cpu())
    return CamResult(
        heatmaps=torch.cat(maps),
        targets=torch.cat(targets),
        probs=torch.cat(probs),
        layer=layer_name,
        method=method,
        feature_shape=feature_shape,
    )
