"""Where did the model look? 3D Grad-CAM, mapped back to the slices of a CT scan.

Three layers, each usable alone:

* :func:`grad_cam`: Grad-CAM (Selvaraju et al., ICCV 2017), Grad-CAM++ (Chattopadhay et
  al., WACV 2018) or LayerCAM (Jiang et al., IEEE TIP 2021) for a batch of volumes
  ``(N, C, D, H, W)``, upsampled trilinearly to the input's ``D x H x W`` and normalised per
  volume to ``[0, 1]``;
* :func:`slice_heatmaps`: the per-volume maps mapped back to the scan's original slice numbers
  (:meth:`~resnet3d.volumes.SliceStacker.volume_indices`), averaged where volumes overlap;
* :func:`explain_scan`: both for one scan folder, plus one overlay PNG per slice (the slice in
  gray, the heatmap in colour, the predicted class and probability written on it) and a
  contact sheet of the whole scan.

:func:`mask_overlap` scores a heatmap against a ground-truth mask (e.g. the phantom's lesion
masks) and the chance level of a random map of the same area.

Which layer? Grad-CAM weights the feature maps of one layer, so its map has that layer's
resolution. With the paper's stem (stride 1 in depth, then a stride-2 max pool) and
depth-4 volumes, depth is 2 after ``layer1`` and 1 from ``layer2`` on: a map taken at
``layer4`` is constant across the four slices of a volume. The default (``layer="auto"``,
:func:`default_layer`) is therefore the deepest stage whose output still has more than one
slice in depth, and the last stage when none has. Pass ``layer="layer3"`` (any submodule
name) to override.

The model is left as it was: it runs in eval mode (BatchNorm running statistics are used and
not updated) and every module's ``training`` flag is restored afterwards; the one forward hook
used is removed in a ``finally``; gradients are taken with :func:`torch.autograd.grad` with
respect to the feature map only, so no parameter's ``.grad`` is touched.

The colour map is matplotlib's ``jet``, reimplemented in numpy, so nothing here needs
matplotlib.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._utils import check_choice, did_you_mean

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from .volumes import SliceStacker

__all__ = [
    "METHODS",
    "NORMALIZE",
    "CamResult",
    "MaskOverlap",
    "ScanExplanation",
    "colorize",
    "contact_sheet",
    "default_layer",
    "explain_scan",
    "grad_cam",
    "mask_overlap",
    "overlay",
    "slice_heatmaps",
]

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam")
"""The class activation map methods :func:`grad_cam` implements."""

NORMALIZE: tuple[str, ...] = ("scan", "volume")
"""How :func:`explain_scan` scales heatmaps to ``[0, 1]``: over the whole scan or per volume."""

SUMMARY_NAME = "explanation.json"
"""The summary :func:`explain_scan` writes beside the overlays (it also marks the folder)."""

_SLICE_PATTERN = re.compile(r"^slice_\d{4,}\.png$")

# matplotlib's "jet" as segment data (x, value): matplotlib/_cm.py, _jet_data. Linear
# interpolation between these points reproduces matplotlib.cm.jet up to its 256-entry lookup.
_JET = (
    ((0.0, 0.35, 0.66, 0.89, 1.0), (0.0, 0.0, 1.0, 1.0, 0.5)),
    ((0.0, 0.125, 0.375, 0.64, 0.91, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)),
    ((0.0, 0.11, 0.34, 0.65, 1.0), (0.5, 1.0, 1.0, 0.0, 0.0)),
)


# ----------------------------------------------------------------------------------------------
# Grad-CAM on volumes


@dataclass
class CamResult:
    """Class activation maps of a batch of volumes.

    Attributes:
        heatmaps: One map per volume at the input's resolution, on the CPU, ``float32``; in
            ``[0, 1]`` per volume when normalised (an all-zero map when the class has no
            positive evidence anywhere in the volume).
        targets: The class each map explains.
        probs: Softmax class probabilities of each volume.
        layer: The module whose feature maps were weighted.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"layercam"``.
        feature_shape: ``(d, h, w)`` of the layer's feature map: the map's true resolution
            before upsampling.

    Shape:
        ``heatmaps``: ``(N, D, H, W)``; ``targets``: ``(N,)``; ``probs``: ``(N, num_classes)``.
    """

    heatmaps: Tensor
    targets: Tensor
    probs: Tensor
    layer: str
    method: str
    feature_shape: tuple[int, int, int]


def default_layer(model: nn.Module, input_size: Sequence[int]) -> str:
    """The layer :func:`grad_cam` uses by default: deepest stage with depth > 1.

    A stage's output depth is ``ceil(D / reduction_D)`` from ``model.feature_info``. Deeper
    stages are more class-specific but coarser; once a stage's depth is 1, its Grad-CAM map
    cannot tell the slices of a volume apart, so the deepest stage that still resolves depth
    is chosen. When no stage does (``D`` too small), the last stage is used.

    Args:
        model: A model with ``feature_info`` (every :class:`~resnet3d.resnet.ResNet3D` has it).
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


