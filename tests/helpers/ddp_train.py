"""Run under ``torchrun --nproc_per_node=2``: train straight and resumed, save what rank 0 saw.

Usage: ``torchrun --nproc_per_node=2 tests/helpers/ddp_train.py OUT_DIR``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.helpers.toy import ToyVolumes, tiny_config

from resnet3d.engine.distributed import destroy_distributed
from resnet3d.engine.train import Trainer, volume_metrics


def trainer(out: Path, epochs: int) -> Trainer:
    config = tiny_config(out, epochs=epochs, batch_size=3, precision="fp32")
    # 13 validation volumes over 2 ranks: DistributedSampler pads one, which must not count.
    return Trainer(config, ToyVolumes(22, 0), ToyVolumes(13, 1), ["a", "b", "c"], split_hash="s")


def main() -> None:
    # The trainers live only inside train_and_report, so they (and the DDP reducers that hold
    # the process group) are gone before the group is destroyed.
    train_and_report(Path(sys.argv[1]))
    destroy_distributed()


def train_and_report(out: Path) -> None:
    straight = trainer(out / "straight", 4)
    straight.fit()
    trainer(out / "resumed", 2).fit()
    resumed = trainer(out / "resumed", 4)
    resumed.fit(resume="auto")
    predictions = resumed.predict()
    if resumed.dist.is_main:
        torch.save(resumed.model.state_dict(), out / "model.pt")
        sa, sb = straight.model.state_dict(), resumed.model.state_dict()
        result = {
            "world_size": resumed.dist.world_size,
            "bitwise_equal": all(torch.equal(sa[k], sb[k]) for k in sa),
            "n_predictions": len(predictions.labels),
            "scan_ids": predictions.scan_ids,
            "probs": predictions.probs.tolist(),
            "metrics": volume_metrics(predictions, 3),
        }
        (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
