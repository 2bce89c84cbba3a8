"""Slice stacking: one CT scan on disk to the paper's ``(N, C, D, H, W)`` volumes.

The paper (Li, Pei and Guo 2021, "Preprocessing") brings every slice to ``512 x 512 x 3`` and stacks
``n`` consecutive slices of a scan into one ``C x D x H x W`` volume; every volume is one
sample. :class:`SliceStacker` does exactly that, configurably, and :func:`load_scan` is the
one-line form::

    vol = resnet3d.data.volumes.load_scan("scans/NCP/12/3104", depth=4)   # (N, 3, 4, 512, 512)

A video file (``.mp4``, ``.avi``, ``.mkv``, ``.webm``, ...; PyAV needed) is a scan whose
slices are its frames (:mod:`resnet3d.data.video`)::

    clips = resnet3d.data.volumes.load_scan("clip.mp4", depth=16, size=112)  # (N, 3, 16, 112, 112)

gives consecutive clips covering the video, as slices give volumes; a
:class:`~resnet3d.data.video.ClipSampler` (``sampler=``) takes a few clips instead, decoding only
their frames.

Before any slice is decoded, the scan is validated from its headers alone
(:func:`resnet3d.data.readers.validate_scan`: one size, one bit depth and one frame per file, each
slice number once) and checked against the size limits (``max_pixels``, ``max_voxels``,
``max_bytes``), with or without a cache behind it.

Pipeline per slice (run in a thread pool; Pillow releases the GIL while decoding):

1. decode at native bit depth (:mod:`resnet3d.data.readers`): 8-bit gray stays gray, colour stays
   RGB, 16-bit and DICOM/NIfTI Hounsfield units are never reduced to 8 bits;
2. resize with Pillow when the slice is not already ``size`` (8-bit data in its own mode,
   anything deeper as 32-bit float);
3. map intensities to ``[0, 1]``: 8-bit data pass through (``x / 255``); deeper data go
   through a CT window (:data:`WINDOWS`) or, without one, a fixed range (see
   :meth:`SliceStacker.prepare`);
4. apply the channel policy: 3 channels (RGB as stored, gray repeated), 1 channel (gray,
   colour converted with ITU-R 601-2 luma) or one channel per window.

Output dtype is ``float32`` in ``[0, 1]`` by default, or ``uint8`` in ``[0, 255]`` with
``dtype="uint8"`` (the cache's storage format; divide by 255 on the device). For 8-bit
sources both are exact; for deeper sources ``uint8`` rounds to the nearest of 256 levels.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import einops
import numpy as np
from PIL import Image

from .. import presets
from .._utils import check_choice, did_you_mean, usable_cpus
from ..errors import CorruptSliceError, DatasetLayoutError, InconsistentScanError
from .dicom import decode_dicom
from .files import DEFAULT_MAX_PIXELS, ScanFiles, is_video_name, refuse_pixels
from .images import decoded_image, describe_unknown, sniff
from .nifti import read_nifti
from .readers import check_scan_size, classify, list_slices, scan_files, validate_scan

if TYPE_CHECKING:
    import torch

    from .video import ClipSampler

__all__ = [
    "DEFAULT_HU_RANGE",
    "WINDOWS",
    "ScanFiles",
    "SliceStacker",
    "apply_window",
    "convert_dtype",
    "list_slices",
    "load_scan",
    "resolve_window",
    "scan_files",
]

logger = logging.getLogger(__name__)

#: Named CT windows as ``(center, width)`` in Hounsfield units. A window maps
#: ``[center - width / 2, center + width / 2]`` linearly onto ``[0, 1]`` and clips outside.
WINDOWS: Mapping[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "soft_tissue": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}

#: Range used for Hounsfield-unit data (DICOM, NIfTI, float arrays) when no window is given:
#: the 12-bit CT range ``[-1024, 3071]`` HU mapped linearly onto ``[0, 1]``.
DEFAULT_HU_RANGE: tuple[float, float] = (-1024.0, 3071.0)

WindowLike = str | tuple[float, float]
WindowSpec = WindowLike | tuple[WindowLike, ...] | None
Domain = Literal["u8", "u16", "int", "float", "hu"]

_REMAINDERS = ("drop", "pad", "overlap")
_PAD_MODES = ("edge", "zero")
_DTYPES = ("float32", "uint8")
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
#: Resampling done with torch instead of Pillow: bilinear without antialiasing, as
#: torchvision's video transforms resize (``presets.resize_bilinear``).
_TORCH_BILINEAR = "torch_bilinear"

T = TypeVar("T")
R = TypeVar("R")


def default_threads() -> int:
    """Threads used to decode one scan when ``threads`` is not set: the usable CPUs, at most 16.

    Returns:
        A positive thread count.
    """
    return max(1, min(16, usable_cpus()))


def resolve_window(window: WindowLike) -> tuple[float, float]:
    """Turn a window name or ``(center, width)`` pair into ``(center, width)`` floats.

    Args:
        window: A key of :data:`WINDOWS` or a ``(center, width)`` pair in the data's units.

    Returns:
        ``(center, width)``.

    Raises:
        ValueError: For an unknown name or a width that is not positive.
        TypeError: For anything else.
    """
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(
                f"unknown window {window!r}; choose one of {sorted(WINDOWS)} or give "
                "(center, width)." + did_you_mean(window, WINDOWS)
            )
        return WINDOWS[window]
    if (
        isinstance(window, Sequence)
        and len(window) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
    ):
        center, width = float(window[0]), float(window[1])
        if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
            raise ValueError(f"window (center, width) needs a finite width > 0, got {window!r}")
        return center, width
    raise TypeError(f"a window is a name in {sorted(WINDOWS)} or (center, width), got {window!r}")


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map ``[center - width/2, center + width/2]`` linearly onto ``[0, 1]``, clipping outside.

    Args:
        values: Any real array, e.g. Hounsfield units.
        center: Window center, in the units of ``values``.
        width: Window width (> 0).

    Returns:
        A float32 array of the same shape with values in ``[0, 1]``.
    """
    low = center - width / 2.0
    out = np.subtract(values, np.float32(low), dtype=np.float32)
    out *= np.float32(1.0 / width)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _is_pair(window: Any) -> bool:
    """Whether a window spec is one ``(center, width)`` pair of numbers."""
    return (
        isinstance(window, Sequence)
        and not isinstance(window, str)
        and len(window) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in window)
    )


