"""State-dict helpers: strict key and shape checks, first-convolution adaptation, reading
safetensors. Plain tensors in, plain tensors out: no model code."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckpointMismatchError, InvalidExportError
from .export_format import WEIGHTS_NAME

if TYPE_CHECKING:
    import torch

__all__ = ["FIRST_CONV", "adapt_input_conv", "check_state_dict", "read_safetensors"]

# Keys of the first convolution: its input channels are the model's in_channels.
FIRST_CONV = {"3d": "conv1.weight", "2plus1d": "conv1_s.weight"}
_MAX_LISTED = 12


def listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-convolution weight to another number of input channels.

    - To 1 channel: the filters are summed over the input channels, so a grey volume gives
      the response the original net gives to that volume repeated in every channel.
    - To ``C`` channels from ``C0``: the filters are repeated cyclically
      (``C0, C0, ...`` truncated to ``C``) and scaled by ``C0 / C``, so an input that repeats
      the original channels gives the original response (the output scale is kept).

    Args:
        weight: ``(out, C0, kD, kH, kW)`` convolution weight.
        in_channels: The new number of input channels ``C``.

    Returns:
        A new ``(out, C, kD, kH, kW)`` weight (``weight`` itself when ``C == C0``).

    Raises:
        ValueError: If ``in_channels < 1`` or ``weight`` is not 5-D.
    """
    if weight.ndim != 5:
        raise ValueError(f"expected a 5-D Conv3d weight, got shape {tuple(weight.shape)}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    old = weight.shape[1]
    if in_channels == old:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / old)
    return weight.repeat(1, repeats, 1, 1, 1)[:, :in_channels] * (old / in_channels)


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module, source: str = "checkpoint"
) -> None:
    """Raise unless ``state_dict`` has exactly the model's keys with the model's shapes.

    Raises:
        CheckpointMismatchError: Listing missing, unexpected and misshapen keys.
    """
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in expected)
    misshapen = [
        f"{k}: {tuple(state_dict[k].shape)} in {source}, {tuple(expected[k].shape)} in model"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshapen):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {listing(unexpected)}")
    if misshapen:
        parts.append(f"{len(misshapen)} misshapen: {listing(misshapen)}")
    raise CheckpointMismatchError(
        f"{source} does not match the model ({'; '.join(parts)}). Loading is strict; to change "
        "the classifier or the input channels pass num_classes= or in_channels=, and for other "
        "libraries' weights use resnet3d.models.convert."
    )


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InvalidExportError(
            f"missing weights: {path} does not exist (an export holds {WEIGHTS_NAME}; pickled "
            "checkpoints are never loaded as weights, convert them with 'resnet3d export')",
            path=path,
        )
    try:
        return load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise InvalidExportError(
            f"cannot read {path} as safetensors ({error}); the file is truncated, corrupted or "
            "not a safetensors file",
            path=path,
        ) from None
