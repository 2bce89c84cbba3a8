"""Running a model over a data set: batched, on any device, across ranks.

Shared by validation during training, ``resnet3d evaluate`` and ``resnet3d predict``. Items
of a data set are ``(volume, label, scan_id, patient_id)``; volumes may be float or uint8
(uint8 is moved to the device as is, the cheapest transfer, and scaled to [0, 1] there).

Loaders from :func:`make_loader` with ``compact=True`` (what the trainer and evaluation use)
read :class:`~resnet3d.data.index.VolumeDataset` batches in their smallest exact form: gray scans as
one channel, 8-bit data as uint8. :func:`prepare_batch` with ``channels=loader_channels(loader)``
turns them on the device into exactly the volumes the data set's stacker describes. The
channel count comes from the data (the stacker's ``channels``), never from the model, so a
model that takes other channels than the data has still fails as it would without compaction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

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
    """``device`` as a ``torch.device``; by default CUDA when present, else CPU.

    Raises:
        ValueError: If ``device`` is not a device or not available here (:func:`check_device`).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(device))


def check_device(device: str | torch.device) -> str | torch.device:
    """Return ``device`` unchanged if it names a device that this machine has.

    PyTorch's own errors come late and name neither the option nor what exists ("Torch not
    compiled with CUDA enabled" from deep inside ``.to()``, or "Expected one of cpu, cuda,
    ..." for ``"tpu"``), so a run is checked before any work.

    Raises:
        ValueError: If ``device`` is not a device string, or names CUDA (or an index) or MPS
            where it is not available; the message says what is available.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device {device!r} is not a device: use cpu, cuda, cuda:N or mps "
            f"(available here: {', '.join(available_devices())})"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU-only build" if torch.version.cuda is None else "no CUDA GPU visible"
            raise ValueError(
                f"device {device!r}: CUDA is not available here (torch {torch.__version__}, "
                f"{build}); use --device cpu, or leave --device out to pick CUDA when present"
            )
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device {device!r}: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device {device!r} is not supported by resnet3d: use cpu, cuda, cuda:N or mps "
            f"(available here: {', '.join(available_devices())})"
        )
    return device


def available_devices() -> list[str]:
    """The devices this machine offers: ``cpu`` and each CUDA device, or ``mps``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


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


def prepare_batch(
    volumes: Tensor,
    device: torch.device,
    channels_last: bool,
    channels: int | None = None,
) -> Tensor:
    """Move a batch to ``device`` and make it the model's float32 input there.

    uint8 volumes are moved as they are (the cheapest transfer) and scaled to ``[0, 1]`` on
    the device by a true division by 255 on every device, so they equal the stacker's
    float32 volumes bit for bit. A one-channel batch (gray volumes from a compact loader) is
    repeated to ``channels`` after scaling, in the copy that makes the batch contiguous.

    Args:
        volumes: ``(B, C, D, H, W)`` uint8 or float.
        device: Where the model runs.
        channels_last: Lay the batch out as ``channels_last_3d``.
        channels: Channels the volumes stand for (the data set's; see
            :func:`loader_channels`); ``None`` takes the batch as it is.

    Returns:
        The float32 batch on ``device``.

    Raises:
        ValueError: If ``channels`` is given and the batch has neither 1 nor ``channels``
            channels, or is not 5-D.

    Shape:
        ``(B, channels, D, H, W)``.
    """
    if channels is not None:
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be an int >= 1 or None, got {channels!r}")
        if volumes.ndim != 5 or volumes.shape[1] not in (1, channels):
            raise ValueError(
                f"a batch of {channels}-channel volumes must be (B, {channels}, D, H, W), or "
                f"(B, 1, D, H, W) for gray volumes sent compact; got {tuple(volumes.shape)}"
            )
    volumes = volumes.to(device, non_blocking=True)
    if volumes.dtype == torch.uint8:
        # By a device tensor, not a Python number: CUDA multiplies by the reciprocal of a
        # scalar, which differs from x / 255 in the last bit for about half the levels.
        volumes = volumes.float().div_(torch.full((), 255.0, device=volumes.device))
    elif volumes.dtype != torch.float32:
        volumes = volumes.float()
    memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
    if channels is not None and volumes.shape[1] != channels:
        # A stride-0 view: the copy below writes every channel.
        volumes = volumes.expand(-1, channels, -1, -1, -1)
        return volumes.contiguous(memory_format=memory_format)
    if channels_last:
        volumes = volumes.contiguous(memory_format=memory_format)
    return volumes


