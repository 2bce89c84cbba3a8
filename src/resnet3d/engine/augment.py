"""Training-time augmentation of volume batches, done on the device after scaling.

Two geometric changes that keep a chest CT a plausible chest CT and cost next to nothing on
any device: mirroring left and right, and shifting the slices in-plane by a few pixels. With
small data sets (the demo trains on about a hundred patients) they are what keeps a 3D ResNet
from memorising patients (docs/training.md has the demo's before/after).

Random draws come from a :class:`torch.Generator` that the caller seeds per epoch, so a
resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .._utils import did_you_mean

#: Names accepted by :meth:`Augment.parse`.
AUGMENTATIONS = ("flip", "shift")

#: Largest in-plane shift of ``"shift"`` without a value, as a fraction of height and width.
DEFAULT_SHIFT = 1 / 16


@dataclass(frozen=True)
class Augment:
    """Random left-right flips and in-plane shifts of a batch ``(B, C, D, H, W)``.

    Every volume of a batch gets its own draw; all slices (and channels) of one volume move
    together, so the depth axis stays consistent.

    Args:
        flip: Mirror the width axis (patient left and right) with probability 1/2.
        shift: Largest translation along height and width, as a fraction of each (e.g.
            ``0.0625`` is 4 pixels at 64); each volume is moved by a whole number of pixels
            drawn uniformly in ``[-shift * size, shift * size]`` per axis. Pixels moved in
            from outside are 0, black after scaling (air, in a lung window).

    Raises:
        ValueError: If ``shift`` is not in ``[0, 0.5)``.
    """

    flip: bool = False
    shift: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.flip, bool):
            raise TypeError(f"flip must be a bool, got {self.flip!r}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, (int, float)):
            raise TypeError(f"shift must be a number, got {self.shift!r}")
        if not 0.0 <= self.shift < 0.5:
            raise ValueError(f"shift must be a fraction in [0, 0.5), got {self.shift!r}")

    @classmethod
    def parse(cls, spec: str | Sequence[str] | None) -> Augment:
        """Build from a spec such as ``"flip,shift"``, ``"shift=0.1"`` or ``"none"``.

        Args:
            spec: Comma-separated names from :data:`AUGMENTATIONS` (``shift`` takes an
                optional ``=fraction``, default :data:`DEFAULT_SHIFT`), a list of them,
                or ``"none"``, ``""`` or ``None`` for no augmentation.

        Returns:
            The :class:`Augment`.

        Raises:
            ValueError: For an unknown name (with the closest match), a repeated name or a
                bad shift.
        """
        if spec is None:
            return cls()
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        names = [p.strip() for p in parts if p.strip()]
        if names == ["none"] or not names:
            return cls()
        flip, shift, seen = False, 0.0, set()
        for item in names:
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in AUGMENTATIONS:
                raise ValueError(
                    f"unknown augmentation {name!r} in {spec!r}; choose from "
                    f"{list(AUGMENTATIONS)} or 'none'." + did_you_mean(name, AUGMENTATIONS)
                )
            if name in seen:
                raise ValueError(f"augmentation {name!r} given twice in {spec!r}")
            seen.add(name)
            if name == "flip":
                if value:
                    raise ValueError(f"'flip' takes no value, got {item!r}")
                flip = True
            else:
                try:
                    shift = float(value) if value else DEFAULT_SHIFT
                except ValueError:
                    raise ValueError(
                        f"shift needs a fraction, e.g. 'shift=0.0625', got {item!r}"
                    ) from None
        return cls(flip=flip, shift=shift)

    @property
    def enabled(self) -> bool:
        """True when the augmentation changes anything."""
        return self.flip or self.shift > 0

    def spec(self) -> str:
        """The canonical spec string (``"none"``, ``"flip"``, ``"flip,shift=0.0625"``...)."""
        parts = (["flip"] if self.flip else []) + ([f"shift={self.shift:g}"] if self.shift else [])
        return ",".join(parts) or "none"

    def __call__(self, volumes: Tensor, generator: torch.Generator) -> Tensor:
        """Augment a batch (a new tensor; the input is left as it was).

        Args:
            volumes: Float batch ``(B, C, D, H, W)`` on any device.
            generator: A CPU generator; the draws are made on the CPU and then moved, so the
                same seed gives the same augmentation on every device.

        Returns:
            The augmented batch, same shape, dtype and device.

        Raises:
            ValueError: If the batch is not 5-dimensional.
        """
        if volumes.dim() != 5:
            raise ValueError(f"expected a batch (B, C, D, H, W), got shape {tuple(volumes.shape)}")
        if not self.enabled:
            return volumes
        b, _, _, h, w = volumes.shape
        # Draw everything first, in a fixed order, whatever is enabled: the stream then
        # does not depend on the batch's content.
        flips = torch.rand(b, generator=generator) < 0.5
        out = volumes
        if self.flip:
            keep = ~flips.to(volumes.device).view(b, 1, 1, 1, 1)
            out = torch.where(keep, out, out.flip(-1))
        max_y, max_x = int(self.shift * h), int(self.shift * w)
        if max_y or max_x:
            dy = torch.randint(-max_y, max_y + 1, (b,), generator=generator).tolist()
            dx = torch.randint(-max_x, max_x + 1, (b,), generator=generator).tolist()
            padded = F.pad(out, (max_x, max_x, max_y, max_y))
            out = torch.stack(
                [
                    padded[i, :, :, max_y - y : max_y - y + h, max_x - x : max_x - x + w]
                    for i, (y, x) in enumerate(zip(dy, dx))
                ]
            )
        return out


def epoch_generator(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """The generator of one epoch's augmentation on one rank (a pure function of its args)."""
    # Distinct, well-separated streams for every (seed, epoch, rank).
    mixed = (seed * 1_000_003 + epoch * 10_007 + rank * 101 + 0x5EED) % (2**63)
    return torch.Generator().manual_seed(mixed)
