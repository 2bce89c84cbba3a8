"""Running a model over a data set: batched, on any device, across ranks.

Shared by validation during training, ``resnet3d evaluate`` and ``resnet3d predict``. Items
of a data set are ``(volume, label, scan_id, patient_id)``; volumes may be float or uint8
(uint8 is moved to the device as is, the cheapest transfer, and scaled to [0, 1] there).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .distributed import DistInfo

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


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


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; by default CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cpu_has_fast_bf16() -> bool:
    """True if this CPU computes bf16 natively (AVX-512 BF16 or AMX), where autocast pays."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                if fn():
                    return True
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into ``"bf16"``, ``"fp16"`` or ``"fp32"`` for ``device``.

    ``"auto"`` is bf16 on CUDA devices that support it (else fp16) and on CPUs with native
    bf16; fp32 elsewhere.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not supported; choose one of {PRECISIONS}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("precision='fp16' needs a CUDA device; use 'bf16' or 'fp32' on CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(setting: str | bool, device: torch.device, precision: str) -> bool:
    """Whether to run in ``channels_last_3d``.

    ``"auto"``: on CUDA, and on CPU with bf16; not for fp32 on CPU, where the backward
    convolutions copy channels-last tensors and training gets slower.
    """
    if isinstance(setting, bool):
        return setting
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"channels_last={setting!r} is not supported; use 'auto', 'on' or 'off'")
    if setting != "auto":
        return setting == "on"
    return device.type == "cuda" or precision == "bf16"


def prepare_batch(volumes: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    """Move a batch to ``device`` and scale uint8 volumes to float in [0, 1] there."""
    volumes = volumes.to(device, non_blocking=True)
    if volumes.dtype == torch.uint8:
        volumes = volumes.float().div_(255.0)
    elif volumes.dtype != torch.float32:
        volumes = volumes.float()
    if channels_last:
        volumes = volumes.contiguous(memory_format=torch.channels_last_3d)
    return volumes


class IndexedDataset(Dataset):
    """Wraps a data set so that every item also carries its index (to undo sampler padding)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


def default_workers(device: torch.device, world_size: int = 1) -> int:
    """DataLoader workers: on CUDA the CPUs per process (at most 8); on CPU none.

    On a CPU-only machine the model uses every core; workers would compete with it.
    """
    if device.type != "cuda":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cpus or 1) // max(1, world_size) - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    device: torch.device,
    dist_info: DistInfo,
    shuffle: bool,
    seed: int = 0,
    workers: int | None = None,
    drop_last: bool | str = False,
) -> DataLoader:
    """A DataLoader over ``IndexedDataset(dataset)`` with a ``DistributedSampler``.

    The sampler is used for one process too: its order depends only on ``seed`` and the epoch
    set with ``sampler.set_epoch``, which is what makes a resumed run repeat an
    uninterrupted one exactly.

    ``drop_last="single"`` drops the last batch only when it would hold one sample: training
    BatchNorm cannot normalise a single volume whose feature map has shrunk to 1 x 1 x 1.
    """
    sampler: DistributedSampler[Any] = DistributedSampler(
        IndexedDataset(dataset),
        num_replicas=dist_info.world_size,
        rank=dist_info.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=False,
    )
    if drop_last == "single":
        drop_last = sampler.num_samples % batch_size == 1 and sampler.num_samples > 1
    workers = default_workers(device, dist_info.world_size) if workers is None else workers
    return DataLoader(
        sampler.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=bool(drop_last),
    )


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
    result equals a single-process run over the same data set.
    """
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
            x = prepare_batch(volumes, device, channels_last)
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
    parts = _gather(local)
    return _merge(parts)


def _iter(loader: DataLoader, progress: Any) -> Iterator[Any]:
    if progress is None:
        yield from loader
        return
    for item in loader:
        yield item
        progress.update(len(item[0]))


def _gather(local: Any) -> list[Any]:
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


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The paper's loss, computed in float32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float(), labels)