@dataclass
class _FetchedBatch:
    """A batch a data set read at once (``load_batch``), as a worker sends it.

    One tensor (the volumes); indices and labels travel as lists. Every tensor a worker
    sends costs a round trip to fetch its shared-memory handle, which on a busy machine
    takes longer than reading a batch from the cache. :class:`VolumeLoader` turns it into
    the ``default_collate`` structure in the receiving process.
    """

    indices: list[int]
    volumes: Tensor
    labels: list[int]
    scan_ids: tuple[str, ...]
    patient_ids: tuple[str, ...]

    def pin_memory(self) -> _FetchedBatch:  # called by the DataLoader's pinning thread
        return dataclasses.replace(self, volumes=self.volumes.pin_memory())

    def collated(self) -> list[Any]:
        return [
            torch.tensor(self.indices, dtype=torch.int64),
            [
                self.volumes,
                torch.tensor(self.labels, dtype=torch.int64),
                self.scan_ids,
                self.patient_ids,
            ],
        ]


class IndexedDataset(Dataset):
    """Wraps a data set so that every item also carries its index (to undo sampler padding).

    A data set with a ``load_batch(items, compact=...)`` method (such as
    :class:`~resnet3d.data.index.VolumeDataset`) is read a batch at a time: the DataLoader calls
    :meth:`__getitems__`, and :class:`VolumeLoader` delivers the same structure as
    ``default_collate`` of the items.

    Args:
        dataset: The data set.
        compact: Ask ``load_batch`` for compact volumes (see :func:`loader_channels`).
    """

    def __init__(self, dataset: Dataset, compact: bool = False) -> None:
        self.dataset = dataset
        self.compact = compact

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]

    def __getitems__(self, indices: list[int]) -> Any:
        load = getattr(self.dataset, "load_batch", None)
        if load is None:
            return [(i, self.dataset[i]) for i in indices]
        volumes, labels, scan_ids, patient_ids = load(indices, compact=self.compact)
        return _FetchedBatch(
            [int(i) for i in indices],
            volumes,
            torch.as_tensor(labels).tolist(),  # one call: iterating a tensor is slow
            tuple(scan_ids),
            tuple(patient_ids),
        )

    @property
    def channels(self) -> int | None:
        """Channels to restore on the device, or ``None`` when batches arrive complete."""
        if not self.compact or not hasattr(self.dataset, "load_batch"):
            return None
        channels = getattr(self.dataset, "channels", None)
        return None if channels is None else int(channels)


def _collate(data: Any) -> Any:
    """Batches read at once pass as they are; items go to ``default_collate``."""
    return data if isinstance(data, _FetchedBatch) else default_collate(data)


class VolumeLoader(DataLoader):
    """The DataLoader :func:`make_loader` returns: batches read at once arrive collated.

    Every batch is ``[indices, [volumes, labels, scan_ids, patient_ids]]``, the structure
    ``default_collate`` gives for :class:`IndexedDataset` items.
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for batch in super().__iter__():
            yield batch.collated() if isinstance(batch, _FetchedBatch) else batch


def loader_channels(loader: DataLoader) -> int | None:
    """The ``channels`` argument of :func:`prepare_batch` for a :func:`make_loader` loader.

    The data set's channel count (its stacker's) when the loader sends volumes compact,
    else ``None``.
    """
    dataset = loader.dataset
    return dataset.channels if isinstance(dataset, IndexedDataset) else None


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
    compact: bool = False,
) -> DataLoader:
    """A DataLoader over ``IndexedDataset(dataset)`` with a ``DistributedSampler``.

    Batches are ``[indices, [volumes, labels, scan_ids, patient_ids]]``. A data set with a
    ``load_batch`` method (:class:`~resnet3d.data.index.VolumeDataset`) is read a batch at a time,
    straight into one tensor. With ``compact=True`` its volumes travel in their smallest
    exact form (gray as one channel, 8-bit data as uint8); pass
    ``channels=loader_channels(loader)`` to :func:`prepare_batch` to restore them on the
    device. The trainer, evaluation and :func:`predict_loader` do.

    The sampler is used for one process too: its order depends only on ``seed`` and the epoch
    set with ``sampler.set_epoch``, which is what makes a resumed run repeat an
    uninterrupted one exactly.

    ``drop_last="single"`` drops the last batch only when it would hold one sample: training
    BatchNorm cannot normalise a single volume whose feature map has shrunk to 1 x 1 x 1.
    """
    sampler: DistributedSampler[Any] = DistributedSampler(
        IndexedDataset(dataset, compact=compact),
        num_replicas=dist_info.world_size,
        rank=dist_info.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=False,
    )
    if drop_last == "single":
        drop_last = sampler.num_samples % batch_size == 1 and sampler.num_samples > 1
    workers = default_workers(device, dist_info.world_size) if workers is None else workers
    return VolumeLoader(
        sampler.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        drop_last=bool(drop_last),
        collate_fn=_collate,
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


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The paper's loss, computed in float32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float(), labels)
