"""Per-volume heatmaps back on the scan's original slices."""

from __future__ import annotations

import numpy as np
from torch import Tensor


def slice_heatmaps(
    heatmaps: Tensor | np.ndarray, indices: np.ndarray, n_slices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map per-volume heatmaps back to the scan's slices, averaging where volumes overlap.

    Row ``i`` of ``indices`` gives the slice number of each depth position of volume ``i``
    (:meth:`~resnet3d.data.volumes.SliceStacker.volume_indices`). Padding is not a slice: positions
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
