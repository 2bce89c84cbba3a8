"""``VolumeDataset``: the volumes (or video clips) of an index, for a PyTorch DataLoader.

Each item is ``(volume, label, scan_id, patient_id)``. Volumes come from the files (decoded
with a :class:`~resnet3d.data.volumes.SliceStacker`) or from a uint8
:class:`~resnet3d.data.cache.VolumeCache`; videos can draw random clips each epoch."""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .._utils import check_choice
from ..errors import DatasetLayoutError
from .cache import VolumeCache
from .files import ScanFiles
from .index import ScanIndex, ScanRecord
from .readers import scan_files
from .split import SPLIT_NAMES, Split
from .video import ClipSampler
from .volumes import SliceStacker, convert_dtype

__all__ = [
    "CLIP_SAMPLING",
    "VolumeDataset",
]

logger = logging.getLogger(__name__)


#: How :class:`VolumeDataset` picks each sample's slices: fixed volumes or random starts.
CLIP_SAMPLING = ("uniform", "random")


class VolumeDataset(Dataset):
    """Every volume of every scan as one sample, as the paper trains and evaluates.

    Items are ``(volume, label, scan_id, patient_id)`` with ``volume`` a tensor of shape
    ``(C, D, H, W)`` in the stacker's dtype (float32 in ``[0, 1]`` by default). Slices are
    decoded on the fly (only the ``D`` slices of the requested volume) or, with ``cache``,
    read from a :class:`resnet3d.data.cache.VolumeCache` built with the same slice settings.
    :meth:`load_batch` reads a whole batch at once, optionally compact (gray as one channel,
    8-bit data as uint8): the library's trainer and evaluation move batches that way and
    restore the full volumes on the device.

    Without a cache, the first item of a scan validates the whole scan from its headers
    (:func:`resnet3d.data.readers.validate_scan`: one size, one bit depth, one frame per file,
    each slice number once, within the size limits), once per process, so a scan the cache
    build refuses is refused here with the same error, even when the item's own slices are
    fine.

    Args:
        index: A :class:`ScanIndex`, or a :class:`Split` together with ``split``.
        stacker: How scans become volumes (depth, size, channels, window, ...).
        split: With a :class:`Split`: which part, ``"train"``, ``"valid"`` or ``"test"``.
        cache: A :class:`~resnet3d.data.cache.VolumeCache` (or its folder) to read instead of
            decoding; it must hold every scan of the index.
        transform: Optional callable applied to each volume tensor.
        clip_sampling: Where each sample's ``depth`` slices (frames) start:
            ``"uniform"`` (default) takes :meth:`SliceStacker.volume_indices`, the same
            volumes every time; ``"random"`` draws new starts at every epoch
            (:meth:`set_epoch`), as pytorchvideo's random clip sampler does for training:
            a scan keeps its number of samples, and sample ``k`` of it starts at a random
            slice of the ``k``-th of that many equal segments of the possible starts
            (:func:`resnet3d.data.video.sample_clips` with ``start="random"``), so the samples
            stay spread over the video. A scan with one possible start (no longer than
            ``depth``) keeps its fixed volume. Works with a cache: it holds every frame.
        seed: With ``clip_sampling="random"``: the draws of an epoch are a pure function of
            ``(seed, epoch, scan position in the index)``, on any process and worker, so a
            resumed run sees exactly the clips an uninterrupted one would.

    Raises:
        ValueError: For a ``split`` without a :class:`Split`, an unknown split name, an
            unknown ``clip_sampling`` or a negative ``seed``.
        CacheError: If the cache was built with other slice settings or lacks a scan.

    Shape:
        Each item's volume: ``(C, D, H, W)``.
    """

    def __init__(
        self,
        index: ScanIndex | Split,
        stacker: SliceStacker | None = None,
        split: str | None = None,
        cache: VolumeCache | str | os.PathLike[str] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        clip_sampling: str = "uniform",
        seed: int = 0,
    ) -> None:
        check_choice("clip_sampling", clip_sampling, CLIP_SAMPLING)
        _check_seed(seed)
        self.clip_sampling = clip_sampling
        self.seed = seed
        self._epoch = _epoch_cell(clip_sampling)
        if isinstance(index, Split):
            if split is None:
                raise ValueError(f"index is a Split: pass split= one of {list(SPLIT_NAMES)}")
            index = index[split]
        elif split is not None:
            raise ValueError(
                "split= needs a Split as first argument (see split_by_patient), got a "
                f"{type(index).__name__}"
            )
        self.index: ScanIndex = index
        self.stacker = stacker if stacker is not None else SliceStacker()
        self.transform = transform
        if cache is not None and not hasattr(cache, "load"):
            cache = VolumeCache(cache)
        self.cache: VolumeCache | None = cache  # type: ignore[assignment]
        if self.cache is not None:
            self.cache.check(self.index, self.stacker)
        counts = [self.stacker.num_volumes(r.n_slices) for r in self.index]
        self._offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._files: dict[int, ScanFiles] = {}
        empty = [r for r, c in zip(self.index, counts) if c == 0]
        if empty:
            logger.warning(
                "%d scan(s) give no volume with depth=%d, remainder=%r (e.g. %s, %d slices)",
                len(empty),
                self.stacker.depth,
                self.stacker.remainder,
                empty[0].path,
                empty[0].n_slices,
            )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def epoch(self) -> int:
        """The epoch whose random clips the data set serves (see :meth:`set_epoch`)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Serve the clips of ``epoch`` (with ``clip_sampling="random"``; else a no-op).

        Call it before iterating, as ``DistributedSampler.set_epoch``; DataLoader workers
        see the new value (it is kept in shared memory).

        Raises:
            ValueError: If ``epoch`` is not an int >= 0.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch[0] = int(epoch)

    def with_clip_sampling(self, clip_sampling: str, seed: int = 0) -> VolumeDataset:
        """A copy of this data set that samples clips as given; this one is left as it is.

        The copy shares the index, stacker and cache (nothing is read again) and starts at
        epoch 0.

        Raises:
            ValueError: For an unknown ``clip_sampling`` or a negative ``seed``.
        """
        check_choice("clip_sampling", clip_sampling, CLIP_SAMPLING)
        _check_seed(seed)
        other = copy.copy(self)
        other.clip_sampling = clip_sampling
        other.seed = seed
        other._epoch = _epoch_cell(clip_sampling)
        return other

    def _random_seed(self, position: int) -> int | None:
        """Seed of the random starts of the scan at ``position`` this epoch (``None``: fixed)."""
        if self.clip_sampling == "uniform":
            return None
        # A pure function of (seed, epoch, scan position): not of the process, the worker or
        # the order items are asked in, so every rank, worker and resumed run agrees.
        entropy = np.random.SeedSequence([self.seed, self.epoch, position])
        return int(entropy.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))

    def _sampler(self, position: int, n_slices: int) -> ClipSampler | None:
        """The :class:`~resnet3d.data.video.ClipSampler` of a scan's samples (``None``: fixed)."""
        seed = self._random_seed(position)
        count = self.stacker.num_volumes(n_slices)
        if seed is None or n_slices <= self.stacker.depth or not count:
            return None  # one possible start (or none): nothing to draw
        return ClipSampler(clips=count, start="random", seed=seed)

    def _rows(self, position: int, n_slices: int) -> np.ndarray:
        """Slice numbers of every sample of the scan at ``position``, at the current epoch.

        Shape:
            ``(samples of the scan, depth)``.
        """
        sampler = self._sampler(position, n_slices)
        if sampler is None:
            return self.stacker.volume_indices(n_slices)
        return sampler.indices(n_slices, self.stacker.depth)

    @property
    def targets(self) -> np.ndarray:
        """Label of every sample (for weighted samplers and class counts)."""
        counts = np.diff(self._offsets)
        return np.repeat(np.asarray(self.index.labels, dtype=np.int64), counts)

    def _position(self, item: int) -> tuple[int, int]:
        """(row position in the index, volume number within the scan) of a sample."""
        n = len(self)
        if not isinstance(item, (int, np.integer)) or not -n <= item < n:
            raise IndexError(f"sample {item!r} out of range for {n} samples")
        item = int(item) % n
        scan = int(np.searchsorted(self._offsets, item, side="right") - 1)
        return scan, item - int(self._offsets[scan])

    def locate(self, item: int) -> tuple[ScanRecord, int, np.ndarray]:
        """Which scan and slices a sample comes from (to map predictions back to slices).

        Args:
            item: Sample number.

        Returns:
            ``(scan record, volume number within the scan, slice numbers of the volume)``;
            slice numbers index the scan's slices in order (``-1``: zero padding).

        Raises:
            IndexError: If ``item`` is out of range.
        """
        scan, volume = self._position(item)
        row = self.index[scan]
        return row, volume, self._rows(scan, row.n_slices)[volume]

    def slice_paths(self, item: int) -> list[Path | None]:
        """The slice files of a sample in depth order (``None`` for zero padding).

        For a NIfTI scan every entry is the volume file; for a video, the video file (the
        frame numbers are :meth:`locate`'s).
        """
        scan, volume = self._position(item)
        row = self.index[scan]
        files = self._scan_files(scan, row)
        indices = self._rows(scan, row.n_slices)[volume]
        if files.kind in ("nifti", "video"):
            return [files.path if i >= 0 else None for i in indices]
        return [files.slices[i] if i >= 0 else None for i in indices]

    def _scan_files(self, position: int, row: ScanRecord) -> ScanFiles:
        # scan_files validates the scan from its headers (the rules the cache build applies);
        # keeping its result validates each scan once per process, not once per item.
        files = self._files.get(position)
        if files is None:
            files = scan_files(row.path)
            if files.n_slices != row.n_slices:
                raise DatasetLayoutError(
                    f"{row.path}: the index says {row.n_slices} slices, the folder now has "
                    f"{files.n_slices}; rebuild the index",
                    path=row.path,
                )
            self._files[position] = files
        return files

    @property
    def channels(self) -> int:
        """Channels of every volume (the stacker's ``channels``): what the model takes."""
        return self.stacker.channels

    def _volume(self, item: int, compact: bool) -> tuple[np.ndarray, ScanRecord]:
        scan, volume = self._position(item)
        row = self.index[scan]
        sampler = self._sampler(scan, row.n_slices)
        if self.cache is not None:
            # The cache holds every frame: random clips are taken from it as they are.
            rows = None if sampler is None else self._rows(scan, row.n_slices)
            array = self.cache.load(row.key, [volume], self.stacker, compact=compact, rows=rows)[0]
        else:
            # Errors name the slice file; DataLoader workers re-raise them with the message.
            files = self._scan_files(scan, row)
            array = self.stacker.load(files, [volume], compact=compact, sampler=sampler)[0]
        return array, row

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, str, str]:
        array, row = self._volume(item, compact=False)
        tensor = torch.from_numpy(array)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, row.label_index, row.scan_id, row.patient_id

    def load_batch(
        self, items: Sequence[int], *, compact: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], tuple[str, ...]]:
        """Several samples at once, collated: what a DataLoader batch of them holds.

        The volumes are read straight into one batch tensor (in shared memory inside a
        DataLoader worker), so a batch is copied once instead of once per item and again to
        collate. :func:`resnet3d.engine.loader.make_loader` reads batches this way.

        Args:
            items: Sample numbers.
            compact: Send the volumes in their smallest exact form: gray scans as one
                channel, 8-bit data as uint8 (the cache always; decoded PNG/JPEG slices).
                :func:`resnet3d.engine.loader.prepare_batch` with ``channels=self.channels``
                restores exactly the ``compact=False`` batch on the device (repeated
                channels, ``x / 255``). A batch that mixes gray and colour scans, or 8-bit
                and deeper data, is widened to the common form on the host. Ignored when
                the data set has a ``transform`` (it sees the items as ``self[i]`` gives them).

        Returns:
            ``(volumes, labels, scan_ids, patient_ids)``, as ``default_collate`` would give
            for ``[self[i] for i in items]`` (with ``compact``: the compact volumes);
            labels are int64.

        Raises:
            IndexError: For a sample number out of range.

        Shape:
            volumes: ``(B, C, D, H, W)``; with ``compact``, ``C`` is 1 when every volume
            of the batch is gray.
        """
        if self.transform is not None:
            from torch.utils.data import default_collate

            volumes, labels, scans, patients = default_collate([self[i] for i in items])
            return volumes, labels, tuple(scans), tuple(patients)
        rows = [self.index[self._position(item)[0]] for item in items]
        volumes = None
        if compact and self.cache is not None:
            volumes = self._gray_from_cache(self.cache, items)
        if volumes is None:
            volumes = _stack_volumes([self._volume(item, compact)[0] for item in items])
        labels = torch.tensor([r.label_index for r in rows], dtype=torch.int64)
        return (
            volumes,
            labels,
            tuple(r.scan_id for r in rows),
            tuple(r.patient_id for r in rows),
        )

    def _gray_from_cache(self, cache: VolumeCache, items: Sequence[int]) -> torch.Tensor | None:
        """Compact gray volumes copied from the cache's memory maps into the batch, once.

        ``None`` when a scan is colour or sizes differ: the general path handles (or
        reports) those.
        """
        sources = []
        for item in items:
            scan, volume = self._position(item)
            slices = cache.slices(self.index[scan].key)
            if slices.ndim != 3:
                return None
            sources.append((slices, self._rows(scan, len(slices))[volume]))
        if not sources or len({s.shape[1:] for s, _ in sources}) != 1:
            return None
        depth = self.stacker.depth
        out = _empty_batch((len(sources), 1, depth, *sources[0][0].shape[1:]), torch.uint8)
        target = out.numpy()
        for k, (slices, idx) in enumerate(sources):
            # Indices are valid (the cache was checked against the index): no bounds buffer.
            np.take(slices, np.maximum(idx, 0), axis=0, out=target[k, 0], mode="clip")
            target[k, 0, idx < 0] = 0  # pad_mode="zero"
        return out