def _minmax(maps: Tensor) -> Tensor:
    """Scale each map of ``(N, ...)`` to ``[0, 1]``; a constant map becomes all zeros."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    out = torch.where(span > 0, (flat - low) / torch.where(span > 0, span, 1.0), 0.0)
    return out.reshape(maps.shape)


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
    check_choice("method", method, METHODS)
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
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    if not dtype.is_floating_point:
        dtype = torch.float32

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
    training = {m: m.training for m in model.modules()}
    handle = module.register_forward_hook(keep_output)
    try:
        model.eval()
        for start in range(0, n, batch_size):
            x = vols[start : start + batch_size].to(device)
            x = x.to(dtype).div_(255.0) if x.dtype == torch.uint8 else x.to(dtype)
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
    finally:
        handle.remove()
        for mod, flag in training.items():
            mod.training = flag
    return CamResult(
        heatmaps=torch.cat(maps),
        targets=torch.cat(targets),
        probs=torch.cat(probs),
        layer=layer_name,
        method=method,
        feature_shape=feature_shape,
    )


# ----------------------------------------------------------------------------------------------
# From volumes back to slices


def slice_heatmaps(
    heatmaps: Tensor | np.ndarray, indices: np.ndarray, n_slices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map per-volume heatmaps back to the scan's slices, averaging where volumes overlap.

    Row ``i`` of ``indices`` gives the slice number of each depth position of volume ``i``
    (:meth:`~resnet3d.volumes.SliceStacker.volume_indices`). Padding is not a slice: positions
    that hold ``-1`` (zero padding) or repeat the previous position's slice (edge padding)
    are skipped, so a padded volume counts once for its real slices.

    Args:
        heatmaps: One map per volume.
        indices: Slice numbers per volume and depth position.
        n_slices: Slices in the scan.

    Returns:
        ``(heat, covered)``: the mean map of every slice (``NaN`` for a slice no volume
        contains, e.g. a tail dropped with ``remainder="drop"``) as ``float32``, and whether
        each slice is covered.

    Raises:
        ValueError: If the shapes disagree or an index is out of range.

    Shape:
        ``heatmaps``: ``(N, D, H, W)``; ``indices``: ``(N, D)``; ``heat``:
        ``(n_slices, H, W)``; ``covered``: ``(n_slices,)``.
    """
    maps = heatmaps.detach().cpu().numpy() if isinstance(heatmaps, Tensor) else heatmaps
    maps = np.asarray(maps, dtype=np.float32)
    idx = np.asarray(indices)
    if maps.ndim != 4:
        raise ValueError(f"heatmaps must be (N, D, H, W), got shape {maps.shape}")
    if idx.shape != maps.shape[:2]:
        raise ValueError(
            f"indices {idx.shape} must be (N, D) = {maps.shape[:2]}, one slice number per "
            "volume and depth position of heatmaps"
        )
    if not isinstance(n_slices, (int, np.integer)) or n_slices < 0:
        raise ValueError(f"n_slices must be an int >= 0, got {n_slices!r}")
    if idx.size and (idx.max() >= n_slices or idx.min() < -1):
        raise ValueError(
            f"slice numbers must be in [-1, {n_slices - 1}] for a scan of {n_slices} slices, "
            f"got the range [{idx.min()}, {idx.max()}]"
        )
    real = idx >= 0
    real[:, 1:] &= idx[:, 1:] != idx[:, :-1]
    total = np.zeros((n_slices, *maps.shape[2:]), dtype=np.float64)
    count = np.zeros(n_slices, dtype=np.int64)
    vol, pos = np.nonzero(real)
    np.add.at(total, idx[vol, pos], maps[vol, pos])
    np.add.at(count, idx[vol, pos], 1)
    covered = count > 0
    heat = np.full(total.shape, np.nan, dtype=np.float32)
    heat[covered] = total[covered] / count[covered, None, None]
    return heat, covered


