"""End-to-end workflows on folders of scans: train, evaluate, predict.

These glue the pieces together the way the CLI (and most users) need them: index a data
set, split it by patient (saved next to the checkpoints), build volume data sets from the
model's preprocessing spec, and report metrics at volume, scan and patient level.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .data import ScanIndex, Split, VolumeDataset, split_by_patient
from .distributed import DistInfo
from .inference import (
    Predictions,
    autocast,
    make_loader,
    predict_loader,
    prepare_batch,
)
from .metrics import ClassificationReport, classification_report
from .metrics import require_matplotlib as _require_matplotlib
from .resnet import ResNet3D
from .runtime import resolve_runtime
from .train import TrainConfig, Trainer, TrainResult
from .volumes import SliceStacker

logger = logging.getLogger(__name__)

LEVELS = ("volume", "scan", "patient")
SPLIT_FILE = "split.json"


def load_or_make_split(
    index: ScanIndex,
    out_dir: str | os.PathLike[str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """The run's patient split: read from ``out_dir/split.json`` if present, else made and saved.

    Reusing the saved split is what keeps a resumed run (and its evaluation) on the same
    patients; a split file that no longer matches the data set is an error.
    """
    path = Path(out_dir) / SPLIT_FILE
    if path.exists():
        split = Split.from_json(path, index)
        logger.info("using the saved patient split %s", path)
        return split
    split = split_by_patient(index, fractions=fractions, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    split.to_json(path)
    logger.info("saved the patient split to %s", path)
    return split


def fit_from_folder(
    data: str | os.PathLike[str],
    config: TrainConfig,
    stacker: SliceStacker,
    *,
    layout: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    resume: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train on a folder of scans with a patient-level split saved next to the checkpoints.

    Args:
        data: The data set (see :meth:`~resnet3d.data.ScanIndex.from_path`).
        config: The training run.
        stacker: How scans become volumes (stored in the checkpoints as the model's
            preprocessing spec).
        layout: ``"auto"``, ``"ccii"``, ``"tree"`` or ``"csv"``.
        fractions: Train, valid, test shares of each class's patients.
        split_seed: Seed of the split.
        resume: ``None``, ``"auto"`` or a checkpoint path (see :meth:`Trainer.fit`).
        cache: A volume cache folder built by ``resnet3d build-volumes``.

    Returns:
        The :class:`~resnet3d.train.TrainResult`.
    """
    index = ScanIndex.from_path(data, layout)
    split = load_or_make_split(index, config.out_dir, fractions, split_seed)
    logger.info("split: %s", split.summary())
    train_set = VolumeDataset(split.train, stacker, cache=cache)
    valid_set = VolumeDataset(split.valid, stacker, cache=cache)
    metadata = {
        "preprocessing": stacker.to_dict(),
        "labels": list(index.classes),
        "data": os.fspath(data),
        "split_file": SPLIT_FILE,
    }
    trainer = Trainer(
        config,
        train_set,
        valid_set,
        index.classes,
        split_hash=split.hash,
        metadata=metadata,
    )
    return trainer.fit(resume=resume)


