"""Occlusion sensitivity of 3D volumes: how much the class score drops when a window is hidden.

Zeiler and Fergus (ECCV 2014) slide a gray patch over the image and record how far the class
score falls. Unlike a class activation map this measures the model directly, by changing its
input, so it cannot be fooled by gradients that average out across a layer (on the demo's
phantom model, Grad-CAM misses the ground-glass opacities that occlusion finds; see
docs/explain.md). The price is one forward pass per window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .._utils import check_choice
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

FILLS: tuple[str, ...] = ("mean", "zero")
"""What :func:`occlusion` puts in a hidden window: the volume's mean per channel, or zeros."""

_WINDOWS = (2, 4, 4)
"""The default window is half the depth and a quarter of the slice, moved by half a window:
3 x 7 x 7 = 147 passes for a depth-4 volume at any slice size. On the demo's phantom model it
found the lesions better than whole-depth windows of 1/8 of the slice (225 passes; see
docs/explain.md)."""


def _default_window(size: tuple[int, int, int]) -> tuple[int, int, int]:
    d, h, w = (math.ceil(s / k) for s, k in zip(size, _WINDOWS))
    return (d, h, w)


def _default_stride(
    window: tuple[int, int, int], size: tuple[int, int, int]
) -> tuple[int, int, int]:
    # Half a window, so every voxel is seen by about two windows per axis; one step where the
    # window spans the whole axis.
    d, h, w = (max(1, k // 2) if k < n else k for k, n in zip(window, size))
    return (d, h, w)


def _triple(value: Any, name: str, depth: int) -> tuple[int, int, int]:
    """``(d, h, w)`` from an int (in-plane; ``depth`` in depth) or three ints, all >= 1."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or three ints (d, h, w), got {value!r}")
    if isinstance(value, int):
        value = (depth, value, value)
    if (
        not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be an int or three ints (d, h, w), got {value!r}")
    if any(v < 1 for v in value):
        raise ValueError(f"{name} must be >= 1 voxel along every axis, got {tuple(value)}")
    return (value[0], value[1], value[2])


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, with the last window flush at the end
    so that every voxel is covered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _fill_value(volume: Tensor, fill: str | float) -> Tensor:
    """What a hidden window holds, per channel ``(C, 1, 1, 1)``: the volume's mean, or a
    constant."""
    if fill == "mean":
        return volume.mean(dim=(1, 2, 3), keepdim=True)
    return torch.full_like(volume[:, :1, :1, :1], 0.0 if fill == "zero" else float(fill))


def occlusion(
    model: nn.Module,
    volumes: Tensor | Any,
    target: int | str | Sequence[int | str] | Tensor | None = None,
    *,
    patch: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    fill: str | float = "mean",
    batch_size: int = 32,
    normalize: bool = True,
    progress: bool = False,
) -> CamResult:
    """Occlusion sensitivity maps of volumes, at the input's ``D x H x W``.

    A window (``patch``) slides over each volume in steps of ``stride``; for every position
    the window is filled (``fill``) and the drop of the target class's logit is recorded.
    Each voxel's value is the mean drop over the windows that cover it, clipped at zero: how
    much hiding that region takes away from the class. Runs without gradients, in eval mode,
    on the device the model's parameters are on; every module's ``training`` flag is
    restored afterwards.

    Cost: one forward pass per window and volume, plus one. With the defaults (half the depth
    and a quarter of the slice, moved by half a window) that is ``3 x 7 x 7 = 147`` passes
    for a depth-4 volume, whatever the slice size.

    Args:
        model: A classifier returning logits ``(N, num_classes)``.
        volumes: Input volumes; ``uint8`` input is scaled to ``[0, 1]`` as in training.
        target: The class to explain: ``None`` for each volume's predicted class, one class
            index or name for all volumes, or one per volume (as in
            :func:`~resnet3d.explain.grad_cam`).
        patch: Window size ``(d, h, w)``, clipped to the volume, or an int ``p`` for
            ``p x p`` in-plane with the default depth. Default: ``ceil(D / 2)`` slices and
            ``ceil(H / 4) x ceil(W / 4)`` pixels.
        stride: Step between windows ``(d, h, w)``, or an int for the in-plane axes with the
            default depth step. Default: half the window (at least 1; one step along an axis
            the window spans). The last window along each axis is moved flush with the end,
            so every voxel is covered.
        fill: ``"mean"`` (each volume's mean per channel: a flat gray that removes structure
            without adding an edge of extreme intensity), ``"zero"``, or a number in the
            model's input scale.
        batch_size: Occluded copies per forward pass.
        normalize: Scale each volume's map to ``[0, 1]`` (min-max). Without it the maps are
            raw logit drops, comparable across volumes.
        progress: Show a progress bar over the forward passes (stderr).

    Returns:
        The maps with the targets and probabilities; ``layer`` is ``"input"``,
        ``method`` is ``"occlusion"`` and ``feature_shape`` is the grid of window positions.

    Raises:
        TypeError: For volumes, a target, patch or stride of the wrong type.
        ValueError: For a bad shape, a target out of range, a window or stride < 1, an
            unknown fill (with the closest name) or ``batch_size`` < 1.

    Shape:
        ``volumes``: ``(N, C, D, H, W)``; ``heatmaps``: ``(N, D, H, W)``.

    Example:
        >>> model = resnet3d.create_model("resnet18", num_classes=3).eval()
        >>> occ = occlusion(model, torch.rand(1, 3, 4, 32, 32))
        >>> occ.heatmaps.shape, occ.feature_shape
        (torch.Size([1, 4, 32, 32]), (3, 7, 7))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(fill, str):
        check_choice("fill", fill, FILLS)
    elif isinstance(fill, bool) or not isinstance(fill, (int, float)) or not math.isfinite(fill):
        raise TypeError(f"fill must be one of {list(FILLS)} or a finite number, got {fill!r}")
    vols = _as_volumes(volumes)
    n, _, depth, height, width = vols.shape
    size = (int(depth), int(height), int(width))
    default = _default_window(size)
    asked = default if patch is None else _triple(patch, "patch", default[0])
    window = (min(asked[0], size[0]), min(asked[1], size[1]), min(asked[2], size[2]))
    steps = _default_stride(window, size)
    step = steps if stride is None else _triple(stride, "stride", steps[0])
    grid = [_starts(s, w, t) for s, w, t in zip(size, window, step)]
    # The (D, H, W) index of every window, the same for every volume.
    regions = [
        (slice(a, a + window[0]), slice(b, b + window[1]), slice(c, c + window[2]))
        for a in grid[0]
        for b in grid[1]
        for c in grid[2]
    ]

    device, dtype = _device_and_dtype(model)
    from tqdm.auto import tqdm

    maps: list[Tensor] = []
    targets: list[Tensor] = []
    probs: list[Tensor] = []
    wanted = None
    bar = tqdm(total=n * (len(regions) + 1), desc="occlusion", unit="pass", disable=not progress)
    with bar, _evaluating(model), torch.no_grad():
        for i in range(n):
            x = _model_input(vols[i : i + 1], device, dtype)
            logits = model(x).float()
            bar.update(1)
            if wanted is None:
                wanted = _resolve_targets(target, n, _labels_of(model, int(logits.shape[1])))
            y = int(logits.argmax(dim=1)) if wanted is None else int(wanted[i])
            value = _fill_value(x[0], fill)
            total = torch.zeros(size, dtype=torch.float32, device=device)
            count = torch.zeros(size, dtype=torch.float32, device=device)
            for start in range(0, len(regions), batch_size):
                chunk = regions[start : start + batch_size]
                batch = x.expand(len(chunk), *x.shape[1:]).clone()
                for k, (d, h, w) in enumerate(chunk):
                    batch[k, :, d, h, w] = value
                drops = logits[0, y] - model(batch).float()[:, y]
                for drop, region in zip(drops, chunk):
                    total[region] += drop
                    count[region] += 1.0
                bar.update(len(chunk))
            heat = (total / count).clamp_min_(0.0)[None]
            maps.append((_minmax(heat) if normalize else heat).cpu())
            targets.append(torch.tensor([y]))
            probs.append(torch.softmax(logits, dim=1).cpu())
    return CamResult(
        heatmaps=torch.cat(maps),
        targets=torch.cat(targets),
        probs=torch.cat(probs),
        layer="input",
        method="occlusion",
        feature_shape=(len(grid[0]), len(grid[1]), len(grid[2])),
    )