# ----------------------------------------------------------------------------------------------
# Pictures (numpy + Pillow; no matplotlib)


def colorize(heat: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` to RGB with matplotlib's ``jet`` colour map.

    Values are clipped to ``[0, 1]``; ``NaN`` becomes black.

    Args:
        heat: Any array of values.

    Returns:
        ``uint8`` RGB, one more axis of size 3.

    Shape:
        ``(...) -> (..., 3)``.
    """
    h = np.asarray(heat, dtype=np.float64)
    nan = np.isnan(h)
    h = np.clip(np.where(nan, 0.0, h), 0.0, 1.0)
    rgb = np.stack([np.interp(h, xs, ys) for xs, ys in _JET], axis=-1)
    rgb[nan] = 0.0
    return np.rint(rgb * 255.0).astype(np.uint8)


def overlay(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour heatmap over a gray slice.

    The heatmap's opacity grows with its value (``alpha * heat``), so regions without
    evidence show the plain slice and the hottest regions show ``alpha`` of the colour.

    Args:
        gray: The slice, ``uint8`` or floats in ``[0, 1]``.
        heat: Heatmap in ``[0, 1]``, same shape; ``NaN`` shows the plain slice.
        alpha: Opacity of the colour at heat 1, in ``[0, 1]``.

    Returns:
        ``uint8`` RGB image.

    Raises:
        ValueError: For different shapes or ``alpha`` outside ``[0, 1]``.

    Shape:
        ``(H, W), (H, W) -> (H, W, 3)``.
    """
    g = np.asarray(gray)
    h = np.asarray(heat, dtype=np.float64)
    if g.ndim != 2 or g.shape != h.shape:
        raise ValueError(
            f"gray and heat must be (H, W) of the same shape, got {g.shape} and {h.shape}"
        )
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    g = g.astype(np.float64) / 255.0 if g.dtype == np.uint8 else np.clip(g, 0.0, 1.0)
    a = alpha * np.clip(np.nan_to_num(h, nan=0.0), 0.0, 1.0)
    color = colorize(h).astype(np.float64) / 255.0
    out = g[..., None] * (1.0 - a[..., None]) + color * a[..., None]
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType
        return ImageFont.load_default()


def _draw_lines(image: PILImage.Image, lines: Sequence[str], corner: str, size: int) -> None:
    """White text on a dark box in the top-left or bottom-left corner."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    font = _font(size)
    pad = max(2, size // 5)
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    heights = [b[3] - b[1] for b in boxes]
    line_h = max([*heights, size]) + pad
    block_h = line_h * len(lines) + pad
    block_w = max(b[2] - b[0] for b in boxes) + 2 * pad
    y0 = 0 if corner == "top" else image.height - block_h
    draw.rectangle((0, y0, min(block_w, image.width) - 1, y0 + block_h - 1), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((pad, y0 + pad + i * line_h), line, fill=(255, 255, 255), font=font)


def _upscale(image: PILImage.Image, min_size: int | None) -> PILImage.Image:
    from PIL import Image

    if not min_size or max(image.size) >= min_size:
        return image
    factor = math.ceil(min_size / max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.BILINEAR)


def contact_sheet(
    images: Sequence[np.ndarray | PILImage.Image],
    columns: int | None = None,
    tile: int = 128,
    captions: Sequence[str] | None = None,
    title: Sequence[str] = (),
) -> PILImage.Image:
    """Lay images out on a grid, each scaled to ``tile`` pixels on its long side.

    Args:
        images: RGB images (``uint8`` arrays ``(H, W, 3)`` or Pillow images).
        columns: Images per row; default ``ceil(sqrt(len(images)))``.
        tile: Long side of each cell in pixels.
        captions: One short text per image, drawn in its bottom-left corner.
        title: Lines written in a band above the grid.

    Returns:
        The sheet as a Pillow RGB image.

    Raises:
        ValueError: If there are no images, or ``columns``/``tile``/``captions`` do not fit.
    """
    from PIL import Image

    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if columns is None:
        columns = math.ceil(math.sqrt(len(images)))
    if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 16:
        raise ValueError(f"tile must be an int >= 16 pixels, got {tile!r}")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"got {len(captions)} captions for {len(images)} images")
    pics = [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in images]
    first = pics[0]
    scale = tile / max(first.size)
    cell = (max(1, round(first.width * scale)), max(1, round(first.height * scale)))
    font_size = max(9, tile // 12)
    header = (font_size + 6) * len(title) + (4 if title else 0)
    rows = math.ceil(len(pics) / columns)
    gap = 2
    sheet = Image.new(
        "RGB",
        (columns * (cell[0] + gap) - gap, header + rows * (cell[1] + gap) - gap),
        (24, 24, 24),
    )
    if title:
        band = Image.new("RGB", (sheet.width, header), (0, 0, 0))
        _draw_lines(band, list(title), "top", font_size)
        sheet.paste(band, (0, 0))
    for i, pic in enumerate(pics):
        thumb = pic.convert("RGB").resize(cell, Image.Resampling.BILINEAR)
        if captions is not None:
            _draw_lines(thumb, [captions[i]], "bottom", font_size)
        r, c = divmod(i, columns)
        sheet.paste(thumb, (c * (cell[0] + gap), header + r * (cell[1] + gap)))
    return sheet


# ----------------------------------------------------------------------------------------------
# One scan


@dataclass
class ScanExplanation:
    """Grad-CAM of one scan, slice by slice.

    Attributes:
        scan: The scan folder (or NIfTI file).
        labels: Class names of the model's outputs.
        probs: The scan's class probabilities (softmax averaged over its volumes, as
            :func:`resnet3d.workflows.predict_scans` computes them).
        volume_probs: Class probabilities of each volume.
        target: Index of the class the heatmaps explain.
        heatmaps: Heatmap of every original slice in ``[0, 1]`` at the model's input size;
            ``NaN`` for slices no volume covers.
        covered: Whether some volume contains the slice.
        slices: The slices as the model saw them (after resizing and windowing), gray
            ``uint8``.
        indices: Slice numbers of each volume (``SliceStacker.volume_indices``).
        layer: The layer the maps come from.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"layercam"``.
        normalize: ``"scan"`` or ``"volume"`` (see :func:`explain_scan`).
        feature_shape: ``(d, h, w)`` of the layer's feature map (the maps' true resolution).
        files: Overlay PNGs written, one per slice, in slice order.
        contact_sheet: The contact sheet PNG, when written.
        summary: The JSON summary, when written.

    Shape:
        ``heatmaps`` and ``slices``: ``(n_slices, H, W)``; ``covered``: ``(n_slices,)``;
        ``volume_probs``: ``(N, num_classes)``; ``indices``: ``(N, D)``.
    """

    scan: Path
    labels: list[str]
    probs: np.ndarray
    volume_probs: np.ndarray
    target: int
    heatmaps: np.ndarray
    covered: np.ndarray
    slices: np.ndarray
    indices: np.ndarray
    layer: str
    method: str
    normalize: str
    feature_shape: tuple[int, int, int]
    files: list[Path] = field(default_factory=list)
    contact_sheet: Path | None = None
    summary: Path | None = None

    @property
    def prediction(self) -> str:
        """The scan's most probable class."""
        return self.labels[int(np.argmax(self.probs))]

    @property
    def target_label(self) -> str:
        """The class the heatmaps explain."""
        return self.labels[self.target]

    @property
    def n_slices(self) -> int:
        """Slices in the scan."""
        return int(self.heatmaps.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no arrays): prediction, probabilities, layer, files."""
        return {
            "scan": os.fspath(self.scan),
            "prediction": self.prediction,
            "probabilities": {k: float(v) for k, v in zip(self.labels, self.probs)},
            "target": self.target_label,
            "method": self.method,
            "layer": self.layer,
            "feature_shape": list(self.feature_shape),
            "normalize": self.normalize,
            "n_slices": self.n_slices,
            "n_volumes": len(self.volume_probs),
            "uncovered_slices": [int(i) for i in np.flatnonzero(~self.covered)],
            "files": [p.name for p in self.files],
            "contact_sheet": None if self.contact_sheet is None else self.contact_sheet.name,
        }


def _gray_u8(prepared: np.ndarray) -> np.ndarray:
    """Prepared slices ``(S, H, W[, C])`` (uint8 or float in [0, 1]) as gray uint8."""
    arr = prepared.astype(np.float32) / 255.0 if prepared.dtype == np.uint8 else prepared
    if arr.ndim == 4:
        arr = arr.mean(axis=-1)
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _clear_stale(out: Path, keep: set[str]) -> None:
    """Remove overlays of an earlier explanation in ``out`` that this one does not rewrite."""
    if not (out / SUMMARY_NAME).is_file():
        return
    for path in out.iterdir():
        if _SLICE_PATTERN.match(path.name) and path.name not in keep and path.is_file():
            path.unlink()


def _save_png(image: PILImage.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    image.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, path)


def explain_scan(
    model: nn.Module,
    scan: str | os.PathLike[str],
    stacker: SliceStacker | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    target: int | str | None = None,
    layer: str = "auto",
    method: str = "gradcam",
    normalize: str = "scan",
    batch_size: int = 8,
    alpha: float = 0.5,
    min_size: int | None = 256,
    tile: int = 128,
    columns: int | None = None,
    progress: bool = False,
) -> ScanExplanation:
    """Grad-CAM of one scan, mapped back to its slices, with one overlay PNG per slice.

    The scan is stacked into volumes as the model's preprocessing spec says (or as
    ``stacker`` says), every volume is classified, the scan's prediction is the mean of the
    volume probabilities, and each volume's Grad-CAM map for the target class is put back on
    the slices it was made of (averaged where volumes overlap, see :func:`slice_heatmaps`).

    With ``out_dir``, writes there: ``slice_0000.png``, ``slice_0001.png``, ... (the slice as
    the model saw it, in gray, the heatmap in colour, the predicted class and probability
    and the slice number written on it), ``contact_sheet.png`` (all slices on one grid under
    a title line) and ``explanation.json`` (the summary). Overlays of an earlier
    explanation in the same folder that this one does not overwrite are removed.

    Args:
        model: The classifier; it is left as it was (see :func:`grad_cam`).
        scan: A folder of slices or a NIfTI file.
        stacker: The volume builder; default the model's (``model.pretrained_cfg``, as
            :func:`resnet3d.workflows.stacker_for` builds it).
        out_dir: Where to write the pictures; ``None`` writes nothing.
        target: The class to explain, index or name; default the scan's predicted class.
        layer: See :func:`grad_cam` (default: :func:`default_layer`).
        method: ``"gradcam"``, ``"gradcam++"`` or ``"layercam"``.
        normalize: ``"scan"`` (default): raw CAM values averaged per slice, then scaled to
            ``[0, 1]`` over the whole scan, so a volume with little evidence stays cold.
            ``"volume"``: every volume's map scaled to ``[0, 1]`` first, so every volume
            shows its own hottest spot.
        batch_size: Volumes per forward/backward pass.
        alpha: Opacity of the heatmap colour at heat 1.
        min_size: Overlays smaller than this (long side, pixels) are upscaled by an integer
            factor so the text stays legible; ``None`` keeps the model's input size.
        tile: Long side of each slice on the contact sheet, in pixels.
        columns: Slices per row on the contact sheet; default about square.
        progress: Show a progress bar over the batches (stderr).

    Returns:
        The per-slice heatmaps, the scan's prediction and the files written.

    Raises:
        FileNotFoundError: If the scan does not exist.
        ValueError: If the scan yields no volume (shorter than the depth with
            ``remainder="drop"``), the model has no preprocessing spec and no ``stacker`` is
            given, or an argument is invalid.
    """
    from .readers import scan_files
    from .volumes import SliceStacker

    check_choice("normalize", normalize, NORMALIZE)
    check_choice("method", method, METHODS)
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if min_size is not None and (
        not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 1
    ):
        raise ValueError(f"min_size must be an int >= 1 or None, got {min_size!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    path = Path(scan)
    if not path.exists():
        raise FileNotFoundError(f"scan not found: {path}")
    if stacker is None:
        from .workflows import stacker_for

        stacker = stacker_for(model)  # type: ignore[arg-type]
    elif not isinstance(stacker, SliceStacker):
        raise TypeError(f"stacker must be a SliceStacker, got {type(stacker).__name__}")

    files = scan_files(path)
    prepared = stacker.read(files)
    n_slices = len(prepared)
    indices = stacker.volume_indices(n_slices)
    if len(indices) == 0:
        raise ValueError(
            f"{path}: {n_slices} slices give no volume of depth {stacker.depth} "
            f"(remainder={stacker.remainder!r}); use a stacker with remainder='pad'"
        )
    volumes = torch.from_numpy(stacker.stack_prepared(prepared, indices))
    gray = _gray_u8(prepared)
    del prepared

    labels: list[str] | None = None
    volume_probs: Tensor | None = None
    cam_target: Any = target
    if target is None:
        # The scan's class decides what to explain, so the scan must be classified first;
        # a no-grad pass is a fraction of the cost of the Grad-CAM pass.
        volume_probs = _predict(model, volumes, batch_size)
        labels = _labels_of(model, int(volume_probs.shape[1]))
        cam_target = int(volume_probs.mean(dim=0).argmax())

    from tqdm.auto import tqdm

    cams: list[CamResult] = []
    starts = range(0, len(volumes), batch_size)
    for start in tqdm(starts, desc="grad-cam", unit="batch", disable=not progress):
        cams.append(
            grad_cam(
                model,
                volumes[start : start + batch_size],
                target=cam_target,
                layer=layer,
                method=method,
                batch_size=batch_size,
                normalize=normalize == "volume",
            )
        )
    cam = cams[0]
    probs_all = volume_probs if volume_probs is not None else torch.cat([c.probs for c in cams])
    if labels is None:
        labels = _labels_of(model, int(probs_all.shape[1]))
    target_index = int(cam.targets[0])

    heat, covered = slice_heatmaps(torch.cat([c.heatmaps for c in cams]), indices, n_slices)
    if covered.any() and not np.any(heat[covered] > 0):
        # Grad-CAM's ReLU zeroes a map whose weighted features all speak against the class;
        # a blank picture without a word would look like a bug.
        logger.warning(
            "%s: the %s map of class %d at %s is zero everywhere (no positive evidence at "
            "that layer); try method='layercam' or another layer",
            path,
            method,
            int(cams[0].targets[0]),
            cams[0].layer,
        )
    if normalize == "scan" and covered.any():
        values = heat[covered]
        low, high = float(values.min()), float(values.max())
        heat[covered] = (values - low) / (high - low) if high > low else 0.0

    scan_probs = probs_all.double().mean(dim=0).numpy()
    result = ScanExplanation(
        scan=path,
        labels=labels,
        probs=scan_probs,
        volume_probs=probs_all.numpy(),
        target=target_index,
        heatmaps=heat,
        covered=covered,
        slices=gray,
        indices=indices,
        layer=cam.layer,
        method=method,
        normalize=normalize,
        feature_shape=cam.feature_shape,
    )
    if out_dir is not None:
        _write_pictures(result, Path(out_dir), alpha, min_size, tile, columns)
    return result


@torch.no_grad()
def _predict(model: nn.Module, volumes: Tensor, batch_size: int) -> Tensor:
    """Softmax probabilities of volumes, in eval mode, restoring the training flags."""
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    training = {m: m.training for m in model.modules()}
    out = []
    try:
        model.eval()
        for start in range(0, len(volumes), batch_size):
            x = volumes[start : start + batch_size].to(device)
            x = x.to(dtype).div_(255.0) if x.dtype == torch.uint8 else x.to(dtype)
            out.append(torch.softmax(model(x).float(), dim=1).cpu())
    finally:
        for mod, flag in training.items():
            mod.training = flag
    return torch.cat(out)


def _write_pictures(
    result: ScanExplanation,
    out: Path,
    alpha: float,
    min_size: int | None,
    tile: int,
    columns: int | None,
) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    n = result.n_slices
    digits = max(4, len(str(n - 1)))
    names = [f"slice_{i:0{digits}d}.png" for i in range(n)]
    _clear_stale(out, set(names))
    prob = float(result.probs[int(np.argmax(result.probs))])
    head = f"{result.prediction} {prob:.2f}"
    if result.target_label != result.prediction:
        head += f" | map: {result.target_label}"
    pictures = []
    for i in range(n):
        rgb = overlay(result.slices[i], result.heatmaps[i], alpha)
        image = _upscale(Image.fromarray(rgb), min_size)
        size = max(10, max(image.size) // 18)
        _draw_lines(image, [head], "top", size)
        foot = f"slice {i}/{n - 1}" + ("" if result.covered[i] else " (not covered)")
        _draw_lines(image, [foot], "bottom", size)
        _save_png(image, out / names[i])
        result.files.append(out / names[i])
        pictures.append(overlay(result.slices[i], result.heatmaps[i], alpha))
    probs = "  ".join(f"{k} {v:.2f}" for k, v in zip(result.labels, result.probs))
    title = [
        f"{result.scan.name}: {result.prediction} ({probs})",
        f"{result.method} of {result.target_label} at {result.layer}, {n} slices",
    ]
    sheet = contact_sheet(
        pictures, columns=columns, tile=tile, captions=[str(i) for i in range(n)], title=title
    )
    result.contact_sheet = out / "contact_sheet.png"
    _save_png(sheet, result.contact_sheet)
    result.summary = out / SUMMARY_NAME
    tmp = out / f".{SUMMARY_NAME}.partial"
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    os.replace(tmp, result.summary)
    logger.info("wrote %d overlays and %s to %s", n, result.contact_sheet.name, out)


# ----------------------------------------------------------------------------------------------
# Scoring against a mask


@dataclass(frozen=True)
class MaskOverlap:
    """How much of a heatmap falls inside a ground-truth mask, against chance.

    Attributes:
        hit_rate: Fraction of the ``top`` hottest voxels of the region that lie in the mask.
        energy: Fraction of the heatmap's total (within the region) that lies in the mask.
        chance: The mask's share of the region: the expected ``hit_rate`` and ``energy`` of
            a random map of the same area.
        n_top: How many voxels counted as hottest.
    """

    hit_rate: float
    energy: float
    chance: float
    n_top: int

    @property
    def lift(self) -> float:
        """``hit_rate / chance``: times better than a random map (``inf`` when chance is 0)."""
        return self.hit_rate / self.chance if self.chance > 0 else math.inf


def mask_overlap(
    heatmap: np.ndarray | Tensor,
    mask: np.ndarray,
    region: np.ndarray | None = None,
    top: float = 0.1,
) -> MaskOverlap:
    """Score a heatmap against a mask: the hottest voxels' share in the mask vs chance.

    Of the voxels in ``region`` (e.g. the lungs; default everywhere) the fraction ``top``
    with the highest heat is taken; ``hit_rate`` is how many of them lie in ``mask``. A map
    with no relation to the mask scores ``chance`` (the mask's share of the region) on
    average. Voxels tied at the threshold count fractionally, so a constant map (e.g. an
    all-zero Grad-CAM map) scores exactly ``chance``. ``NaN`` voxels are left out of the
    region.

    Args:
        heatmap: Any non-negative map.
        mask: Ground truth, boolean, same shape.
        region: Where to look, boolean, same shape; default the whole map.
        top: Fraction of the region's voxels counted as hottest, in ``(0, 1]``.

    Returns:
        The :class:`MaskOverlap`.

    Raises:
        ValueError: For different shapes, an empty region, a mask empty within the region, or
            ``top`` outside ``(0, 1]``.
    """
    heat = heatmap.detach().cpu().numpy() if isinstance(heatmap, Tensor) else np.asarray(heatmap)
    heat = heat.astype(np.float64)
    m = np.asarray(mask, dtype=bool)
    if heat.shape != m.shape:
        raise ValueError(f"heatmap {heat.shape} and mask {m.shape} must have the same shape")
    r = np.ones_like(m) if region is None else np.asarray(region, dtype=bool)
    if r.shape != m.shape:
        raise ValueError(f"region {r.shape} and mask {m.shape} must have the same shape")
    if not (isinstance(top, (int, float)) and 0.0 < top <= 1.0):
        raise ValueError(f"top must be a fraction in (0, 1], got {top!r}")
    r = r & ~np.isnan(heat)
    values, inside = heat[r], m[r]
    if values.size == 0:
        raise ValueError("the region is empty (or all NaN): nothing to score")
    if not inside.any():
        raise ValueError("the mask has no voxel inside the region: nothing to find")
    k = max(1, round(top * values.size))
    threshold = np.partition(values, values.size - k)[values.size - k]  # k-th largest
    above = values > threshold
    tied = values == threshold
    # Voxels tied at the threshold share the remaining places: each counts with the
    # fraction of them that fits. An all-equal map (e.g. a Grad-CAM map that the ReLU
    # zeroed everywhere) then scores exactly chance instead of whatever position wins.
    hits = inside[above].sum() + (k - above.sum()) * inside[tied].mean()
    total = values.sum()
    return MaskOverlap(
        hit_rate=float(hits / k),
        energy=float(values[inside].sum() / total) if total > 0 else 0.0,
        chance=float(inside.mean()),
        n_top=int(k),
    )
