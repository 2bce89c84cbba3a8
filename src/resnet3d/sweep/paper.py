"""The paper's sweep results as data, with their source (no torch).

Li, Pei and Guo, "A 3D CNN Classification Model for Accurate Diagnosis of Coronavirus
Disease 2019 using Computed Tomography Images", medRxiv 10.1101/2021.01.21.21249999 (2021),
report three sweeps on the complete-CT part of CC-CCII, test split: the volume depth at
batch size 8, the batch size at a few depths, and five models at depth 4 and batch size 32.
Each entry below is one reported cell (accuracy and recall), keyed by the settings a sweep
cell is matched on: ``depth``, ``batch_size`` and ``model``.

What the numbers mean (see :data:`SOURCE`):

- *Complete CT* names the data, not the unit: the complete (not lung-segmented) slices of
  CC-CCII, against the segmented subset the paper also trains on.
- The unit is read as the volume: the paper stacks ``n`` consecutive slices of one scan into
  one sample that carries its scan's label, and states no scan- or patient-level
  evaluation for these sweeps.
- *Recall* is the recall (sensitivity) of COVID-19 (``NCP``), not a macro average: for
  ResNet-18 at depth 4 and batch 32 the paper's recall 0.9996 is its COVID-19 against the
  rest recall (99.96%), and a three-way macro recall of 0.9996 would force every class's
  recall above 0.9988, hence an accuracy above 0.9988, not the reported 0.9924.
- *Accuracy* is the three-way accuracy (0.9924 for that model is the paper's three-way
  accuracy of 99.24%).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PAPER_SETTINGS",
    "PAPER_VALUES",
    "PRESETS",
    "SOURCE",
    "PaperValue",
    "paper_deviations",
    "paper_values",
]

#: The sweeps the paper reports, in its order: what each varies.
PRESETS: dict[str, str] = {
    "depth": "volume depth 2-64 at batch size 8, ResNet-18",
    "batch": "batch size 32 and 64 at depths 2-16, ResNet-18",
    "models": "five models at depth 4 and batch size 32",
}

#: Where the values come from and what they measure.
SOURCE: dict[str, str] = {
    "citation": (
        "Li, Pei and Guo, 'A 3D CNN Classification Model for Accurate Diagnosis of "
        "Coronavirus Disease 2019 using Computed Tomography Images', medRxiv, 2021"
    ),
    "doi": "10.1101/2021.01.21.21249999",
    "results": (
        "the paper's results on the complete CT slices: the volume-depth comparison at "
        "batch size 8 (preset 'depth'), the batch-size comparison (preset 'batch') and the "
        "model comparison at depth 4 and batch size 32 (preset 'models')"
    ),
    "data": (
        "CC-CCII (China Consortium of Chest CT Image Investigation), the complete CT slices "
        "('complete CT': all slices, not the lung-segmented subset); 137,256 slices of "
        "691 patients"
    ),
    "split": (
        "the paper's own split by patient (test patients are in neither train nor valid); "
        "test: 138 patients, 233 scans, 26,836 slices"
    ),
    "unit": (
        "volume, as read from the paper's setup: n consecutive slices of one scan (n = the "
        "depth) stacked into one sample carrying the scan's label; the paper states no "
        "scan- or patient-level evaluation for these sweeps"
    ),
    "accuracy": "three-way accuracy (COVID-19, common pneumonia, normal) over test volumes",
    "recall": (
        "recall (sensitivity) of COVID-19 (NCP) over test volumes, not macro: for "
        "ResNet-18 at depth 4 and batch 32 it equals the paper's COVID-19-against-the-rest "
        "recall (0.9996 = 99.96%), and a three-way macro recall of 0.9996 would need an "
        "accuracy above 0.9988, not 0.9924"
    ),
    "settings": (
        "slices brought to 512 x 512 x 3; cross-entropy, Adam with learning rate 1e-3, "
        "x0.1 every 10 epochs, 20 epochs; PyTorch on NVIDIA V100. Not stated: seed, "
        "augmentation, weight decay, the handling of trailing slices, normalisation, window"
    ),
    "model": (
        "the depth and batch comparisons use ResNet-18 (the batch comparison's depth 4, "
        "batch 32 cell repeats the model comparison's ResNet-18 value)"
    ),
}

#: The paper's training settings, under the names a sweep cell's settings use. A cell
#: whose settings differ is still matched on depth, batch size and model, and the report
#: names each difference (:func:`paper_deviations`).
PAPER_SETTINGS: dict[str, Any] = {
    "size": (512, 512),
    "channels": 3,
    "epochs": 20,
    "lr": 1e-3,
    "lr_step": 10,
    "lr_gamma": 0.1,
}


@dataclass(frozen=True)
class PaperValue:
    """One cell the paper reports.

    Attributes:
        preset: The paper's sweep it belongs to: ``"depth"``, ``"batch"`` or ``"models"``.
        model: Registered model name.
        depth: Slices per volume.
        batch_size: Training batch size.
        accuracy: Three-way accuracy over test volumes.
        recall: Recall of COVID-19 over test volumes.
    """

    preset: str
    model: str
    depth: int
    batch_size: int
    accuracy: float
    recall: float

    @property
    def settings(self) -> dict[str, Any]:
        """The settings a sweep cell is matched on."""
        return {"depth": self.depth, "batch_size": self.batch_size, "model": self.model}

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-able) form."""
        return {
            "preset": self.preset,
            **self.settings,
            "accuracy": self.accuracy,
            "recall": self.recall,
        }


