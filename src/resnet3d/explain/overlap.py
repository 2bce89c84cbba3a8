"""Scoring a heatmap against a ground-truth mask, against a random map of the same area."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor


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
