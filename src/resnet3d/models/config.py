"""The architecture of a 3D ResNet as one frozen, JSON-able config.

`ResNet3DConfig` holds only strings, ints, floats, bools and tuples so that it round-trips
through ``config.json``. Component names (``block``, ``conv``, ``shortcut``, ``midplanes``)
are resolved to modules in one place, :mod:`resnet3d.models.blocks` and
:mod:`resnet3d.models.stems`.

The defaults are the reference paper's ResNet-18 (Li, Pei and Guo 2021, Table 3): a
7x7x7 stem with stride (1, 2, 2), a 3x3x3 max pool with stride 2, basic blocks with
zero-padding ("type A") shortcuts, stages of 64/128/256/512 channels, three classes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._utils import check_choice, did_you_mean, to_3tuple

BLOCKS = ("basic", "bottleneck")
CONVS = ("3d", "2plus1d")
MIDPLANES = ("tran", "shared")
SHORTCUTS = ("A", "B")
#: How convolutions run (see :mod:`resnet3d.models.thin_depth`); kept in step with its CONV_IMPLS.
CONV_IMPLS = ("auto", "conv3d")

#: Channel multiplier of each block kind's output over its width.
EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True)
class ResNet3DConfig:
    """Everything that defines a ResNet3D's architecture.

    Args:
        block: ``"basic"`` (two 3x3x3 convolutions) or ``"bottleneck"`` (1x1x1, 3x3x3,
            1x1x1 with 4x expansion).
        layers: Number of blocks in each stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        widths: Width of each stage (the block's inner width), e.g. ``(64, 128, 256, 512)``.
        conv: ``"3d"`` for full t x d x d convolutions or ``"2plus1d"`` to factorise each
            into a 1 x d x d spatial and a t x 1 x 1 temporal convolution (Tran et al. 2018).
        midplanes: (2+1)D only. ``"tran"``: each factorised convolution gets the intermediate
            width of Tran et al.'s parameter-matching formula for its own input and output
            (Hara et al.'s ``resnet2p1d``). ``"shared"``: one width per block, computed from
            the block's input and output widths, as torchvision's ``r2plus1d_18`` does.
        shortcut: ``"A"``: identity, subsampled and zero-padded where the shape changes (no
            parameters). ``"B"``: identity, or a 1x1x1 convolution + BN where the shape changes.
        stem_kernel: Kernel of the stem convolution, ``(D, H, W)``.
        stem_stride: Stride of the stem convolution, ``(D, H, W)``.
        stem_pool: Whether a 3x3x3 max pool with stride 2 follows the stem.
        stem_midplanes: (2+1)D only. Intermediate width of the stem; ``None`` uses Tran et
            al.'s formula for ``in_channels`` (torchvision's ``r2plus1d_18`` uses 45).
        in_channels: Channels of the input volumes (3 for the paper's RGB slices).
        num_classes: Outputs of the classifier; 0 means no classifier (pooled features).
        zero_init_residual: Initialise the last BN of every block to zero, so each block
            starts as the identity (Goyal et al. 2017).
        dropout: Dropout probability before the classifier.
        conv_impl: How the convolutions run, not what they compute: ``"auto"`` runs thin
            depths (input depth below the kernel's, as in layers 1-4 of the paper's 4-slice
            volumes) as exact 2D convolutions, ``"conv3d"`` always uses ``Conv3d``. Results
            agree to rounding; not part of the architecture (configs that differ only here
            compare equal).
    """

    block: str = "basic"
    layers: tuple[int, ...] = (2, 2, 2, 2)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    conv: str = "3d"
    midplanes: str = "tran"
    shortcut: str = "A"
    stem_kernel: tuple[int, int, int] = (7, 7, 7)
    stem_stride: tuple[int, int, int] = (1, 2, 2)
    stem_pool: bool = True
    stem_midplanes: int | None = None
    in_channels: int = 3
    num_classes: int = 3
    zero_init_residual: bool = False
    dropout: float = 0.0
    conv_impl: str = field(default="auto", compare=False)
    # Kept last: free-form provenance, not architecture (e.g. the factory's name).
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Normalise sequences to tuples first (JSON gives lists), then validate.
        set_ = object.__setattr__
        set_(self, "layers", _int_tuple(self.layers, "layers"))
        set_(self, "widths", _int_tuple(self.widths, "widths"))
        set_(self, "stem_kernel", to_3tuple(_maybe_list(self.stem_kernel), "stem_kernel"))
        set_(self, "stem_stride", to_3tuple(_maybe_list(self.stem_stride), "stem_stride"))
        check_choice("block", self.block, BLOCKS)
        check_choice("conv", self.conv, CONVS)
        check_choice("midplanes", self.midplanes, MIDPLANES)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        check_choice("conv_impl", self.conv_impl, CONV_IMPLS)
        if not self.layers:
            raise ValueError("layers must name at least one stage, got ()")
        if len(self.layers) != len(self.widths):
            raise ValueError(
                f"layers and widths must have one entry per stage, got {len(self.layers)} "
                f"layers {self.layers} and {len(self.widths)} widths {self.widths}"
            )
        if any(n < 1 for n in self.layers):
            raise ValueError(f"every stage needs at least one block, got layers={self.layers}")
        if any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive, got widths={self.widths}")
        if any(k < 1 or k % 2 == 0 for k in self.stem_kernel):
            raise ValueError(
                f"stem_kernel must hold odd positive sizes (so padding keeps the centre), "
                f"got {self.stem_kernel}"
            )
        if any(s < 1 for s in self.stem_stride):
            raise ValueError(f"stem_stride must be positive, got {self.stem_stride}")
        for name in ("in_channels", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0: no classifier), got {self.num_classes}")
        if self.stem_midplanes is not None and (
            not isinstance(self.stem_midplanes, int) or self.stem_midplanes < 1
        ):
            raise ValueError(
                f"stem_midplanes must be None or a positive int, got {self.stem_midplanes!r}"
            )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        set_(self, "dropout", float(self.dropout))
        for name in ("stem_pool", "zero_init_residual"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def expansion(self) -> int:
        """Output channels of a block over its width: 1 for basic, 4 for bottleneck."""
        return EXPANSION[self.block]

    @property
    def num_features(self) -> int:
        """Channels of the final feature map (the classifier's input)."""
        return self.widths[-1] * self.expansion

    def replace(self, **changes: Any) -> ResNet3DConfig:
        """Return a copy with some fields changed (validated like a new config)."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict (tuples become lists only when dumped)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResNet3DConfig:
        """Build a config from :meth:`to_dict` output (or parsed JSON).

        Raises:
            ValueError: If ``data`` has a key that is not a config field.
        """
        _check_fields(data)
        return cls(**dict(data))

    def to_json(self, **kwargs: Any) -> str:
        """Serialise to a JSON string (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> ResNet3DConfig:
        """Parse a config from a JSON string written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def config_fields() -> tuple[str, ...]:
    """Names of the fields of :class:`ResNet3DConfig`."""
    return tuple(f.name for f in dataclasses.fields(ResNet3DConfig))


def _check_fields(data: Mapping[str, Any]) -> None:
    names = config_fields()
    for key in data:
        if key not in names:
            raise ValueError(
                f"{key!r} is not a ResNet3DConfig field; fields are {list(names)}."
                + did_you_mean(str(key), names)
            )


def _maybe_list(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    return items
