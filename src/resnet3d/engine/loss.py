"""The training loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cross_entropy",
]


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The paper's loss, computed in float32 whatever the autocast dtype."""
    return F.cross_entropy(logits.float(), labels)