def _normalize_window(window: Any) -> WindowSpec:
    """Canonical, hashable, JSON-able form of a window spec (lists become tuples)."""
    if window is None or isinstance(window, str):
        if isinstance(window, str):
            resolve_window(window)
        return window
    if _is_pair(window):
        center, width = resolve_window(tuple(window))
        return (center, width)
    if isinstance(window, Sequence) and len(window) >= 1:
        items: list[WindowLike] = []
        for item in window:
            if isinstance(item, str):
                resolve_window(item)
                items.append(item)
            elif isinstance(item, Sequence):
                items.append(resolve_window(tuple(item)))
            else:
                raise TypeError(
                    f"window must be a name, (center, width), or a sequence of those; "
                    f"got {window!r}"
                )
        if len(items) == 1:
            return items[0]
        return tuple(items)
    raise TypeError(
        f"window must be None, a name in {sorted(WINDOWS)}, (center, width), or a sequence of "
        f"those (one channel each); got {window!r}"
    )


def _map_threads(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(fn, items))


@dataclass(frozen=True)
class SliceStacker:
    """Turn a scan (folder of slices or NIfTI file) into volumes of ``depth`` slices.

    A frozen, JSON-able description of the preprocessing: :meth:`to_dict` and
    :meth:`from_dict` round-trip it, and pretrained weights store it as their input spec.
    Call it on a scan to get a tensor; use :meth:`load` for numpy, :meth:`stack_array` for
    slices you already have in memory, and :meth:`volume_indices` to map volumes back to the
    scan's slice numbers.

    Args:
        depth: Slices per volume (``D``). The paper uses 4.
        stride: First-slice distance between consecutive volumes; ``None`` means ``depth``
            (non-overlapping, as in the paper). Smaller values overlap volumes, larger values
            skip slices.
        size: ``(H, W)`` every slice is resized to (an int means square); ``None`` keeps the
            native size, which must then be the same for every slice of a scan.
        channels: ``3`` (RGB as stored, gray repeated: the paper), ``1`` (gray; colour
            converted with ITU-R 601-2 luma), or the number of windows when ``window`` lists
            several (one window per channel).
        window: CT window(s) for data deeper than 8 bits: ``None``, a name in
            :data:`WINDOWS`, ``(center, width)``, or a sequence of those (one per channel).
            8-bit images are already windowed and pass through unchanged.
        remainder: What to do with trailing slices that do not fill a volume (and with scans
            shorter than ``depth``): ``"drop"`` them; ``"pad"`` them into one last volume
            (see ``pad_mode``); ``"overlap"``: add one last volume made of the last ``depth``
            slices, overlapping the previous one (a scan shorter than ``depth`` is padded).
        pad_mode: How ``"pad"`` fills a volume: ``"edge"`` repeats the last slice,
            ``"zero"`` appends black slices.
        resample: Pillow filter for resizing: ``"nearest"``, ``"bilinear"``, ``"bicubic"``,
            ``"lanczos"``, ``"box"`` or ``"hamming"``; or ``"torch_bilinear"``: bilinear
            without antialiasing as ``torch.nn.functional.interpolate`` computes it, 8-bit
            results rounded to the nearest level (what torchvision's video weights
            transforms do; see :mod:`resnet3d.presets`).
        dtype: ``"float32"`` in ``[0, 1]`` (or normalised, with ``mean`` and ``std``) or
            ``"uint8"`` in ``[0, 255]`` (never normalised: the levels a cache stores).
        crop: ``(H, W)`` (an int means square) of a centre crop taken after resizing,
            placed as torchvision's ``center_crop`` places it; ``None`` (default) keeps the
            whole slice. Must not exceed ``size``.
        mean: Per-channel values subtracted from float32 volumes (after scaling to
            ``[0, 1]``), one per channel; ``None`` (default) leaves them in ``[0, 1]``.
            Given together with ``std``.
        std: Per-channel values the float32 volumes are then divided by (each > 0).
        max_pixels: Largest slice accepted; larger files are rejected before decoding. Not
            part of the spec (:meth:`to_dict`), not compared.
        max_voxels: Largest scan accepted, in voxels as its headers declare (slices x rows x
            columns); ``None`` uses ``RESNET3D_MAX_VOXELS`` or
            :data:`~resnet3d.data.readers.DEFAULT_MAX_VOXELS` (512 x 512 x 4096). Checked before
            any data is read. Not part of the spec, not compared.
        max_bytes: Largest scan accepted, in bytes as stored; ``None`` uses
            ``RESNET3D_MAX_BYTES`` or :data:`~resnet3d.data.readers.DEFAULT_MAX_BYTES` (4 GiB).
            Not part of the spec, not compared.
        threads: Decoding threads per scan; ``None`` uses :func:`default_threads`. Not part
            of the spec, not compared.

    Raises:
        ValueError: For an invalid value (the message lists what is allowed).
        TypeError: For a value of the wrong type.
    """

    depth: int = 4
    stride: int | None = None
    size: int | tuple[int, int] | None = (512, 512)
    channels: int = 3
    window: WindowSpec = None
    remainder: str = "drop"
    pad_mode: str = "edge"
    resample: str = "bilinear"
    dtype: str = "float32"
    crop: int | tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, compare=False)
    max_voxels: int | None = field(default=None, compare=False)
    max_bytes: int | None = field(default=None, compare=False)
    threads: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

        positive_int("depth", self.depth)
        if self.stride is not None:
            positive_int("stride", self.stride)
        size: Any = self.size
        if size is not None:
            if isinstance(size, int) and not isinstance(size, bool):
                size = (size, size)
            if not isinstance(size, Sequence) or len(size) != 2:
                raise ValueError(f"size must be an int, (H, W) or None, got {self.size!r}")
            for v in size:
                positive_int("size", v)
            object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        object.__setattr__(self, "window", _normalize_window(self.window))
        positive_int("channels", self.channels)
        n_windows = len(self.windows)
        if n_windows > 1 and self.channels != n_windows:
            raise ValueError(
                f"window lists {n_windows} windows, one per channel, so channels must be "
                f"{n_windows}; got channels={self.channels}"
            )
        if n_windows <= 1 and self.channels not in (1, 3):
            raise ValueError(
                f"channels must be 1 or 3 (or the number of windows when window lists "
                f"several), got {self.channels}"
            )
        check_choice("remainder", self.remainder, _REMAINDERS)
        check_choice("pad_mode", self.pad_mode, _PAD_MODES)
        check_choice("resample", self.resample, (*_RESAMPLE, _TORCH_BILINEAR))
        check_choice("dtype", self.dtype, _DTYPES)
        self._check_crop_and_normalisation()
        positive_int("max_pixels", self.max_pixels)
        for name in ("max_voxels", "max_bytes", "threads"):
            if getattr(self, name) is not None:
                positive_int(name, getattr(self, name))

    def _check_crop_and_normalisation(self) -> None:
        crop: Any = self.crop
        if crop is not None:
            if isinstance(crop, int) and not isinstance(crop, bool):
                crop = (crop, crop)
            if (
                not isinstance(crop, Sequence)
                or len(crop) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in crop)
            ):
                raise ValueError(f"crop must be an int >= 1, (H, W) or None, got {self.crop!r}")
            crop = (int(crop[0]), int(crop[1]))
            hw = self.hw
            if hw is not None and (crop[0] > hw[0] or crop[1] > hw[1]):
                raise ValueError(f"crop {crop} (H, W) is larger than size {hw}")
            object.__setattr__(self, "crop", crop)
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                f"mean and std are given together (or neither); got mean={self.mean!r}, "
                f"std={self.std!r}"
            )
        for name in ("mean", "std"):
            values: Any = getattr(self, name)
            if values is None:
                continue
            if (
                isinstance(values, str)
                or not isinstance(values, Sequence)
                or len(values) != self.channels
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in values
                )
            ):
                raise ValueError(
                    f"{name} must list one finite number per channel ({self.channels}), got "
                    f"{values!r}"
                )
            if name == "std" and any(v <= 0 for v in values):
                raise ValueError(f"std values must be > 0, got {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SliceStacker:
        """A stacker from a named preset of :mod:`resnet3d.presets`.

        Example::

            stacker = SliceStacker.from_preset("kinetics400")  # torchvision's video weights
            clips = stacker("clip.mp4")                          # (N, 3, 16, 112, 112)

        Args:
            name: A key of :data:`resnet3d.presets.PRESETS`, e.g. ``"kinetics400"``.
            **overrides: Fields to set on top (``depth``, ``threads``, ...).

        Returns:
            The stacker.

        Raises:
            ValueError: For an unknown preset (closest names listed) or field.
        """
        return cls.from_dict(presets.get_preset(name), **overrides)

    # -- spec -----------------------------------------------------------------------------

    @property
    def windows(self) -> tuple[tuple[float, float], ...]:
        """The resolved ``(center, width)`` windows, one per channel; empty without a window."""
        if self.window is None:
            return ()
        if isinstance(self.window, str) or _is_pair(self.window):
            return (resolve_window(self.window),)  # type: ignore[arg-type]
        return tuple(resolve_window(w) for w in self.window)  # type: ignore[arg-type]

    @property
    def hw(self) -> tuple[int, int] | None:
        """``size`` as an ``(H, W)`` tuple, or ``None`` for native size."""
        return self.size  # type: ignore[return-value]  # normalized in __post_init__

    @property
    def step(self) -> int:
        """The effective stride (``stride`` or ``depth``)."""
        return self.depth if self.stride is None else self.stride

    def to_dict(self) -> dict[str, Any]:
        """The preprocessing spec as a JSON-able dict (without ``threads`` and ``max_pixels``).

        ``crop``, ``mean`` and ``std`` appear only when set, so specs without them read as
        they always have.

        Returns:
            A dict that :meth:`from_dict` turns back into an equal stacker.
        """
        window: Any = self.window
        if isinstance(window, tuple):
            window = (
                list(window)
                if _is_pair(window)
                else [list(w) if isinstance(w, tuple) else w for w in window]
            )
        spec: dict[str, Any] = {
            "depth": self.depth,
            "stride": self.stride,
            "size": None if self.hw is None else list(self.hw),
            "channels": self.channels,
            "window": window,
            "remainder": self.remainder,
            "pad_mode": self.pad_mode,
            "resample": self.resample,
            "dtype": self.dtype,
        }
        if self.crop is not None:
            spec["crop"] = list(self.crop)  # type: ignore[arg-type]  # a pair after __post_init__
        if self.mean is not None and self.std is not None:
            spec["mean"], spec["std"] = list(self.mean), list(self.std)
        return spec

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], **overrides: Any) -> SliceStacker:
        """Build a stacker from :meth:`to_dict` output (e.g. read from JSON).

        Args:
            spec: The dict; JSON lists are accepted where tuples are expected.
            **overrides: Fields to set on top, e.g. ``threads=4``.

        Returns:
            The stacker.

        Raises:
            ValueError: For an unknown key (naming the closest field) or an invalid value.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        merged = {**dict(spec), **overrides}
        for key in merged:
            if key not in names:
                raise ValueError(
                    f"unknown SliceStacker field {key!r}; fields are {names}."
                    + did_you_mean(key, names)
                )
        for key in ("size", "crop", "mean", "std"):
            if isinstance(merged.get(key), list):
                merged[key] = tuple(merged[key])
        return cls(**merged)

    def replace(self, **changes: Any) -> SliceStacker:
        """A copy with some fields changed (``dataclasses.replace``), validated again."""
        return dataclasses.replace(self, **changes)

    def slice_spec(self) -> dict[str, Any]:
        """The fields that decide how each slice is prepared (not how slices are grouped).

        Two stackers with the same slice spec produce the same prepared slices, so a volume
        cache built with one serves the other whatever their depth, stride or remainder.
        """
        spec = self.to_dict()
        return {k: spec[k] for k in ("size", "channels", "window", "resample", "crop") if k in spec}

    # -- volume layout --------------------------------------------------------------------

    def volume_indices(self, n_slices: int) -> np.ndarray:
        """Slice numbers of every volume, so results can be mapped back to the scan.

        Regular volumes start at ``0, stride, 2 * stride, ...`` while they fit. Slices left
        after the last one (and every slice of a scan shorter than ``depth``) follow
        ``remainder``; padding slices are the last slice's number (``pad_mode="edge"``) or
        ``-1`` (``pad_mode="zero"``: an all-zero slice).

        Args:
            n_slices: Slices in the scan.

        Returns:
            An int64 array; row ``i`` holds the slice numbers of volume ``i`` in depth order.

        Shape:
            ``(N, depth)``.

        Raises:
            ValueError: If ``n_slices`` is negative.
        """
        if not isinstance(n_slices, (int, np.integer)) or n_slices < 0:
            raise ValueError(f"n_slices must be an int >= 0, got {n_slices!r}")
        n, d, s = int(n_slices), self.depth, self.step
        starts = list(range(0, n - d + 1, s)) if n >= d else []
        rows = [list(range(a, a + d)) for a in starts]
        next_start = starts[-1] + s if starts else 0
        covered_to = starts[-1] + d if starts else 0
        # A tail is left when slices after the last volume's end exist; with stride > depth
        # the gaps between volumes are skipped on purpose and only a partial volume that
        # would start at the next stride counts.
        if next_start < n and covered_to < n and self.remainder != "drop":
            if self.remainder == "overlap" and n >= d:
                rows.append(list(range(n - d, n)))
            else:  # "pad", or "overlap" on a scan shorter than depth
                tail = list(range(next_start, n))
                fill = n - 1 if self.pad_mode == "edge" else -1
                rows.append(tail + [fill] * (d - len(tail)))
        if not rows:
            return np.zeros((0, d), dtype=np.int64)
        return np.asarray(rows, dtype=np.int64)

    def num_volumes(self, n_slices: int) -> int:
        """How many volumes a scan of ``n_slices`` slices gives (see :meth:`volume_indices`)."""
        return int(self.volume_indices(n_slices).shape[0])

    # -- reading --------------------------------------------------------------------------

    def _threads(self) -> int:
        return default_threads() if self.threads is None else self.threads

    def _prepare_image(self, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode, resize and map one image slice; returns (array, original (H, W))."""
        want_gray = self.channels == 1 or len(self.windows) > 1
        with decoded_image(path, self.max_pixels) as norm:
            width, height = norm.size
            if norm.mode in ("L", "RGB"):
                if want_gray and norm.mode == "RGB":
                    norm = norm.convert("L")
                hw = self.hw
                if hw is not None and (height, width) != hw and self.resample in _RESAMPLE:
                    norm = norm.resize((hw[1], hw[0]), _RESAMPLE[self.resample])
                out = self._torch_resize_and_crop(np.asarray(norm))
                if len(self.windows) > 1:
                    out = np.repeat(out[..., None], len(self.windows), axis=-1)
                return out, (height, width)
            raw = np.asarray(norm)
        domain: Domain = "u16" if raw.dtype == np.uint16 else "int"
        if raw.dtype.kind == "f":
            domain = "float"
        return self._map_deep(raw.astype(np.float32), domain), (height, width)

    def _resize_float(self, values: np.ndarray) -> np.ndarray:
        hw = self.hw
        if hw is None or values.shape[:2] == hw or self.resample not in _RESAMPLE:
            return self._torch_resize_and_crop(values)
        im = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
        resized = np.asarray(im.resize((hw[1], hw[0]), _RESAMPLE[self.resample]))
        return self._torch_resize_and_crop(resized)

    def _torch_resize_and_crop(self, image: np.ndarray) -> np.ndarray:
        """The resize Pillow does not do (``"torch_bilinear"``), then the centre crop."""
        hw = self.hw
        if self.resample == _TORCH_BILINEAR and hw is not None and image.shape[:2] != hw:
            image = presets.resize_bilinear(image, hw)
        if self.crop is not None:
            image = np.ascontiguousarray(presets.center_crop(image, self.crop))  # type: ignore[arg-type]
        return image

    def _map_deep(self, values: np.ndarray, domain: Domain) -> np.ndarray:
        """Resize then window a float32 ``(H, W)`` slice of deeper-than-8-bit data."""
        values = self._resize_float(values)
        windows = self.windows
        if windows:
            mapped = [apply_window(values, c, w) for c, w in windows]
            return mapped[0] if len(mapped) == 1 else np.stack(mapped, axis=-1)
        if domain in ("u16", "int"):
            return apply_window(values, 65535.0 / 2.0, 65535.0)
        if domain == "float":
            return np.clip(values, 0.0, 1.0).astype(np.float32, copy=False)
        low, high = DEFAULT_HU_RANGE
        return apply_window(values, (low + high) / 2.0, high - low)

    def _prepare_file(self, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
        kind = sniff(path)
        if kind == "dicom":
            # The scan's headers were checked (_checked) before any slice is read.
            hu = decode_dicom(path, self.max_pixels)
            shape = (int(hu.shape[0]), int(hu.shape[1]))
            return self._map_deep(hu, "hu"), shape
        if kind is None:
            raise CorruptSliceError(f"{path}: {describe_unknown(path)}", path=path)
        return self._prepare_image(path)

    def read_files(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Decode and prepare the given slice files (in the given order), in parallel.

        The files are validated as one scan first (:func:`~resnet3d.data.readers.validate_scan`,
        headers only) and checked against the size limits.

        Args:
            paths: Slice files of one scan.

        Returns:
            Prepared slices in this stacker's dtype: ``(S, H, W)`` when every slice is gray
            (channels are added when stacking), else ``(S, H, W, C)``.

        Raises:
            CorruptSliceError: Naming the first file that cannot be decoded.
            ImageTooLargeError: For a slice or a scan above the limits, before decoding it.
            InconsistentScanError: If the slices differ in size, bit depth or kind, or name
                one slice number twice.
            UnsupportedFormatError: For a multi-page or multi-frame file.
        """
        files = [Path(p) for p in paths]
        if not files:
            raise ValueError("read_files needs at least one slice file")
        kind, _ = classify(files, files[0].parent)
        scan = self._checked(ScanFiles(files[0].parent, kind, tuple(files), len(files)))
        return self._read_files(scan.slices)

    def _read_files(self, files: Sequence[Path], keep_uint8: bool = False) -> np.ndarray:
        results = _map_threads(self._prepare_file, files, self._threads())
        return self._assemble([r[0] for r in results], [r[1] for r in results], files, keep_uint8)

    def _assemble(
        self,
        arrays: list[np.ndarray],
        shapes: list[tuple[int, int]],
        files: Sequence[Path],
        keep_uint8: bool = False,
    ) -> np.ndarray:
        first = shapes[0]
        for shape, path in zip(shapes, files):
            if shape != first:
                raise InconsistentScanError(
                    f"{path}: slice is {shape[1]}x{shape[0]} (WxH) but {files[0].name!r} of "
                    f"the same scan is {first[1]}x{first[0]}; all slices of a scan must have "
                    "one size",
                    path=path,
                )
        if any(a.ndim == 3 for a in arrays) and any(a.ndim == 2 for a in arrays):
            # Gray and colour slices in one scan (e.g. PNG gray + JPEG RGB): repeat the gray.
            arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=-1) for a in arrays]
        if any(a.dtype != np.uint8 for a in arrays):
            arrays = [_to_float(a) for a in arrays]
        stacked = np.stack(arrays)
        if keep_uint8 and stacked.dtype == np.uint8:
            return stacked  # 8-bit slices stay 8-bit (compact volumes): scaled on the device
        return convert_dtype(stacked, self.dtype)

    def read(self, scan: str | os.PathLike[str] | ScanFiles) -> np.ndarray:
        """Prepare every slice of a scan (no stacking).

        Args:
            scan: A folder of slices, a NIfTI file, or :func:`scan_files` output.

        Returns:
            Prepared slices as :meth:`read_files` returns them.

        Shape:
            ``(S, H, W)`` or ``(S, H, W, C)``.

        Raises:
            DatasetLayoutError: If the scan has no slices.
            CorruptSliceError, InconsistentScanError: As :meth:`read_files`.
        """
        files = self._checked(scan)
        return self._read_selected(files, np.arange(files.n_slices))

    def _checked(self, scan: str | os.PathLike[str] | ScanFiles) -> ScanFiles:
        """The scan listed and validated (headers only), checked against the size limits.

        Every read goes through here, with or without a cache build behind it, so every path
        applies the same rules. A :class:`ScanFiles` from :func:`scan_files` is already
        validated (the validation is cached in it); only the limits, plain arithmetic, are
        checked again.
        """
        if not isinstance(scan, ScanFiles) and is_video_name(os.fspath(scan)):
            from .video import video_scan

            if Path(scan).is_file():  # probed with this stacker's frame limit
                scan = video_scan(scan, self.max_pixels)
        files = scan if isinstance(scan, ScanFiles) else scan_files(scan)
        if files.n_slices == 0:
            raise DatasetLayoutError(f"{files.path}: scan has no slices", path=files.path)
        if files.header is None:
            files = validate_scan(files)
        if files.kind == "video" and files.header is not None:
            # A video is checked frame by frame here, and the frames it will hold when read
            # (video.read_frames): a few clips of a long video are not the whole video.
            _, height, width = files.header.shape
            refuse_pixels(files.path, width, height, self.max_pixels)
            return files
        check_scan_size(
            files, self.max_pixels, max_voxels=self.max_voxels, max_bytes=self.max_bytes
        )
        return files

    def _read_selected(
        self, files: ScanFiles, which: np.ndarray, keep_uint8: bool = False
    ) -> np.ndarray:
        if files.kind == "nifti":
            hu = read_nifti(
                files.path, self.max_pixels, max_voxels=self.max_voxels, max_bytes=self.max_bytes
            )
            return self.prepare(hu[which], domain="hu")
        if files.kind == "video":
            from .video import read_frames

            frames = read_frames(
                files.path,
                which,
                max_pixels=self.max_pixels,
                max_voxels=self.max_voxels,
                max_bytes=self.max_bytes,
            )
            return (self.replace(dtype="uint8") if keep_uint8 else self).prepare(frames)
        return self._read_files([files.slices[i] for i in which], keep_uint8)

    def prepare(self, slices: np.ndarray, domain: str = "auto") -> np.ndarray:
        """Resize and intensity-map slices already in memory (what reading does per file).

        Args:
            slices: ``(S, H, W)`` gray or ``(S, H, W, 3)`` colour slices.
            domain: How to read the values. ``"auto"``: ``uint8`` is 8-bit image data (passes
                through), ``uint16`` is 16-bit image data (``x / 65535`` without a window),
                other integer and float arrays are Hounsfield units (window, or
                :data:`DEFAULT_HU_RANGE` without one). ``"hu"`` forces Hounsfield units,
                ``"unit"`` means floats already in ``[0, 1]`` (clipped).

        Returns:
            Prepared slices in this stacker's dtype, as :meth:`read_files` returns them.

        Raises:
            ValueError: For a bad shape or domain.
        """
        check_choice("domain", domain, ("auto", "hu", "unit"))
        arr = np.asarray(slices)
        if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] != 3) or not len(arr):
            raise ValueError(
                f"slices must be (S, H, W) or (S, H, W, 3) with S >= 1, got shape {arr.shape}"
            )
        if arr.dtype == np.uint8 and domain == "auto":
            out: list[np.ndarray] = []
            for sl in arr:
                im = Image.fromarray(sl)
                if (self.channels == 1 or len(self.windows) > 1) and sl.ndim == 3:
                    im = im.convert("L")
                hw = self.hw
                if hw is not None and sl.shape[:2] != hw and self.resample in _RESAMPLE:
                    im = im.resize((hw[1], hw[0]), _RESAMPLE[self.resample])
                a = self._torch_resize_and_crop(np.asarray(im))
                if len(self.windows) > 1:
                    a = np.repeat(a[..., None], len(self.windows), axis=-1)
                out.append(a)
            return convert_dtype(np.stack(out), self.dtype)
        if arr.ndim == 4:
            raise ValueError(
                f"colour slices must be uint8 (8-bit images), got dtype {arr.dtype}; convert "
                "deeper colour data to gray first"
            )
        dom: Domain
        if domain == "unit":
            dom = "float"
        elif domain == "auto" and arr.dtype == np.uint16:
            dom = "u16"
        else:
            dom = "hu"
        mapped = [self._map_deep(sl.astype(np.float32), dom) for sl in arr]
        return convert_dtype(np.stack(mapped), self.dtype)

    # -- stacking -------------------------------------------------------------------------

    def stack_prepared(
        self, prepared: np.ndarray, indices: np.ndarray | None = None, *, compact: bool = False
    ) -> np.ndarray:
        """Group prepared slices into volumes and lay them out as ``(N, C, D, H, W)``.

        Args:
            prepared: Slices from :meth:`read`/:meth:`prepare` (or a cache): ``(S, H, W)``
                gray (repeated to ``channels``) or ``(S, H, W, C)``; uint8 or float32.
            indices: Rows of slice numbers into ``prepared`` (``-1`` for a zero slice);
                default :meth:`volume_indices` of ``S``.
            compact: Return the volumes in their smallest exact form, the one DataLoaders
                move: gray slices stay one channel (``C = 1``) and uint8 slices stay uint8.
                :func:`resnet3d.engine.loader.prepare_batch` with ``channels=self.channels``
                turns them into exactly the volumes ``compact=False`` gives (repeated
                channels, ``x / 255``), on the device. A stacker with ``mean`` and ``std``
                has no smaller exact form: its volumes come normalised, as without
                ``compact``.

        Returns:
            Volumes in this stacker's dtype (uint8 input is divided by 255 for float32,
            then normalised with ``mean`` and ``std`` when set); with ``compact``, uint8
            input stays uint8.

        Shape:
            ``(N, C, D, H, W)``; with ``compact``, ``(N, 1, D, H, W)`` for gray slices.

        Raises:
            ValueError: If the channel count does not match ``channels``.
        """
        arr = np.asarray(prepared)
        if arr.ndim not in (3, 4):
            raise ValueError(f"prepared slices must be (S, H, W) or (S, H, W, C), got {arr.shape}")
        if arr.ndim == 4 and arr.shape[-1] != self.channels:
            raise ValueError(
                f"prepared slices have {arr.shape[-1]} channels but channels={self.channels}"
            )
        if compact and self.mean is not None:
            # prepare_batch only scales by 1/255: normalised volumes must travel as floats.
            compact = False
        idx = self.volume_indices(len(arr)) if indices is None else np.asarray(indices)
        pad = idx < 0
        vols = arr[np.where(pad, 0, idx)]
        if pad.any():
            vols[pad] = 0
        if compact:
            out = vols[:, None] if arr.ndim == 3 else np.moveaxis(vols, -1, 1)
            out = np.ascontiguousarray(out)
            return out if out.dtype == np.uint8 else convert_dtype(out, self.dtype)
        if arr.ndim == 3 and self.dtype == "float32" and vols.dtype == np.uint8:
            # Gray to float: divide straight into each channel of the output, one pass over
            # the (largest) float array instead of a uint8 repeat followed by a conversion.
            out = np.empty((len(vols), self.channels, *vols.shape[1:]), dtype=np.float32)
            np.divide(vols, np.float32(255.0), out=out[:, 0], dtype=np.float32)
            for c in range(1, self.channels):
                out[:, c] = out[:, 0]
            return self._normalized(out)
        if arr.ndim == 3:
            out = einops.repeat(vols, "n d h w -> n c d h w", c=self.channels)
        else:
            out = einops.rearrange(vols, "n d h w c -> n c d h w")
        return self._normalized(convert_dtype(np.ascontiguousarray(out), self.dtype))

    def _normalized(self, volumes: np.ndarray) -> np.ndarray:
        """float32 volumes normalised with ``mean`` and ``std`` when set (uint8 never)."""
        if self.mean is None or self.std is None or volumes.dtype != np.float32:
            return volumes
        return presets.normalize(volumes, self.mean, self.std)

    def stack_array(self, slices: np.ndarray, domain: str = "auto") -> np.ndarray:
        """Stack slices already in memory: :meth:`prepare` then :meth:`stack_prepared`.

        Args:
            slices: Raw ``(S, H, W)`` or ``(S, H, W, 3)`` slices, first slice first.
            domain: See :meth:`prepare`.

        Returns:
            Volumes in this stacker's dtype.

        Shape:
            ``(N, C, D, H, W)``.
        """
        return self.stack_prepared(self.prepare(slices, domain=domain))

    def load(
        self,
        scan: str | os.PathLike[str] | ScanFiles,
        volumes: Iterable[int] | None = None,
        *,
        compact: bool = False,
        sampler: ClipSampler | None = None,
    ) -> np.ndarray:
        """Read a scan and return its volumes as a numpy array.

        Only the slices the requested volumes use are decoded (``remainder="drop"`` never
        reads the dropped tail). For a video, only the frames of the clips are decoded.

        Args:
            scan: A folder of slices, a NIfTI file, a video file, or :func:`scan_files`
                output.
            volumes: Volume numbers to return (default all), as :meth:`volume_indices` counts
                (or, with ``sampler``, as it numbers its clips).
            compact: Gray volumes as one channel and 8-bit data as uint8 (see
                :meth:`stack_prepared`).
            sampler: Take ``depth``-slice clips as this
                :class:`~resnet3d.data.video.ClipSampler` says (clips per scan, stride or target
                fps, uniform or random starts, short scans) instead of :meth:`volume_indices`.

        Returns:
            Volumes in this stacker's dtype. A scan that yields no volume (shorter than
            ``depth`` with ``remainder="drop"``) gives an empty first axis.

        Shape:
            ``(N, C, D, H, W)``.

        Raises:
            DatasetNotFoundError: If the scan does not exist.
            DatasetLayoutError: If it has no slices.
            IndexError: For a volume number out of range.
            CorruptSliceError, ImageTooLargeError, InconsistentScanError: For bad slices.
            UnsupportedFormatError: For a multi-page or multi-frame slice file.
        """
        files = self._checked(scan)
        if sampler is None:
            idx = self.volume_indices(files.n_slices)
        else:
            video_fps = None
            if files.kind == "video":
                from .video import read_video_info

                video_fps = read_video_info(files.path, max_pixels=self.max_pixels).fps
            idx = sampler.indices(files.n_slices, self.depth, video_fps=video_fps, path=files.path)
        if volumes is not None:
            wanted = list(volumes)
            for v in wanted:
                if not -len(idx) <= v < len(idx):
                    raise IndexError(
                        f"volume {v} out of range: {files.path} has {len(idx)} volumes"
                    )
            idx = idx[np.asarray(wanted, dtype=np.int64)] if wanted else idx[:0]
        if len(idx) == 0:
            logger.warning(
                "%s: %d slices give no volume of depth %d with remainder=%r",
                files.path,
                files.n_slices,
                self.depth,
                self.remainder,
            )
            probe = self._read_selected(files, np.arange(1))
            shape = (0, self.channels, self.depth, *probe.shape[1:3])
            return np.zeros(shape, dtype=np.dtype(self.dtype))
        needed = np.unique(idx[idx >= 0])
        prepared = self._read_selected(files, needed, keep_uint8=compact)
        positions = np.where(idx < 0, -1, np.searchsorted(needed, np.maximum(idx, 0)))
        return self.stack_prepared(prepared, positions, compact=compact)

    def __call__(
        self,
        scan: str | os.PathLike[str] | ScanFiles,
        volumes: Iterable[int] | None = None,
        *,
        sampler: ClipSampler | None = None,
    ) -> torch.Tensor:
        """Read a scan and return its volumes as a tensor (see :meth:`load`).

        Shape:
            ``(N, C, D, H, W)``.
        """
        import torch

        return torch.from_numpy(self.load(scan, volumes, sampler=sampler))


def _to_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return np.divide(a, np.float32(255.0), dtype=np.float32)
    return a.astype(np.float32, copy=False)


def convert_dtype(a: np.ndarray, dtype: str) -> np.ndarray:
    """Slices or volumes in a stacker's ``dtype``: ``uint8`` <-> ``float32`` in ``[0, 1]``.

    ``float32`` is ``uint8 / 255`` by an exact division (what :class:`SliceStacker` returns);
    ``uint8`` rounds ``[0, 1]`` floats to the nearest of the 256 levels (values outside are
    clipped). Arrays already in the asked type pass through without a copy.

    Args:
        a: ``uint8`` levels or floats in ``[0, 1]``, any shape.
        dtype: ``"float32"`` or ``"uint8"``.

    Returns:
        The array in ``dtype``, same shape.

    Raises:
        ValueError: If ``dtype`` is neither.
    """
    check_choice("dtype", dtype, ("float32", "uint8"))
    if dtype == "float32":
        return _to_float(a)
    if a.dtype == np.uint8:
        return a
    scaled = np.rint(np.clip(a, 0.0, 1.0) * np.float32(255.0))
    return scaled.astype(np.uint8)


def load_scan(
    path: str | os.PathLike[str],
    depth: int = 4,
    *,
    as_numpy: bool = False,
    sampler: ClipSampler | None = None,
    **kwargs: Any,
) -> Any:
    """Load one scan as the paper's stacked volumes in one line.

    Example::

        vol = resnet3d.data.volumes.load_scan("scans/NCP/12/3104", depth=4)  # (N, 3, 4, 512, 512)
        clips = resnet3d.data.volumes.load_scan("clip.mp4", depth=16, size=112)  # (N, 3, 16, ...)

    Args:
        path: A folder of slices (PNG/JPEG/TIFF/BMP/WebP/DICOM), a NIfTI file, or a video
            file (frames are slices; see :mod:`resnet3d.data.video`).
        depth: Slices (frames) per volume (clip).
        as_numpy: Return a numpy array instead of a tensor.
        sampler: A :class:`~resnet3d.data.video.ClipSampler` choosing the clips (default: every
            volume, as :meth:`SliceStacker.volume_indices` lays them out).
        **kwargs: Any other :class:`SliceStacker` field (``size``, ``window``, ...).

    Returns:
        A float32 ``torch.Tensor`` in ``[0, 1]`` (or numpy array with ``as_numpy=True``).

    Shape:
        ``(N, C, D, H, W)``.

    Raises:
        DatasetNotFoundError: If ``path`` does not exist.
        DatasetLayoutError: If it holds no slices.
        CorruptSliceError: Naming a slice that cannot be decoded.
        ImageTooLargeError: If a slice or the scan declares more than the size limits.
        InconsistentScanError: If slices differ in size, bit depth, series or orientation.
        UnsupportedFormatError: For a multi-page or multi-frame slice file, or a video
            whose codec FFmpeg cannot decode.
        MissingDependencyError: For a DICOM, NIfTI or video scan without its optional
            package (pydicom, nibabel, PyAV).
        ValueError: For an invalid stacker setting.
    """
    stacker = SliceStacker(depth=depth, **kwargs)
    arr = stacker.load(path, sampler=sampler)
    if as_numpy:
        return arr
    import torch

    return torch.from_numpy(arr)