def model_from_checkpoint(path: str | os.PathLike[str]) -> ResNet3D:
    """Rebuild the model of a training checkpoint (``last.pt``/``best.pt``).

    The checkpoint's preprocessing spec and labels are attached as ``model.pretrained_cfg``
    so that evaluation and prediction prepare scans exactly as in training.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If it is not a readable resnet3d training checkpoint.
    """
    from .config import ResNet3DConfig

    state = ckpt.load_checkpoint(path)
    model = ResNet3D(ResNet3DConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    metadata = state.get("metadata") or {}
    model.pretrained_cfg = {
        "source": {"kind": "checkpoint", "path": os.fspath(path), "epoch": state["epoch"]},
        "preprocessing": metadata.get("preprocessing", {}),
        "labels": list(state.get("labels") or metadata.get("labels") or []),
        "split_hash": state.get("split_hash", ""),
        "data": metadata.get("data"),
    }
    return model.eval()


def stacker_for(model: ResNet3D, **overrides: Any) -> SliceStacker:
    """The volume builder a model expects, from ``model.pretrained_cfg["preprocessing"]``.

    Args:
        model: A model from :func:`model_from_checkpoint` or ``from_pretrained``.
        **overrides: Fields to change (e.g. ``threads``); ``None`` values are ignored.

    Raises:
        ValueError: If the model carries no preprocessing spec and no overrides give one.
    """
    spec = dict((model.pretrained_cfg or {}).get("preprocessing") or {})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not spec and not overrides:
        raise ValueError(
            "the model has no preprocessing spec (pretrained_cfg['preprocessing']): load it "
            "with from_pretrained or model_from_checkpoint, or pass the stacker settings "
            "(depth, size, ...) explicitly"
        )
    return SliceStacker.from_dict(spec, **overrides)


def model_labels(model: ResNet3D) -> list[str]:
    """Class names of a model's outputs (``"0"``, ``"1"``... when it carries none)."""
    labels = list((model.pretrained_cfg or {}).get("labels") or [])
    if len(labels) != model.num_classes:
        labels = [str(i) for i in range(model.num_classes)]
    return labels


@dataclass
class Evaluation:
    """Metrics of one model on one data set at volume, scan and patient level."""

    reports: dict[str, ClassificationReport]
    predictions: Predictions
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: one report per level, plus the sample counts."""
        return {level: report.to_dict() for level, report in self.reports.items()}

    def summary(self) -> str:
        """One line per level: accuracy, macro F1 and macro AUROC."""
        lines = []
        for level, report in self.reports.items():
            lines.append(
                f"{level:8s} n={report.n_samples:5d}  accuracy {report.accuracy:.4f}  "
                f"macro-F1 {report.macro['f1']:.4f}  macro-AUROC {report.macro['auroc']:.4f}"
            )
        return "\n".join(lines)


def evaluate_model(
    model: ResNet3D,
    dataset: VolumeDataset,
    *,
    labels: Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    ci: bool = False,
    split: str | None = None,
) -> Evaluation:
    """Evaluate at volume, scan (mean of its volumes) and patient (mean of its volumes) level.

    Args:
        model: The model (its outputs must match ``labels``).
        dataset: Volumes with labels, e.g. ``VolumeDataset(split.test, stacker)``.
        labels: Class names; default the model's.
        out_dir: If given, writes ``evaluation.json`` and, with ``plots``, confusion-matrix
            and ROC PNGs per level (matplotlib).
        plots: Write the PNGs.
        batch_size: Volumes per forward pass.
        device: Device; default CUDA when present.
        precision: ``"fp32"`` (default, for reported numbers), ``"bf16"``, ``"fp16"``, ``"auto"``.
            The memory layout follows :func:`resnet3d.runtime.resolve_runtime` (``"auto"``).
        workers: DataLoader workers; default sized to the device.
        ci: Add bootstrap confidence intervals (resampling patients).
        split: Which data ``dataset`` is, e.g. ``"test"`` (a patient split's name) or
            ``"CC-CCII test"``; recorded as ``"split"`` in ``evaluation.json``, where
            ``resnet3d export`` reads it to name the split in the model card.

    Returns:
        The :class:`Evaluation`.

    Raises:
        ValueError: If the data set is empty or ``precision`` is not allowed.
        ImportError: If plots are asked for and matplotlib is missing (raised before the
            model runs).
    """
    labels = list(labels) if labels is not None else model_labels(model)
    if len(dataset) == 0:
        raise ValueError("the evaluation set has no volumes")
    if plots and out_dir is not None:
        _require_matplotlib()  # fail before the predictions, not after them
    # The layout predict_scans and training use ("auto"): what resnet3d evaluate prints.
    runtime = resolve_runtime(device, precision)
    model = model.to(runtime.device).eval()
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    loader = make_loader(
        dataset,
        batch_size,
        device=runtime.device,
        dist_info=DistInfo(),
        shuffle=False,
        workers=workers,
        compact=True,
    )
    predictions = predict_loader(
        model,
        loader,
        device=runtime.device,
        precision=runtime.precision,
        channels_last=runtime.channels_last,
    )
    y = predictions.labels
    scans = [f"{p}/{s}" for p, s in zip(predictions.patient_ids, predictions.scan_ids)]
    common: dict[str, Any] = {"labels": labels, "ci": ci, "zero_division": 0.0}
    reports = {
        "volume": classification_report(
            y, predictions.probs, ci_groups=predictions.patient_ids if ci else None, **common
        ),
        "scan": classification_report(
            y,
            predictions.probs,
            groups=scans,
            ci_groups=predictions.patient_ids if ci else None,
            **common,
        ),
        "patient": classification_report(
            y, predictions.probs, groups=predictions.patient_ids, **common
        ),
    }
    evaluation = Evaluation(reports=reports, predictions=predictions)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        target = out / "evaluation.json"
        document: dict[str, Any] = {"labels": labels, "levels": evaluation.to_dict()}
        if split is not None:
            document = {"split": split, **document}
        target.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        evaluation.files.append(target)
        if plots:
            for level, report in reports.items():
                evaluation.files.append(
                    report.plot_confusion_matrix(out / f"confusion_{level}.png")
                )
                evaluation.files.append(report.plot_roc(out / f"roc_{level}.png"))
    return evaluation


@dataclass
class ScanPrediction:
    """Class probabilities of one scan (mean over its volumes)."""

    path: Path
    n_volumes: int
    probs: np.ndarray
    labels: list[str]

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.labels[int(np.argmax(self.probs))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scan": os.fspath(self.path),
            "n_volumes": self.n_volumes,
            "prediction": self.label,
            "probabilities": {k: float(v) for k, v in zip(self.labels, self.probs)},
        }


@torch.no_grad()
def predict_scans(
    model: ResNet3D,
    scans: Sequence[str | os.PathLike[str]],
    *,
    stacker: SliceStacker | None = None,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "fp32",
) -> list[ScanPrediction]:
    """Per-scan class probabilities: every volume of the scan, softmax, mean.

    Args:
        model: The model; its ``pretrained_cfg`` configures the volume builder unless
            ``stacker`` is given.
        scans: Scan folders (or NIfTI files).
        stacker: Override the model's preprocessing.
        batch_size: Volumes per forward pass.
        device: Device; default CUDA when present.
        precision: Inference precision (``"fp32"`` default).

    Raises:
        FileNotFoundError: If a scan does not exist.
        ValueError: If a scan yields no volume (shorter than the depth with
            ``remainder="drop"``), or the model has no preprocessing spec.
    """
    stacker = stacker if stacker is not None else stacker_for(model)
    labels = model_labels(model)
    runtime = resolve_runtime(device, precision)
    torch_device, resolved, channels_last = runtime.device, runtime.precision, runtime.channels_last
    model = model.to(torch_device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    results = []
    for scan in scans:
        path = Path(scan)
        if not path.exists():
            raise FileNotFoundError(f"scan not found: {path}")
        # Compact (gray as one channel, 8-bit as uint8): restored exactly on the device.
        volumes = torch.from_numpy(stacker.load(path, compact=True))
        if len(volumes) == 0:
            raise ValueError(
                f"{path}: no volume of depth {stacker.depth} (remainder={stacker.remainder!r}); "
                "use a stacker with remainder='pad'"
            )
        probs = []
        for start in range(0, len(volumes), batch_size):
            batch = volumes[start : start + batch_size]
            x = prepare_batch(batch, torch_device, channels_last, stacker.channels)
            with autocast(torch_device, resolved):
                logits = model(x)
            probs.append(torch.softmax(logits.float(), dim=1).cpu().double().numpy())
        mean = np.concatenate(probs).mean(axis=0)
        results.append(ScanPrediction(path=path, n_volumes=len(volumes), probs=mean, labels=labels))
    return results