def _epoch_cell(clip_sampling: str) -> torch.Tensor:
    """Where a data set keeps its epoch: for random clips, in shared memory, because
    DataLoader workers (persistent ones too) hold a copy of the data set made once and must
    still see :meth:`VolumeDataset.set_epoch`'s value; uniform clips never read it."""
    cell = torch.zeros(1, dtype=torch.int64)
    return cell.share_memory_() if clip_sampling == "random" else cell


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _stack_volumes(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """One ``(B, C, D, H, W)`` tensor from ``(C, D, H, W)`` volumes, copied once.

    Compact volumes of one batch may differ in channels (gray 1, colour C) and dtype (uint8,
    float32): they are widened to the batch's largest channel count (repeating gray) and, if
    any is float, to float32 (``x / 255``, exactly as the stacker converts).
    """
    if not arrays:
        raise ValueError("a batch needs at least one volume")
    channels = max(a.shape[0] for a in arrays)
    rest = arrays[0].shape[1:]
    for a in arrays:
        if a.ndim != 4 or a.shape[1:] != rest or a.shape[0] not in (1, channels):
            raise ValueError(
                "volumes of one batch must share (D, H, W) and have 1 or "
                f"{channels} channels; got shapes {sorted({tuple(v.shape) for v in arrays})}"
            )
    wide = any(a.dtype != np.uint8 for a in arrays)
    out = _empty_batch((len(arrays), channels, *rest), torch.float32 if wide else torch.uint8)
    target = out.numpy()
    for k, a in enumerate(arrays):
        # numpy copies on one thread: torch's parallel copy stalls on a busy CPU, and
        # DataLoader workers run single-threaded anyway.
        np.copyto(target[k], convert_dtype(a, "float32") if wide else a)
    return out


def _empty_batch(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor; in a DataLoader worker, in shared memory.

    Sending a tensor to the main process moves it to shared memory first (a copy) unless it
    already lives there; ``default_collate`` allocates its batches this way too.
    """
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    proto = torch.empty(0, dtype=dtype)
    storage = proto._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return proto.new(storage).resize_(shape)
