"""DataLoaders of volumes and the transport of their batches to the device.

Volumes travel in their smallest exact form (uint8, one channel where the model takes three)
and are converted on the device (:func:`prepare_batch`), so a loader moves up to 12x fewer
bytes than float32 RGB."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from .._utils import usable_cpus
from .distributed import DistInfo

__all__ = [
    "IndexedDataset",
    "VolumeLoader",
    "default_workers",
    "loader_channels",
    "make_loader",
    "prepare_batch",
]


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
    :class:`~resnet3d.data.dataset.VolumeDataset`) is read a batch at a time: the DataLoader calls
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
    return max(1, min(8, usable_cpus() // max(1, world_size) - 1))


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
    ``load_batch`` method (:class:`~resnet3d.data.dataset.VolumeDataset`) is read a batch at a time,
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
