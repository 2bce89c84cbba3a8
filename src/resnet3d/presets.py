"""Named preprocessing presets, and the array operations only they need.

A preset is a :class:`~resnet3d.data.volumes.SliceStacker` spec (the dict
:meth:`~resnet3d.data.volumes.SliceStacker.to_dict` gives) under a name, so that weights trained
elsewhere are fed what they were trained on::

    stacker = resnet3d.data.volumes.SliceStacker.from_preset("kinetics400")
    clips = stacker("clip.mp4")  # (N, 3, 16, 112, 112), Kinetics-normalised

``"kinetics400"`` equals torchvision's video weights transforms
(``R3D_18_Weights.KINETICS400_V1.transforms()``, the same for ``r2plus1d_18`` and
``mc3_18``): ``VideoClassification(crop_size=(112, 112), resize_size=(128, 171))``. Every
frame is resized to exactly 128 x 171 (H x W; two numbers are a size, not a short side) by
bilinear interpolation without antialiasing, rounded back to 8 bits, centre-cropped to
112 x 112, scaled to ``[0, 1]`` and normalised with the Kinetics-400 mean and std per RGB
channel; clips are ``(C, T, H, W)``. Clips of 16 frames are what those weights were trained
and evaluated on.

This module imports only the standard library at import time (numpy and torch are imported
by the functions that need them), so the converters can record a preset without loading
the data side.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._utils import did_you_mean

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "KINETICS400_MEAN",
    "KINETICS400_STD",
    "PREPROCESSING_KEYS",
    "PRESETS",
    "center_crop",
    "get_preset",
    "normalize",
    "resize_bilinear",
]

#: Keys a preprocessing spec may hold: the fields of ``volumes.SliceStacker.to_dict()``
#: (``crop``, ``mean`` and ``std`` appear there only when set).
PREPROCESSING_KEYS: tuple[str, ...] = (
    "depth",
    "stride",
    "size",
    "channels",
    "window",
    "remainder",
    "pad_mode",
    "resample",
    "dtype",
    "crop",
    "mean",
    "std",
)

#: Per-channel (RGB) mean of Kinetics-400 frames in ``[0, 1]``, as torchvision's video
#: weights transforms use it.
KINETICS400_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
#: Per-channel (RGB) standard deviation of Kinetics-400 frames in ``[0, 1]``.
KINETICS400_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)

#: Named stacker specs (the JSON form :meth:`SliceStacker.to_dict` gives).
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "kinetics400": MappingProxyType(
            {
                "depth": 16,
                "stride": None,
                "size": [128, 171],
                "channels": 3,
                "window": None,
                "remainder": "drop",
                "pad_mode": "edge",
                "resample": "torch_bilinear",
                "dtype": "float32",
                "crop": [112, 112],
                "mean": list(KINETICS400_MEAN),
                "std": list(KINETICS400_STD),
            }
        ),
    }
)


def get_preset(name: str) -> dict[str, Any]:
    """A preset's stacker spec, as a fresh dict (JSON-able; safe to change).

    Args:
        name: A key of :data:`PRESETS`, e.g. ``"kinetics400"``.

    Returns:
        The spec, as :meth:`~resnet3d.data.volumes.SliceStacker.to_dict` would give it.

    Raises:
        ValueError: For an unknown name (the known ones and the closest are listed).
    """
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(
            f"unknown preprocessing preset {name!r}; presets are {sorted(PRESETS)}."
            + did_you_mean(str(name), PRESETS)
        )
    return copy.deepcopy(dict(PRESETS[name]))


def resize_bilinear(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize one image by bilinear interpolation without antialiasing, as torchvision does.

    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
    antialias=False)`` on the image as float32; 8-bit input is rounded to the nearest level
    (half to even) and returned as uint8, exactly what ``torchvision.transforms.functional
    .resize(..., antialias=False)`` does to a uint8 tensor. Unlike Pillow's filters it does
    not widen the kernel when shrinking, so it aliases; it is here to reproduce weights that
    were trained this way.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, uint8 or float.
        hw: The output ``(H, W)``.

    Returns:
        The resized image, uint8 for uint8 input, else float32.

    Shape:
        ``(hw[0], hw[1])`` or ``(hw[0], hw[1], C)``.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {arr.shape}")
    # astype copies (Pillow's arrays are read-only); uint8 -> float32 is exact.
    chw = torch.from_numpy(arr.astype(np.float32))
    chw = chw[None] if arr.ndim == 2 else chw.permute(2, 0, 1)
    out = F.interpolate(
        chw.contiguous()[None],
        size=(int(hw[0]), int(hw[1])),
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )[0]
    if arr.dtype == np.uint8:
        out = out.round_().clamp_(0, 255).to(torch.uint8)
    result = out[0] if arr.ndim == 2 else out.permute(1, 2, 0)
    return np.ascontiguousarray(result.numpy())


def center_crop(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """The central ``(H, W)`` window of an image, placed as torchvision places it.

    The top-left corner is ``round((H_in - H) / 2), round((W_in - W) / 2)`` with Python's
    rounding (half to even), as ``torchvision.transforms.functional.center_crop``.

    Args:
        image: ``(H_in, W_in)`` or ``(H_in, W_in, C)``.
        hw: The crop ``(H, W)``, at most the image's size.

    Returns:
        A view of ``image``.

    Raises:
        ValueError: If the crop is larger than the image (torchvision would pad it with
            zeros; here that is refused, as it means the resize is not what was meant).
    """
    height, width = int(image.shape[0]), int(image.shape[1])
    ch, cw = int(hw[0]), int(hw[1])
    if ch > height or cw > width:
        raise ValueError(
            f"crop {ch}x{cw} (HxW) is larger than the {height}x{width} image; resize to at "
            "least the crop size first (size=...)"
        )
    top = round((height - ch) / 2.0)
    left = round((width - cw) / 2.0)
    return image[top : top + ch, left : left + cw]


def normalize(volumes: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(x - mean) / std`` per channel in float32, as ``torchvision``'s ``normalize``.

    Args:
        volumes: float32 volumes in ``[0, 1]``, channels on axis 1.
        mean: One value per channel.
        std: One value per channel (non-zero).

    Returns:
        A new float32 array.

    Shape:
        ``(N, C, D, H, W)`` in and out.
    """
    import numpy as np

    shape = (1, len(mean)) + (1,) * (volumes.ndim - 2)
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    out = np.subtract(volumes, m, dtype=np.float32)
    np.divide(out, s, out=out)
    return out
