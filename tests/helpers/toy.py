"""A tiny learnable volume data set for training-loop tests (no files, no decoding)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from resnet3d.engine.train import TrainConfig, Trainer

LABELS = ["a", "b", "c"]
TINY = {"widths": (4, 8, 8, 8)}


class ToyVolumes(Dataset):
    """``n`` random volumes ``3 x 4 x 16 x 16``; class 1 is brighter, so it can be learned."""

    def __init__(self, n: int, seed: int, uint8: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(n, 3, 4, 16, 16, generator=g) * 0.6
        self.y = torch.randint(0, 3, (n,), generator=g)
        x[self.y == 1] += 0.4
        self.x = (x * 255).round().to(torch.uint8) if uint8 else x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str, str]:
        return self.x[i], int(self.y[i]), f"scan{i // 2}", f"patient{i // 4}"


def tiny_config(out: Path, **changes: object) -> TrainConfig:
    """The training config of the loop tests: a narrow resnet10, 2 epochs of batch 4.

    Any field can be changed (``epochs=1``, ``precision="fp32"``, ``model="resnet18"``).
    """
    settings: dict[str, object] = {
        "out_dir": str(out),
        "model": "resnet10",
        "model_overrides": dict(TINY),
        "epochs": 2,
        "batch_size": 4,
        "lr_step": 2,
        "progress": False,
    }
    return TrainConfig(**{**settings, **changes})  # type: ignore[arg-type]


def make_trainer(out: Path, epochs: int, **kwargs: object) -> Trainer:
    """A tiny resnet10 trainer on 24 training and 12 validation toy volumes (batch 4)."""
    config = tiny_config(out, epochs=epochs, **kwargs)
    return Trainer(config, ToyVolumes(24, 0), ToyVolumes(12, 1), LABELS, split_hash="split-1")