#: Every reported cell, in the paper's order. ResNet-18 at depth 4 and batch size 32 is in
#: both the batch and the model comparison, with the same value.
PAPER_VALUES: tuple[PaperValue, ...] = (
    PaperValue("depth", "resnet18", 2, 8, 0.8482, 0.9796),
    PaperValue("depth", "resnet18", 4, 8, 0.9147, 0.9402),
    PaperValue("depth", "resnet18", 8, 8, 0.9684, 0.9504),
    PaperValue("depth", "resnet18", 16, 8, 0.9673, 0.9480),
    PaperValue("depth", "resnet18", 32, 8, 0.9636, 0.9341),
    PaperValue("depth", "resnet18", 64, 8, 0.9296, 0.9078),
    PaperValue("batch", "resnet18", 2, 32, 0.9914, 0.9991),
    PaperValue("batch", "resnet18", 2, 64, 0.9900, 0.9991),
    PaperValue("batch", "resnet18", 4, 32, 0.9924, 0.9996),
    PaperValue("batch", "resnet18", 4, 64, 0.9833, 0.9944),
    PaperValue("batch", "resnet18", 8, 32, 0.9815, 0.9844),
    PaperValue("batch", "resnet18", 16, 32, 0.9791, 0.9610),
    PaperValue("models", "resnet18", 4, 32, 0.9924, 0.9996),
    PaperValue("models", "resnet18_2plus1d", 4, 32, 0.9885, 0.9978),
    PaperValue("models", "resnet34", 4, 32, 0.9800, 0.9714),
    PaperValue("models", "resnet34_2plus1d", 4, 32, 0.9718, 0.9632),
    PaperValue("models", "resnet50", 4, 32, 0.9802, 0.9723),
)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def paper_values(settings: Mapping[str, Any], preset: str | None = None) -> list[PaperValue]:
    """The paper's values for a cell with these effective settings.

    A cell matches on ``depth``, ``batch_size`` and ``model`` only; its other settings
    (input size, epochs...) may differ from the paper's (see :func:`paper_deviations`).

    Args:
        settings: The cell's settings; missing keys match nothing.
        preset: Only values of this preset (``"depth"``, ``"batch"``, ``"models"``).

    Returns:
        The matching values in the paper's order: empty, one, or (ResNet-18 at depth 4 and
        batch size 32) one per preset that reports the cell.

    Raises:
        ValueError: If ``preset`` is not one of the paper's presets.
    """
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    depth, batch = _as_int(settings.get("depth")), _as_int(settings.get("batch_size"))
    model = settings.get("model")
    return [
        v
        for v in PAPER_VALUES
        if v.depth == depth
        and v.batch_size == batch
        and v.model == model
        and (preset is None or v.preset == preset)
    ]


def _size_pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        pair = (_as_int(value[0]), _as_int(value[1]))
        return (pair[0], pair[1]) if pair[0] is not None and pair[1] is not None else None
    n = _as_int(value)
    return (n, n) if n is not None else None


def _same(key: str, value: Any, paper: Any) -> bool:
    if key == "size":
        return _size_pair(value) == paper
    if isinstance(paper, float):
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isclose(float(value), paper, rel_tol=1e-9, abs_tol=1e-12)
        )
    return bool(value == paper)


def _show(key: str, value: Any) -> str:
    if key == "size":
        if value is None:
            return "native"
        pair = _size_pair(value)
        return f"{pair[0]} x {pair[1]}" if pair else str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def paper_deviations(settings: Mapping[str, Any]) -> list[str]:
    """How a cell's settings differ from the paper's training settings.

    Only the settings the paper states are compared (:data:`PAPER_SETTINGS`); keys the
    cell does not record are not compared. A batch split over processes (``nproc``) or
    accumulated (``grad_accum``) is named with its effective size.

    Args:
        settings: The cell's effective settings.

    Returns:
        One short phrase per difference, e.g. ``"size 128 x 128 (paper 512 x 512)"``.
    """
    out = []
    for key, paper in PAPER_SETTINGS.items():
        if key in settings and not _same(key, settings[key], paper):
            out.append(f"{key} {_show(key, settings[key])} (paper {_show(key, paper)})")
    batch, nproc, accum = (_as_int(settings.get(k)) for k in ("batch_size", "nproc", "grad_accum"))
    if batch is not None and (nproc or 1) * (accum or 1) != 1:
        steps = f"batch_size {batch} x nproc {nproc or 1} x grad_accum {accum or 1}"
        out.append(f"effective batch {batch * (nproc or 1) * (accum or 1)} ({steps})")
    return out
