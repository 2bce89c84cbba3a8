"""A synthetic chest-CT phantom: CC-CCII-shaped data for smoke tests, demos and explanations.

The phantom draws, in Hounsfield units (HU), a chest that looks like an axial CT series: a body
outline (soft tissue with a fat rim), two lungs whose outline changes smoothly from the apex to
the diaphragm domes, the heart, trachea and bronchi, branching vessels, spine, sternum and ribs,
and Gaussian noise. Each class adds its own 3D finding:

* ``"NCP"`` (COVID-19): several bilateral, peripheral (subpleural) ground-glass opacities,
  soft blobs of -550 to -300 HU, spread over the lung's whole height.
* ``"CP"`` (common pneumonia): a dense lobar consolidation (-60 to +40 HU) filling part of one
  lobe of one lung, with air bronchograms and, where the lobe leaves slices uncovered, one or
  two smaller patches of consolidation in the same lung.
* ``"Normal"``: no finding.

The HU volume is mapped through a lung window (center -600, width 1500) to 8-bit gray slices,
which :func:`write_dataset` stores as PNGs in the CC-CCII layout. Everything is drawn from
``numpy.random.Generator(PCG64(...))`` streams derived from one seed with only exactly rounded
arithmetic (no ``exp``/``sin`` on arrays), so a seed gives the same pixels on any machine with
the same NumPy version. (Two caveats: NumPy may change its random streams across versions, and
its normal sampler, used for the noise, calls the platform's ``exp``/``log`` on rare draws.)

This is a toy for smoke tests and demos. It is not a model of real anatomy or disease and no
result obtained on it says anything about CT data.

Slices run from the lung apex (index 0) to below the diaphragm; axes are ``(D, H, W)`` with the
patient's anterior at the top of each slice and the patient's right on the image's left (the
radiological convention).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._utils import atomic_open, check_choice, did_you_mean
from ..constants import CCII_CLASSES, CCII_CSV_COLUMNS

__all__ = [
    "CLASSES",
    "CSV_COLUMNS",
    "CSV_NAME",
    "LUNG_WINDOW",
    "MARKER_NAME",
    "MASKS_DIR",
    "MASK_SUFFIX",
    "PhantomScan",
    "generate_scan",
    "lesion_mask_path",
    "load_lesion_mask",
    "load_lung_mask",
    "patient_seed",
    "write_dataset",
]

logger = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = CCII_CLASSES
"""The class folder names of CC-CCII, in the order the phantom assigns patients to them."""

LUNG_WINDOW: tuple[float, float] = (-600.0, 1500.0)
"""The default ``(center, width)`` window in HU that maps the phantom to 8-bit slices."""

CSV_NAME = "unzip_filenames.csv"
CSV_COLUMNS: tuple[str, ...] = CCII_CSV_COLUMNS
MARKER_NAME = "phantom.json"
"""The file that marks a folder as written by :func:`write_dataset` (and records its settings)."""
MASKS_DIR = ".masks"
"""The folder under ``OUT`` that holds the masks, in a tree mirroring the scans' (see
:func:`lesion_mask_path`). A dot-folder, so a shell glob over the scan folders (``OUT/CP/5/*``)
and every scan lister skip it."""
MASK_SUFFIX = ".mask.npz"
"""A scan's masks are ``OUT/.masks/<class>/<patient_id>/<scan_id>.mask.npz``."""

MIN_SIZE = 32
MAX_SIZE = 1024
MAX_SLICES = 1000
MAX_SCANS_PER_PATIENT = 99  # scan ids are patient_id * 100 + scan index

# Hounsfield units of the tissues the phantom draws.
_HU_AIR = -1000.0
_HU_FAT = -100.0
_HU_SOFT = 40.0
_HU_BONE = 450.0
_HU_CORTEX = 800.0
_HU_AIRWAY_WALL = 0.0
_HU_TABLE = 100.0


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous: compare fields yourself
class PhantomScan:
    """One synthetic CT scan.

    Attributes:
        label: The class, one of :data:`CLASSES`.
        slices: The lung-windowed slices, ``uint8``.
        hu: The Hounsfield-unit volume before windowing (``float32``), or ``None`` when not kept.
        lesion_mask: Where the finding is (lung voxels at least half-way to the finding's
            density); all ``False`` for ``"Normal"``.
        lung_mask: The lung voxels (parenchyma, including findings and vessels inside the lungs).
        seed: The patient seed the scan was drawn from.
        scan: The scan's index within the patient.
        window: The ``(center, width)`` window that mapped ``hu`` to ``slices``.

    Shape:
        ``slices``, ``hu``, ``lesion_mask`` and ``lung_mask``: ``(D, H, W)``, slice 0 at the
        lung apex.
    """

    label: str
    slices: npt.NDArray[np.uint8]
    hu: npt.NDArray[np.float32] | None
    lesion_mask: npt.NDArray[np.bool_]
    lung_mask: npt.NDArray[np.bool_]
    seed: int
    scan: int
    window: tuple[float, float] = LUNG_WINDOW

    @property
    def n_slices(self) -> int:
        """The number of slices ``D``."""
        return int(self.slices.shape[0])


# ----------------------------------------------------------------------------------------------
# Random streams


def _rng(seed: int, *key: int) -> np.random.Generator:
    # One independent stream per (seed, key): adding patients or scans never shifts the draws of
    # the ones before them.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def patient_seed(seed: int, patient_index: int) -> int:
    """The seed of patient ``patient_index`` in a data set written with master seed ``seed``.

    ``generate_scan(label, patient_seed(seed, p), ..., scan=s)`` reproduces scan ``s`` of the
    ``p``-th patient (0-based) that :func:`write_dataset` writes.

    Args:
        seed: The data set's master seed (an int >= 0).
        patient_index: The patient's 0-based position in generation order.

    Returns:
        A 63-bit non-negative int.

    Raises:
        TypeError: If an argument is not an int.
        ValueError: If an argument is negative.
    """
    _check_int("seed", seed, 0)
    _check_int("patient_index", patient_index, 0)
    state = np.random.SeedSequence(seed, spawn_key=(patient_index, 0)).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


# ----------------------------------------------------------------------------------------------
# Patient-level anatomy and findings (patient coordinates: x, y in [-1, 1] of the field of view,
# z normalised so that 0 is the lung apex and 1 the deepest costophrenic recess)


@dataclass(frozen=True)
class _Blob:
    side: int  # -1: patient's right lung (image left), +1: patient's left lung
    u: float  # center in lung-normalised coordinates (1 = the lung outline at that z)
    v: float
    z: float
    a: float  # unit direction from the lung's axis toward the center (lung-normalised)
    b: float
    rn: float  # radius along that direction (toward the pleura), field-of-view units
    rt: float  # radius along the pleura, field-of-view units
    rz: float  # radius in normalised z units
    hu: float


@dataclass(frozen=True)
class _Consolidation:
    side: int
    lobe: str  # "lower", "upper" or "middle"
    v: float  # ellipsoid center, lung-normalised
    z: float
    ru: float
    rv: float
    rz: float
    hu: float


@dataclass(frozen=True)
class _Patient:
    body_rx: float
    body_ry: float
    body_cy: float
    fat: float
    lung_cx: float
    lung_cy: float
    lung_rx: tuple[float, float]  # (right, left)
    lung_ry: tuple[float, float]
    apex_rise: float
    heart: tuple[float, float, float, float, float, float]  # cx, cy, rx, ry, z center, z half
    dome: tuple[tuple[float, float], tuple[float, float]]  # (base z, height) right, left
    lz: float  # physical height of the lungs in field-of-view units
    parenchyma: float
    rib_z0: float
    rib_spacing: float
    rib_slope: float
    vessels: npt.NDArray[np.float64]  # (n, 8): x0 y0 z0 x1 y1 z1 r0 r1, z in physical units
    airways_central: npt.NDArray[np.float64]
    airways_lobar: npt.NDArray[np.float64]
    blobs: tuple[_Blob, ...]
    consolidation: _Consolidation | None

    def lung_profile(self, z: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Relative lung radius at normalised height z: a rounded apex, then full width."""
        u = np.clip(z / self.apex_rise, 0.0, 1.0)
        return np.sqrt(u * (2.0 - u))

    def lung_center_y(self, z: npt.NDArray[Any]) -> npt.NDArray[Any]:
        # The apices sit a little posterior.
        u = np.clip(z / self.apex_rise, 0.0, 1.0)
        return self.lung_cy + 0.08 * (1.0 - u)


def _unit2(rng: np.random.Generator) -> tuple[float, float]:
    # A random 2D direction without trigonometry (exactly rounded ops only).
    while True:
        a, b = rng.standard_normal(2).tolist()
        n = float(np.sqrt(a * a + b * b))
        if n > 1e-6:
            return a / n, b / n


def _make_patient(seed: int, label: str, lesion_scale: float = 1.0) -> _Patient:
    rng = _rng(seed, 0)
    u = rng.uniform
    body_rx, body_ry = u(0.82, 0.9), u(0.56, 0.63)
    lung_cx = u(0.40, 0.44)
    lung_rx_r = u(0.28, 0.32)
    lung_ry_r = u(0.41, 0.47)
    # The left lung is a little smaller: the heart takes room on the left.
    lung_rx = (lung_rx_r, lung_rx_r * u(0.9, 0.98))
    lung_ry = (lung_ry_r, lung_ry_r * u(0.94, 1.0))
    body_cy = u(0.0, 0.06)
    fat = u(0.03, 0.08)
    lung_cy = u(0.0, 0.05)
    apex_rise = u(0.25, 0.38)
    heart = (u(0.06, 0.12), u(-0.16, -0.08), u(0.24, 0.30), u(0.19, 0.24), u(0.68, 0.76), 0.3)
    dome = ((u(0.95, 0.99), u(0.28, 0.36)), (u(0.98, 1.0), u(0.22, 0.3)))
    lz = u(1.2, 1.45)
    parenchyma = u(-880.0, -830.0)
    ribs = (u(-0.05, 0.02), u(0.085, 0.1), u(0.12, 0.2))

    def lung_point(side: int, rho_min: float) -> tuple[float, float, float]:
        # A random point of one lung (patient coordinates, physical z) between rho_min and 0.95
        # of the way from the lung's axis to its outline, with the apex profile of
        # _Patient.lung_profile.
        z = u(0.06, 0.94)
        t = min(z / apex_rise, 1.0)
        w = float(np.sqrt(t * (2.0 - t)))
        a, b = _unit2(rng)
        rho = float(np.sqrt(u(rho_min**2, 0.95**2)))
        k = 0 if side < 0 else 1
        cy = lung_cy + 0.08 * (1.0 - t)
        x = side * lung_cx + lung_rx[k] * w * rho * a
        y = cy + lung_ry[k] * w * rho * b
        return x, y, z * lz

    def grow(
        root: tuple[float, float, float],
        radius: float,
        side: int,
        depth: int,
        first_children: int,
        reach: tuple[float, float],
    ) -> list[list[float]]:
        # Each generation grows part of the way toward a random point of the lung; later
        # generations aim further out and go further, so the finest branches reach the
        # periphery instead of clustering at the hilum.
        segments: list[list[float]] = []
        nodes = [(root, radius)]
        for generation in range(depth):
            children = first_children if generation == 0 else 2
            progress = generation / max(depth - 1, 1)
            next_nodes = []
            for (px, py, pz), r in nodes:
                for _ in range(children):
                    tx, ty, tz = lung_point(side, 0.3 + 0.5 * progress)
                    f = reach[0] + (reach[1] - reach[0]) * progress + u(-0.08, 0.08)
                    end = (px + f * (tx - px), py + f * (ty - py), pz + f * (tz - pz))
                    r_end = r * 0.85
                    segments.append([px, py, pz, *end, r, r_end])
                    next_nodes.append((end, r * 0.78))
            nodes = next_nodes
        return segments

    carina = (0.0, -0.06, 0.36 * lz)
    central: list[list[float]] = [[0.0, -0.1, -0.3 * lz, *carina, 0.055, 0.05]]
    vessels: list[list[float]] = []
    lobar: list[list[float]] = []
    for side in (-1, 1):
        hilum_b = (side * 0.2, -0.02, (0.56 if side > 0 else 0.52) * lz)
        central.append([*carina, *hilum_b, 0.036, 0.03])
        lobar += grow(hilum_b, 0.024, side, 3, 3, (0.35, 0.5))
        hilum_v = (side * 0.19, 0.02, 0.55 * lz)
        vessels += grow(hilum_v, 0.028, side, 5, 2, (0.35, 0.8))

    frng = _rng(seed, 1)  # findings: a separate stream, so anatomy does not depend on the label
    blobs: list[_Blob] = []
    consolidation: _Consolidation | None = None
    if label == "NCP":
        n = int(frng.integers(5, 10))
        sides = [-1, 1] * (n // 2) + ([int(frng.choice([-1, 1]))] if n % 2 else [])
        frng.shuffle(sides)
        lo, hi = 0.12, 0.92
        for i, side in enumerate(sides):
            # Stratified heights: the opacities cover the lung from apex to base, so that most
            # short stacks of consecutive slices of a sick scan show part of one.
            zc = lo + (hi - lo) * (i + frng.uniform(0.15, 0.85)) / n
            a, b = _unit2(frng)
            # Peripheral: on the lateral half of the lung, centered just inside the outline and
            # flattened along it, so the opacity is a subpleural band that the lung mask cuts
            # flat at the pleura.
            a = side * abs(a)
            for lobule in range(int(frng.integers(1, 3))):  # 1-2 lobules per opacity
                if lobule:  # the second lobule sits beside the first, along the pleura
                    turn = frng.uniform(0.25, 0.5) * float(frng.choice([-1.0, 1.0]))
                    a, b = a - turn * b, b + turn * a
                    norm = float(np.sqrt(a * a + b * b))
                    a, b = a / norm, b / norm
                rho = frng.uniform(0.84, 0.94)
                blobs.append(
                    _Blob(
                        side=side,
                        u=rho * a,
                        v=rho * b,
                        z=zc + frng.uniform(-0.03, 0.03),
                        a=a,
                        b=b,
                        rn=frng.uniform(0.08, 0.14) * lesion_scale,
                        rt=frng.uniform(0.12, 0.22) * lesion_scale,
                        rz=frng.uniform(0.1, 0.17),
                        hu=frng.uniform(-550.0, -300.0),
                    )
                )
    elif label == "CP":
        side = int(frng.choice([-1, 1], p=[0.6, 0.4]))  # right-sided pneumonia is more common
        lobes = ["lower", "upper", "middle"] if side < 0 else ["lower", "upper"]
        probs = [0.55, 0.3, 0.15] if side < 0 else [0.6, 0.4]
        lobe = str(frng.choice(lobes, p=probs))
        zc = {"lower": 0.68, "upper": 0.35, "middle": 0.72}[lobe] + frng.uniform(-0.05, 0.05)
        vc = {"lower": 0.35, "upper": -0.3, "middle": -0.5}[lobe] + frng.uniform(-0.1, 0.1)
        consolidation = _Consolidation(
            side=side,
            lobe=lobe,
            v=vc,
            z=zc,
            ru=frng.uniform(0.9, 1.3),
            rv=frng.uniform(0.8, 1.2),
            rz=frng.uniform(0.4, 0.5),
            hu=frng.uniform(-60.0, 40.0),
        )
        # Patches of consolidation in the same lung where the lobe leaves slices uncovered.
        covered = (zc - 0.5 * consolidation.rz, zc + 0.6 * consolidation.rz)
        gaps = [(0.1, covered[0]), (covered[1], 0.92)]
        for g0, g1 in gaps:
            if g1 - g0 < 0.08:
                continue
            for _ in range(1 + int(g1 - g0 > 0.3)):
                a, b = _unit2(frng)
                a = side * abs(a)
                radius = frng.uniform(0.1, 0.16)
                blobs.append(
                    _Blob(
                        side=side,
                        u=0.55 * a,
                        v=0.55 * b,
                        z=frng.uniform(g0, g1),
                        a=a,
                        b=b,
                        rn=radius * lesion_scale,
                        rt=radius * lesion_scale,
                        rz=max(0.5 * (g1 - g0), 0.1),
                        hu=frng.uniform(-120.0, 0.0),
                    )
                )
    return _Patient(
        body_rx=body_rx,
        body_ry=body_ry,
        body_cy=body_cy,
        fat=fat,
        lung_cx=lung_cx,
        lung_cy=lung_cy,
        lung_rx=lung_rx,
        lung_ry=lung_ry,
        apex_rise=apex_rise,
        heart=heart,
        dome=dome,
        lz=lz,
        parenchyma=parenchyma,
        rib_z0=ribs[0],
        rib_spacing=ribs[1],
        rib_slope=ribs[2],
        vessels=np.asarray(vessels, dtype=np.float64),
        airways_central=np.asarray(central, dtype=np.float64),
        airways_lobar=np.asarray(lobar, dtype=np.float64),
        blobs=tuple(blobs),
        consolidation=consolidation,
    )


# ----------------------------------------------------------------------------------------------
# Rendering


def _clip01(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # In-place clip to [0, 1] with bare ufuncs: np.clip's Python wrapper costs more than the
    # work on the small arrays this module clips a few thousand times per scan.
    np.maximum(x, 0.0, out=x)
    np.minimum(x, 1.0, out=x)
    return x


def _smooth(t: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # Smoothstep on [0, 1]: a soft edge from a polynomial, exactly reproducible (no exp).
    t = _clip01(np.array(t, dtype=np.float32))
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class _Grid:
    xs: npt.NDArray[np.float32]  # (W,) patient x of each column
    ys: npt.NDArray[np.float32]  # (H,) patient y of each row
    zn: npt.NDArray[np.float32]  # (D,) normalised z of each slice
    zp: npt.NDArray[np.float32]  # (D,) physical z of each slice
    px: float  # pixel size in patient units

    @property
    def Y(self) -> npt.NDArray[np.float32]:
        return self.ys[None, :, None]

    @property
    def Z(self) -> npt.NDArray[np.float32]:
        return self.zn[:, None, None]


def _span(axis: npt.NDArray[np.float32], lo: float, hi: float) -> tuple[int, int]:
    """Index range ``[i0, i1)`` of the samples of an increasing, evenly spaced axis in [lo, hi]."""
    n = len(axis)
    first = float(axis[0])
    step = float(axis[1]) - first if n > 1 else 1.0
    # Plain float arithmetic instead of searchsorted: this runs a few hundred times per scan.
    i0 = max(0, math.ceil((lo - first) / step - 1e-6))
    i1 = min(n, math.floor((hi - first) / step + 1e-6) + 1)
    return i0, i1


def _draw_tubes(
    hu: npt.NDArray[np.float32],
    segments: npt.NDArray[np.float64],
    layers: Sequence[tuple[float, float]],
    grid: _Grid,
    *,
    restrict: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Blend tapered 3D capsules into ``hu``.

    ``segments`` rows are ``x0 y0 z0 x1 y1 z1 r0 r1`` (patient x, y, physical z); ``layers``
    are ``(hu, widen)`` pairs drawn in order with the radius grown by ``widen`` (an airway is
    its wall, then its lumen), sharing one distance computation.
    """
    px = grid.px
    # Each slice stands for a slab of tissue, not a plane: a vessel counts as in the slice when
    # it passes within ``half`` of the slice's center (so oblique vessels show as short lines,
    # as on real 5-10 mm slices, instead of vanishing between planes).
    half = 0.35 * float(grid.zp[-1] - grid.zp[0]) / max(len(grid.zp) - 1, 1)
    grow = max(widen for _, widen in layers)
    for x0, y0, z0, x1, y1, z1, r0, r1 in segments.tolist():
        pad = max(r0, r1) + grow + px
        # Only the bounding box of the capsule is touched, which keeps a few hundred small
        # vessels cheap.
        k0, k1 = _span(grid.zp, min(z0, z1) - pad - half, max(z0, z1) + pad + half)
        i0, i1 = _span(grid.ys, min(y0, y1) - pad, max(y0, y1) + pad)
        j0, j1 = _span(grid.xs, min(x0, x1) - pad, max(x0, x1) + pad)
        if k0 >= k1 or i0 >= i1 or j0 >= j1:
            continue
        zz = grid.zp[k0:k1, None, None] - z0
        yy = grid.ys[None, i0:i1, None] - y0
        xx = grid.xs[None, None, j0:j1] - x0
        ex, ey, ez = x1 - x0, y1 - y0, z1 - z0
        ee = max(ex * ex + ey * ey + ez * ez, 1e-12)
        t = (xx * (ex / ee) + yy * (ey / ee)) + zz * (ez / ee)
        _clip01(t)
        dx, dy = xx - t * ex, yy - t * ey
        dz = np.abs(zz - t * ez)
        dz -= half
        np.maximum(dz, 0.0, out=dz)
        dist = np.sqrt(dx * dx + dy * dy + dz * dz)
        # About one pixel of partial-volume edge, so thin vessels do not alias into dots.
        edge = (r0 + 0.5 * px) + t * (r1 - r0) - dist
        sub = hu[k0:k1, i0:i1, j0:j1]
        for value, widen in layers:
            w = (edge + widen) / px
            _clip01(w)
            if restrict is not None:
                w *= restrict[k0:k1, i0:i1, j0:j1]
            sub += w * (value - sub)


def _lung_shape(
    patient: _Patient, side: int, z: npt.NDArray[Any], inflate: float
) -> tuple[float, npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Center x, center y, x radius and y radius of one lung's outline at normalised heights."""
    k = 0 if side < 0 else 1
    w = patient.lung_profile(z) * inflate
    return (
        side * patient.lung_cx,
        patient.lung_center_y(z),
        patient.lung_rx[k] * w,
        patient.lung_ry[k] * w,
    )


def _render(
    patient: _Patient,
    rng: np.random.Generator,
    n_slices: int,
    size: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Draw one scan of a patient: returns HU volume, lung mask and finding weight."""
    u = rng.uniform
    # Scan-level variation: the patient lies a little differently, breathes a little deeper, the
    # scan starts and stops at slightly different heights and the noise level differs.
    scale, tx, ty = u(0.95, 1.03), u(-0.03, 0.03), u(-0.03, 0.03)
    inflate = u(0.96, 1.04)
    z_first, z_last = u(-0.04, 0.03), u(0.97, 1.05)
    sigma = u(12.0, 22.0)
    grow = u(0.85, 1.15)  # findings grow or shrink between a patient's scans

    centers = ((np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
    if n_slices > 1:
        zn = z_first + (z_last - z_first) * np.arange(n_slices, dtype=np.float32) / (n_slices - 1)
    else:
        zn = np.full(1, 0.5 * (z_first + z_last), dtype=np.float32)
    grid = _Grid(
        xs=((centers - tx) / scale).astype(np.float32),
        ys=((centers - ty) / scale).astype(np.float32),
        zn=zn.astype(np.float32),
        zp=(zn * patient.lz).astype(np.float32),
        px=2.0 / size / scale,
    )
    X2, Y2 = grid.xs[None, :], grid.ys[:, None]

    # 2D anatomy, the same on every slice: body, fat rim, spine, sternum, table.
    by = Y2 - patient.body_cy
    qb = (X2 / patient.body_rx) ** 2 + (by / patient.body_ry) ** 2
    base = np.full((size, size), _HU_AIR, dtype=np.float32)
    base[qb < 1.0] = _HU_FAT
    base[qb < (1.0 - patient.fat) ** 2] = _HU_SOFT
    spine_y = patient.body_cy + 0.62 * patient.body_ry
    q_vert = (X2**2 + (Y2 - spine_y) ** 2) / 0.085**2
    base[q_vert < 1.0] = _HU_CORTEX
    base[q_vert < 0.7] = _HU_BONE
    base[(X2**2 + (Y2 - spine_y - 0.12) ** 2) < 0.035**2] = 20.0  # spinal canal
    base[((X2 / 0.03) ** 2 + ((Y2 - spine_y - 0.2) / 0.06) ** 2) < 1.0] = _HU_BONE
    sternum_y = patient.body_cy - 0.86 * patient.body_ry
    base[((X2 / 0.06) ** 2 + ((Y2 - sternum_y) / 0.025) ** 2) < 1.0] = _HU_BONE
    table_y = patient.body_cy + patient.body_ry + 0.05
    on_table = (np.abs(Y2 - (table_y + 0.0125)) < 0.0125) & (np.abs(X2) < 0.95)
    base[on_table] = _HU_TABLE
    hu = np.repeat(base[None], n_slices, axis=0)

    # Ribs: a ring just inside the chest wall; each rib runs obliquely (higher at the back), so
    # an axial slice cuts it into arcs that move from slice to slice.
    rb = np.sqrt(qb)
    iy, ix = np.nonzero((rb > 0.84) & (rb < 0.9) & (np.abs(X2) > 0.14))
    yn = (Y2[:, 0][iy] - patient.body_cy) / patient.body_ry
    phase = (grid.zn[:, None] + patient.rib_slope * yn[None, :] - patient.rib_z0) / (
        patient.rib_spacing
    )
    rib = (phase >= 0.0) & (phase < 12.0) & (phase - np.floor(phase) < 0.38)
    hu[:, iy, ix] = np.where(rib, _HU_BONE, hu[:, iy, ix])

    # Lungs: per side an ellipse that grows from a rounded apex, minus the heart, cut from below
    # by the diaphragm dome (higher in the middle, deepest at the back: crescents near the base).
    Z = grid.Z
    lung = np.zeros(hu.shape, dtype=bool)
    hx, hy, hrx, hry, hz, hh = patient.heart
    heart_r = np.sqrt(np.clip(1.0 - ((grid.zn - hz) / hh) ** 2, 0.0, 1.0))[:, None, None]
    for side in (-1, 1):
        k = 0 if side < 0 else 1
        cx, cy, rx, ry = _lung_shape(patient, side, grid.zn[:, None, None], inflate)
        rx_full = patient.lung_rx[k] * inflate
        ry_full = patient.lung_ry[k] * inflate
        # Only the box that can hold this lung is computed.
        j0, j1 = _span(grid.xs, cx - rx_full - grid.px, cx + rx_full + grid.px)
        i0, i1 = _span(
            grid.ys, patient.lung_cy - ry_full - grid.px, patient.lung_cy + 0.08 + ry_full + grid.px
        )
        X = grid.xs[None, None, j0:j1]
        Y = grid.ys[None, i0:i1, None]
        q = ((X - cx) / np.maximum(rx, 1e-6)) ** 2 + ((Y - cy) / np.maximum(ry, 1e-6)) ** 2
        inside = q < 1.0
        base_z, height = patient.dome[k]
        rr = ((X - cx) / rx_full) ** 2 + ((Y - cy) / ry_full) ** 2
        dome_z = base_z - height * (1.0 - np.clip(rr, 0.0, 1.0)) + 0.06 * (Y - cy) / ry_full
        inside &= dome_z > Z
        hq = ((X - hx) / np.maximum(hrx * heart_r, 1e-6)) ** 2 + (
            (Y - hy) / np.maximum(hry * heart_r, 1e-6)
        ) ** 2
        inside &= hq >= 1.0
        lung[:, i0:i1, j0:j1] |= inside
    # Dependent (posterior) lung is a little denser, as in a supine patient.
    hu = np.where(lung, np.float32(patient.parenchyma) + 30.0 * grid.Y, hu).astype(np.float32)

    lesion = np.zeros(hu.shape, dtype=np.float32)

    # Ground-glass opacities and patches: soft ellipsoids placed relative to the lung outline
    # at their height, clipped to the lung; they only raise density, so vessels drawn later
    # stay visible through them, as in real ground glass.
    for blob in patient.blobs:
        cx, cy_arr, rx_arr, ry_arr = _lung_shape(patient, blob.side, np.float32(blob.z), inflate)
        lrx, lry = float(rx_arr), float(ry_arr)
        if lrx <= 0.0:
            continue
        blob_x = cx + blob.u * lrx
        blob_y = float(cy_arr) + blob.v * lry
        # The outline's normal at the blob: the axes of the blob follow the pleura.
        nx, ny = blob.a / lrx, blob.b / lry
        norm = math.sqrt(nx * nx + ny * ny)
        nx, ny = nx / norm, ny / norm
        rn, rt, rz = blob.rn * grow, blob.rt * grow, blob.rz * grow
        reach = max(rn, rt)
        k0, k1 = _span(grid.zn, blob.z - rz, blob.z + rz)
        i0, i1 = _span(grid.ys, blob_y - reach, blob_y + reach)
        j0, j1 = _span(grid.xs, blob_x - reach, blob_x + reach)
        if k0 >= k1 or i0 >= i1 or j0 >= j1:
            continue
        dx = grid.xs[None, None, j0:j1] - blob_x
        dy = grid.ys[None, i0:i1, None] - blob_y
        q = (
            ((dx * nx + dy * ny) / rn) ** 2
            + ((dy * nx - dx * ny) / rt) ** 2
            + ((grid.zn[k0:k1, None, None] - blob.z) / rz) ** 2
        )
        w = _smooth((1.0 - q) / 0.6) * lung[k0:k1, i0:i1, j0:j1]
        sub = hu[k0:k1, i0:i1, j0:j1]
        np.maximum(sub, sub + w * (blob.hu - sub), out=sub)
        np.maximum(lesion[k0:k1, i0:i1, j0:j1], w, out=lesion[k0:k1, i0:i1, j0:j1])

    _draw_tubes(hu, patient.vessels, [(_HU_SOFT, 0.0)], grid, restrict=lung)

    cons = patient.consolidation
    if cons is not None:
        # A lobe of one lung (bounded by the oblique fissure, and on the right the horizontal
        # one) intersected with a large soft ellipsoid: dense, sharply limited at the fissure,
        # hiding the vessels inside it.
        side = cons.side
        k = 0 if side < 0 else 1
        cx, cy, rx, ry = _lung_shape(patient, side, Z, inflate)
        rx_full = patient.lung_rx[k] * inflate
        ry_full = patient.lung_ry[k] * inflate
        j0, j1 = _span(grid.xs, cx - rx_full - grid.px, cx + rx_full + grid.px)
        i0, i1 = _span(
            grid.ys, patient.lung_cy - ry_full - grid.px, patient.lung_cy + 0.08 + ry_full + grid.px
        )
        X = grid.xs[None, None, j0:j1]
        un = (X - cx) / np.maximum(rx, 1e-6)
        vn = (grid.ys[None, i0:i1, None] - cy) / np.maximum(ry, 1e-6)
        fissure = 1.0 - 2.0 * (Z - 0.25) / 0.7
        lower = _smooth((vn - fissure) / 0.1 + 0.5)
        below_horizontal = _smooth((Z - 0.55) / 0.04 + 0.5)
        if cons.lobe == "lower":
            lobe = lower
        elif cons.lobe == "middle":
            lobe = (1.0 - lower) * below_horizontal
        elif side < 0:  # right upper lobe: above the horizontal fissure
            lobe = (1.0 - lower) * (1.0 - below_horizontal)
        else:
            lobe = 1.0 - lower
        q = (
            ((un - 0.15 * side) / cons.ru) ** 2
            + ((vn - cons.v) / cons.rv) ** 2
            + ((Z - cons.z) / cons.rz) ** 2
        )
        w = lobe * _smooth((1.0 - q) / 0.5) * lung[:, i0:i1, j0:j1]
        sub = hu[:, i0:i1, j0:j1]
        sub += w * (cons.hu - sub)
        np.maximum(lesion[:, i0:i1, j0:j1], w, out=lesion[:, i0:i1, j0:j1])

    # Airways last: their air stays dark inside a consolidation (air bronchograms).
    _draw_tubes(hu, patient.airways_central, [(_HU_AIRWAY_WALL, 0.012), (_HU_AIR, 0.0)], grid)
    _draw_tubes(
        hu, patient.airways_lobar, [(_HU_AIRWAY_WALL, 0.008), (_HU_AIR, 0.0)], grid, restrict=lung
    )

    hu += np.float32(sigma) * rng.standard_normal(size=hu.shape, dtype=np.float32)
    return hu, lung, lesion


def _window(hu: npt.NDArray[np.float32], window: tuple[float, float]) -> npt.NDArray[np.uint8]:
    center, width = window
    gray = (hu - np.float32(center - width / 2.0)) * np.float32(255.0 / width)
    return np.rint(np.clip(gray, 0.0, 255.0)).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# Argument checks


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_range(name: str, value: Any, minimum: int, maximum: int) -> tuple[int, int]:
    """An int ``n`` (meaning ``(n, n)``) or a ``(min, max)`` pair within the allowed bounds."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        lo = hi = _check_int(name, value, minimum, maximum)
        return lo, hi
    try:
        lo_raw, hi_raw = value
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a (min, max) pair, got {value!r}") from None
    lo = _check_int(f"{name}[0]", lo_raw, minimum, maximum)
    hi = _check_int(f"{name}[1]", hi_raw, minimum, maximum)
    if lo > hi:
        raise ValueError(f"{name} must be (min, max) with min <= max, got {value!r}")
    return lo, hi


def _check_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"lesion_scale must be a number, got {value!r}")
    if not 0.25 <= float(value) <= 4.0:
        raise ValueError(f"lesion_scale must be in [0.25, 4], got {value!r}")
    return float(value)


def _check_window(window: Any) -> tuple[float, float]:
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError):
        raise ValueError(f"window must be a (center, width) pair in HU, got {window!r}") from None
    if not (np.isfinite(center) and np.isfinite(width)) or width <= 0:
        raise ValueError(f"window width must be a finite number > 0, got {window!r}")
    return center, width


def _check_classes(classes: Any) -> tuple[str, ...]:
    if isinstance(classes, str):
        raise ValueError(
            f"classes must be a sequence of class names such as {list(CLASSES)}, "
            f"got the string {classes!r}"
        )
    names = tuple(classes)
    if not names:
        raise ValueError(f"classes must name at least one of {list(CLASSES)}, got {classes!r}")
    for name in names:
        check_choice("class", name, CLASSES)
    if len(set(names)) != len(names):
        raise ValueError(f"classes must not repeat a class, got {list(names)}")
    return names


# ----------------------------------------------------------------------------------------------
# Public API


def generate_scan(
    label: str,
    seed: int,
    n_slices: int = 32,
    size: int = 128,
    *,
    scan: int = 0,
    return_hu: bool = True,
    window: tuple[float, float] = LUNG_WINDOW,
    lesion_scale: float = 1.0,
) -> PhantomScan:
    """Draw one synthetic chest-CT scan.

    The seed fixes the patient: anatomy (body, lungs, airways, vessels) comes from one stream
    and the finding from another, so the same seed gives the same chest for every label and
    the classes differ only by their finding. ``scan`` selects one of the patient's scans,
    which differ in position, inspiration, slice positions, finding size and noise.

    Args:
        label: ``"NCP"`` (bilateral peripheral ground glass), ``"CP"`` (lobar consolidation)
            or ``"Normal"``.
        seed: The patient seed, an int >= 0 (see :func:`patient_seed`).
        n_slices: Number of slices ``D`` (1 to 1000); they always span apex to base, so fewer
            slices means thicker spacing.
        size: Height and width of each slice in pixels (32 to 1024).
        scan: Index of the scan within the patient (>= 0).
        return_hu: Keep the float32 HU volume in the result (else ``hu`` is ``None``).
        window: ``(center, width)`` in HU of the window that maps HU to 8-bit gray.
        lesion_scale: Multiplies the in-plane size of the ground-glass opacities and of the
            consolidation patches (1.0: as drawn; the demo uses more at small slice sizes,
            where the default opacities are only a few pixels wide).

    Returns:
        The scan: windowed ``uint8`` slices, HU volume, lesion and lung masks.

    Raises:
        ValueError: If ``label`` is not a class (with the closest match) or a number is out
            of range.
        TypeError: If a number is not an int.

    Shape:
        Every array of the result is ``(n_slices, size, size)``.
    """
    check_choice("label", label, CLASSES)
    seed = _check_int("seed", seed, 0)
    n_slices = _check_int("n_slices", n_slices, 1, MAX_SLICES)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    scan = _check_int("scan", scan, 0)
    window = _check_window(window)
    lesion_scale = _check_scale(lesion_scale)
    patient = _make_patient(seed, label, lesion_scale)
    hu, lung, lesion = _render(patient, _rng(seed, 2, scan), n_slices, size)
    return PhantomScan(
        label=label,
        slices=_window(hu, window),
        hu=hu if return_hu else None,
        lesion_mask=(lesion >= 0.5) & lung,
        lung_mask=lung,
        seed=seed,
        scan=scan,
        window=window,
    )


def lesion_mask_path(
    out_dir: str | os.PathLike[str], label: str, patient_id: str | int, scan_id: str | int
) -> Path:
    """Where :func:`write_dataset` stores the lesion and lung masks of one scan.

    The masks live in a separate tree, ``OUT/.masks``, that mirrors the scans' layout: neither
    inside a scan folder (slice readers would see them) nor beside one (``predict OUT/CP/5/*``
    would pick them up as scans). The dot-folder is skipped by shell globs and scan listers.

    Args:
        out_dir: The data set's root folder.
        label: The scan's class folder.
        patient_id: The patient id (as in ``unzip_filenames.csv``).
        scan_id: The scan id.

    Returns:
        ``out_dir/.masks/<label>/<patient_id>/<scan_id>.mask.npz``.
    """
    return Path(out_dir) / MASKS_DIR / label / str(patient_id) / f"{scan_id}{MASK_SUFFIX}"


def load_lesion_mask(
    out_dir: str | os.PathLike[str], patient_id: str | int, scan_id: str | int
) -> npt.NDArray[np.bool_]:
    """Load the lesion mask that :func:`write_dataset` saved for one scan.

    Args:
        out_dir: The data set's root folder.
        patient_id: The patient id (as in ``unzip_filenames.csv``); patient ids are unique
            across classes, so the class is found from it.
        scan_id: The scan id.

    Returns:
        A boolean array aligned with the scan's slices (``mask[i]`` belongs to slice file
        ``f"{i:04d}.png"``); ``True`` where the finding is.

    Raises:
        FileNotFoundError: If there is no such mask; the message names the path looked at and
            the closest patient or scan ids that exist.

    Shape:
        ``(D, H, W)``, the scan's slice count and slice size.
    """
    return _load_mask(out_dir, patient_id, scan_id, "mask")


def load_lung_mask(
    out_dir: str | os.PathLike[str], patient_id: str | int, scan_id: str | int
) -> npt.NDArray[np.bool_]:
    """Load the lung mask that :func:`write_dataset` saved for one scan.

    The region to score a heatmap in (see :func:`resnet3d.explain.mask_overlap`): a random
    map of the lungs hits the lesion at the lesion's share of the lungs.

    Args:
        out_dir: The data set's root folder.
        patient_id: The patient id (as in ``unzip_filenames.csv``).
        scan_id: The scan id.

    Returns:
        A boolean array aligned with the scan's slices; ``True`` in the lungs (parenchyma,
        findings and vessels inside the lungs).

    Raises:
        FileNotFoundError: If there is no such mask file, or the data set was written before
            lung masks were saved (write it again).

    Shape:
        ``(D, H, W)``, the scan's slice count and slice size.
    """
    return _load_mask(out_dir, patient_id, scan_id, "lung")


def _load_mask(
    out_dir: str | os.PathLike[str], patient_id: str | int, scan_id: str | int, key: str
) -> npt.NDArray[np.bool_]:
    """One array of a scan's ``.mask.npz`` (``"mask"``: lesion, ``"lung"``: lungs)."""
    root = Path(out_dir)
    pid, sid = str(patient_id), str(scan_id)
    if not root.is_dir():
        raise FileNotFoundError(f"no phantom data set at {root}: the folder does not exist")
    patient_dirs = [root / label / pid for label in CLASSES if (root / label / pid).is_dir()]
    if not patient_dirs:
        known = sorted(
            {
                p.name
                for label in CLASSES
                if (root / label).is_dir()
                for p in (root / label).iterdir()
            }
        )
        raise FileNotFoundError(
            f"no patient {pid!r} under {root}/{{{','.join(CLASSES)}}}; "
            f"{len(known)} patients exist." + did_you_mean(pid, known)
        )
    labels = [patient_dir.parent.name for patient_dir in patient_dirs]
    mask_dirs = [root / MASKS_DIR / label / pid for label in labels]
    # Data sets written before the masks moved to .masks keep them beside the scan folders.
    candidates = [d / f"{sid}{MASK_SUFFIX}" for d in (*mask_dirs, *patient_dirs)]
    for path in candidates:
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if key not in data.files:
                    raise FileNotFoundError(
                        f"{path} holds no {key!r} array (it has {sorted(data.files)}): the "
                        "data set was written by an older resnet3d; write it again"
                    )
                return np.asarray(data[key], dtype=bool)
    masks = sorted(
        p.name[: -len(MASK_SUFFIX)]
        for folder in (mask_dirs[0], patient_dirs[0])
        for p in folder.glob(f"*{MASK_SUFFIX}")
    )
    if not masks:
        raise FileNotFoundError(
            f"no masks in {mask_dirs[0]} (was the data set written with masks=False?)"
        )
    raise FileNotFoundError(
        f"no mask {candidates[0]}: patient {pid!r} has masks for scans {masks}."
        + did_you_mean(sid, masks)
    )


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_open(path) as handle:
        handle.write(data)


def _clear_previous(out: Path, classes: Sequence[str]) -> None:
    """Remove what an earlier ``write_dataset`` wrote in ``out``; refuse to touch anything else."""
    ours = [out / name for name in (*dict.fromkeys((*CLASSES, *classes)), MASKS_DIR, CSV_NAME)]
    present = [p for p in ours if p.exists()]
    marker = out / MARKER_NAME
    if present and not marker.is_file():
        raise FileExistsError(
            f"{out} holds {[p.name for p in present]} but no {MARKER_NAME}, so it was not "
            "written by resnet3d's phantom; refusing to delete it even with overwrite. "
            "Choose an empty or new folder."
        )
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    marker.unlink(missing_ok=True)


def write_dataset(
    out_dir: str | os.PathLike[str],
    patients: int = 30,
    size: int = 128,
    seed: int = 0,
    slices: int | tuple[int, int] = (16, 40),
    scans_per_patient: int | tuple[int, int] = (1, 3),
    classes: Sequence[str] = CLASSES,
    masks: bool = True,
    progress: bool = False,
    *,
    vary_size: bool = False,
    overwrite: bool = False,
    window: tuple[float, float] = LUNG_WINDOW,
    lesion_scale: float = 1.0,
) -> Path:
    """Write a synthetic data set in the CC-CCII layout.

    Layout::

        OUT/<class>/<patient_id>/<scan_id>/0000.png, 0001.png, ...   8-bit gray PNG slices
        OUT/.masks/<class>/<patient_id>/<scan_id>.mask.npz           lesion and lung masks
        OUT/unzip_filenames.csv      zip_file,label,patient_id,scan_id,n_slice
        OUT/phantom.json             the settings and per-patient seeds

    Patient ``p`` (0-based) gets class ``classes[p % len(classes)]``, id ``str(p + 1)`` and
    scan ids ``(p + 1) * 100 + s``; so every class gets ``patients // len(classes)`` patients
    and the remainder goes to the first classes, and ``patients=N`` writes exactly the first
    ``N`` patients of ``patients=N + k`` (same seed). Each scan folder is written under a
    temporary name and renamed when complete; ``phantom.json`` is written first and the CSV
    last, so a folder with ``phantom.json`` but no CSV is an interrupted run: run again with
    ``overwrite=True``, which deletes only what this function writes.

    Args:
        out_dir: The folder to write; created if missing.
        patients: Number of patients, at least one per class.
        size: Height and width of the slices in pixels (32 to 1024).
        seed: Master seed (an int >= 0).
        slices: Slices per scan, an int or an inclusive ``(min, max)`` range (1 to 1000).
        scans_per_patient: Scans per patient, an int or an inclusive ``(min, max)``
            range (1 to 99).
        classes: The class folders to fill, a subset of ``("NCP", "CP", "Normal")``.
        masks: Also save each scan's lesion and lung masks (under ``OUT/.masks``).
        progress: Show a tqdm progress bar on stderr.
        vary_size: Let each scan's size vary by up to 1/8 around ``size`` (never below 32).
        overwrite: Replace an earlier phantom data set in ``out_dir``.
        window: ``(center, width)`` in HU of the window that maps HU to 8-bit gray.
        lesion_scale: In-plane size factor of the findings (see :func:`generate_scan`).

    Returns:
        The data set's root folder.

    Raises:
        ValueError: If an argument is out of range or a class is unknown (the message names
            the value).
        TypeError: If a count is not an int.
        FileExistsError: If ``out_dir`` is not empty and ``overwrite`` is false, or if
            ``overwrite`` is true but the folder holds class folders not written by the
            phantom.
        NotADirectoryError: If ``out_dir`` is a file.
    """
    classes = _check_classes(classes)
    patients = _check_int("patients", patients, 0)
    if patients < len(classes):
        raise ValueError(
            f"patients must be >= {len(classes)} (at least one per class of {list(classes)}), "
            f"got {patients}"
        )
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0)
    slice_range = _check_range("slices", slices, 1, MAX_SLICES)
    scan_range = _check_range("scans_per_patient", scans_per_patient, 1, MAX_SCANS_PER_PATIENT)
    window = _check_window(window)
    lesion_scale = _check_scale(lesion_scale)

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"out_dir {out} is not empty; pass overwrite=True (CLI: --overwrite) to replace "
                "a phantom data set there, or choose a new folder"
            )
        _clear_previous(out, classes)
    out.mkdir(parents=True, exist_ok=True)

    # Plan every scan first (cheap), so the progress bar knows the total.
    plan: list[dict[str, Any]] = []
    for p in range(patients):
        layout = _rng(seed, p, 1)
        n_scans = int(layout.integers(scan_range[0], scan_range[1] + 1))
        scans = []
        for s in range(n_scans):
            n = int(layout.integers(slice_range[0], slice_range[1] + 1))
            delta = int(layout.integers(-(size // 8), size // 8 + 1))  # drawn always: stable
            scans.append(
                {
                    "scan_id": str((p + 1) * 100 + s),
                    "n_slice": n,
                    "size": max(MIN_SIZE, size + delta) if vary_size else size,
                }
            )
        plan.append(
            {
                "patient_id": str(p + 1),
                "label": classes[p % len(classes)],
                "seed": patient_seed(seed, p),
                "scans": scans,
            }
        )
    settings = {
        "generator": "resnet3d.data.phantom",
        "complete": False,
        "patients": patients,
        "size": size,
        "seed": seed,
        "slices": list(slice_range),
        "scans_per_patient": list(scan_range),
        "classes": list(classes),
        "masks": masks,
        "vary_size": vary_size,
        "window": list(window),
        "lesion_scale": lesion_scale,
    }

    _write_atomic(out / MARKER_NAME, json.dumps(settings, indent=1).encode("utf-8"))

    from PIL import Image
    from tqdm.auto import tqdm

    started = time.perf_counter()
    rows: list[tuple[str, ...]] = []
    n_total = sum(len(entry["scans"]) for entry in plan)
    with tqdm(total=n_total, unit="scan", disable=not progress, desc="phantom") as bar:
        for entry in plan:
            label, pid = entry["label"], entry["patient_id"]
            patient_dir = out / label / pid
            patient_dir.mkdir(parents=True, exist_ok=True)
            for s, info in enumerate(entry["scans"]):
                scan = generate_scan(
                    label,
                    entry["seed"],
                    info["n_slice"],
                    info["size"],
                    scan=s,
                    return_hu=False,
                    window=window,
                    lesion_scale=lesion_scale,
                )
                final = patient_dir / info["scan_id"]
                tmp = patient_dir / f".{info['scan_id']}.partial"
                if tmp.exists():
                    shutil.rmtree(tmp)
                tmp.mkdir()
                for i, gray in enumerate(scan.slices):
                    # compress_level=1: the slices are tiny and mostly noise; speed wins.
                    Image.fromarray(gray).save(tmp / f"{i:04d}.png", compress_level=1)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
                if masks:
                    mask_path = lesion_mask_path(out, label, pid, info["scan_id"])
                    mask_path.parent.mkdir(parents=True, exist_ok=True)
                    buffer = io.BytesIO()
                    np.savez_compressed(buffer, mask=scan.lesion_mask, lung=scan.lung_mask)
                    _write_atomic(mask_path, buffer.getvalue())
                rows.append(
                    (f"phantom-{label}.zip", label, pid, info["scan_id"], str(info["n_slice"]))
                )
                bar.update(1)

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    _write_atomic(out / CSV_NAME, text.getvalue().encode("utf-8"))
    settings["complete"] = True
    settings["patient_seeds"] = {entry["patient_id"]: entry["seed"] for entry in plan}
    _write_atomic(out / MARKER_NAME, json.dumps(settings, indent=1).encode("utf-8"))
    logger.debug(
        "wrote %d patients, %d scans, %d slices to %s in %.1f s",
        patients,
        len(rows),
        sum(int(r[-1]) for r in rows),
        out,
        time.perf_counter() - started,
    )
    return out
