"""Batched prediction over a loader, on one process or gathered across ranks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .device import autocast
from .loader import loader_channels, prepare_batch

__all__ = [
    "Predictions",
    "gather_objects",
    "predict_loader",
]


@dataclass
class Predictions:
    """Model outputs for every sample of a data set, in data set order.

    Attributes:
        probs: Softmax probabilities, ``(N, num_classes)`` float64.
        labels: True labels ``(N,)``; -1 where unknown.
        scan_ids: Scan id of each sample.
        patient_ids: Patient id of each sample.
        loss: Mean cross-entropy over the samples with a label, or ``None``.
    """

    probs: np.ndarray
    labels: np.ndarray
    scan_ids: list[str] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)
    loss: float | None = None


@torch.no_grad()
def predict_loader(
    model: nn.Module,
    loader: DataLoader,
    *,
    device: torch.device,
    precision: str = "fp32",
    channels_last: bool = False,
    progress: Any = None,
) -> Predictions:
    """Run ``model`` over ``loader`` (from :func:`make_loader`) and gather every rank's outputs.

    Samples that ``DistributedSampler`` repeats to even out the ranks are dropped, so the
    result equals a single-process run over the same data set. Compact batches are restored
    on the device (:func:`loader_channels`).
    """
    channels = loader_channels(loader)
    was_training = model.training
    model.eval()
    indices: list[int] = []
    logits_out: list[np.ndarray] = []
    labels: list[int] = []
    scans: list[str] = []
    patients: list[str] = []
    try:
        for batch_indices, (volumes, batch_labels, scan_ids, patient_ids) in _iter(
            loader, progress
        ):
            x = prepare_batch(volumes, device, channels_last, channels)
            with autocast(device, precision):
                logits = model(x)
            logits_out.append(logits.float().cpu().numpy().astype(np.float64))
            indices += [int(i) for i in batch_indices]
            labels += [int(v) for v in batch_labels]
            scans += [str(s) for s in scan_ids]
            patients += [str(p) for p in patient_ids]
    finally:
        model.train(was_training)
    local = (indices, logits_out, labels, scans, patients)
    parts = gather_objects(local)
    return _merge(parts)


def _iter(loader: DataLoader, progress: Any) -> Iterator[Any]:
    if progress is None:
        yield from loader
        return
    for item in loader:
        yield item
        progress.update(len(item[0]))


def gather_objects(local: Any) -> list[Any]:
    """Every rank's ``local`` (picklable), in rank order; ``[local]`` for one process."""
    if dist.is_available() and dist.is_initialized():
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, local)
        return parts
    return [local]


def _merge(parts: Sequence[Any]) -> Predictions:
    rows: dict[int, tuple[np.ndarray, int, str, str]] = {}
    for indices, logits_chunks, labels, scans, patients in parts:
        logits = np.concatenate(logits_chunks) if logits_chunks else np.zeros((0, 0))
        for j, index in enumerate(indices):
            rows.setdefault(index, (logits[j], labels[j], scans[j], patients[j]))
    order = sorted(rows)
    if not order:
        return Predictions(probs=np.zeros((0, 0)), labels=np.zeros(0, dtype=np.int64))
    logits = np.stack([rows[i][0] for i in order])
    labels_arr = np.array([rows[i][1] for i in order], dtype=np.int64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    known = labels_arr >= 0
    loss = None
    if known.any():
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = float(-log_probs[known, labels_arr[known]].mean())
    return Predictions(
        probs=probs,
        labels=labels_arr,
        scan_ids=[rows[i][2] for i in order],
        patient_ids=[rows[i][3] for i in order],
        loss=loss,
    )
