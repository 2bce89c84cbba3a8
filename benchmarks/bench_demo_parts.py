"""Where ``resnet3d demo``'s training time goes: its per-step and per-epoch parts, side by side.

Writes the demo's phantom (120 patients, 64 px, seed 0, the demo's split), builds the demo's
:class:`resnet3d.engine.train.Trainer` (resnet18, batch 8, ``precise_bn=8``, ``flip,shift``) and
times, interleaved in one process (one round per repeat, medians without the first round):

* ``load``: one training batch from the loader (PNG decode of 8 volumes);
* ``fwd_bwd``: the model step, forward and backward under the trainer's precision and layout;
* ``adam_single``: the trainer's ``torch.optim.Adam`` step (PyTorch's CPU default, one
  tensor at a time: seven passes over the 33 M parameters and their two moments);
* ``adam_fused``: ``torch.optim.Adam(fused=True)`` on the same gradients (one pass);
* ``ckpt_save``: one ``save_checkpoint`` of the trainer's state (model, optimizer, RNG:
  about 400 MB for resnet18, written and fsynced);
* ``ckpt_link``: hard-linking that file as ``last.pt`` instead of writing it again (what
  an epoch that also improved ``best.pt`` could do).

The demo runs 140 steps, 245 batch loads and 10 checkpoint writes (``best.pt`` and
``last.pt`` after each of 5 epochs), so multiply accordingly. On a shared machine the
absolute times swing by 2-10x; the ratios between parts of one round are what to read.

Usage::

    python benchmarks/bench_demo_parts.py                    # the demo's default precision
    python benchmarks/bench_demo_parts.py --precision fp32 --repeat 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from resnet3d.data import phantom
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine import checkpoint
from resnet3d.engine.device import autocast
from resnet3d.engine.loader import prepare_batch
from resnet3d.engine.train import TrainConfig, Trainer
from resnet3d.workflows import load_or_make_split

PARTS = ("load", "fwd_bwd", "adam_single", "adam_fused", "ckpt_save", "ckpt_link")


def demo_trainer(folder: Path, precision: str) -> Trainer:
    """The demo's trainer on the demo's data (same phantom arguments, split and config)."""
    root = phantom.write_dataset(
        folder / "data",
        patients=120,
        size=64,
        seed=0,
        slices=(12, 16),
        scans_per_patient=(1, 1),
        progress=False,
        lesion_scale=4.0,
    )
    index = ScanIndex.from_path(root)
    split = load_or_make_split(index, folder / "run", fractions=(0.6, 0.2, 0.2), seed=0)
    stacker = SliceStacker(depth=4, size=(64, 64), channels=3)
    config = TrainConfig(
        out_dir=str(folder / "checkpoints"),
        model="resnet18",
        epochs=5,
        batch_size=8,
        lr=1e-4,
        lr_step=3,
        seed=0,
        device="cpu",
        precision=precision,
        progress=False,
        workers=0,
        monitor="loss",
        precise_bn=8,
        augment="flip,shift",
    )
    train_set = VolumeDataset(split.train, stacker)
    valid_set = VolumeDataset(split.valid, stacker)
    return Trainer(config, train_set, valid_set, index.classes, split_hash=split.hash)


def measure(trainer: Trainer, repeat: int, folder: Path) -> dict[str, list[float]]:
    """Seconds of each part, one entry per round."""
    times: dict[str, list[float]] = {part: [] for part in PARTS}

    def clock(part: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        times[part].append(time.perf_counter() - start)
        return result

    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    fused = torch.optim.Adam(params, lr=trainer.config.lr, fused=True)
    best, last = folder / "best.pt", folder / "last.pt"

    def endless() -> Iterator[Any]:
        while True:
            yield from trainer.train_loader

    model.train()
    batches = endless()
    for _ in range(repeat):
        _, (volumes, labels, _, _) = clock("load", lambda: next(batches))
        x = prepare_batch(volumes, trainer.device, trainer.channels_last, 3)

        def step(x: torch.Tensor = x, labels: torch.Tensor = labels) -> None:
            with autocast(trainer.device, trainer.precision):
                logits = model(x)
            F.cross_entropy(logits.float(), labels.long()).backward()

        clock("fwd_bwd", step)
        grads = [p.grad.clone() if p.grad is not None else None for p in params]
        clock("adam_single", trainer.optimizer.step)
        for p, g in zip(params, grads):
            p.grad = g
        clock("adam_fused", fused.step)
        model.zero_grad(set_to_none=True)
        clock("ckpt_save", lambda: checkpoint.save_checkpoint(trainer.state_dict(), best))

        def link() -> None:
            tmp = folder / ".last.link"
            tmp.unlink(missing_ok=True)
            os.link(best, tmp)
            os.replace(tmp, last)

        clock("ckpt_link", link)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="auto", help="auto (the demo's), fp32, bf16")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (the first is dropped)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        folder = Path(tmp)
        trainer = demo_trainer(folder, args.precision)
        print(
            f"precision {trainer.precision}, channels_last {trainer.channels_last}, "
            f"{torch.get_num_threads()} threads"
        )
        times = measure(trainer, max(2, args.repeat), folder)
    print(f"{'part':<12} {'median ms':>10}  rounds (ms)")
    for part, values in times.items():
        rounds = " ".join(f"{1e3 * v:.0f}" for v in values)
        print(f"{part:<12} {1e3 * statistics.median(values[1:]):>10.1f}  {rounds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
