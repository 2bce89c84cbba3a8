"""Two processes under torchrun (gloo): exact resume, and metrics equal to one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.torchrun import ROOT, run_two_ranks
from tests.helpers.toy import ToyVolumes

from resnet3d.engine.distributed import DistInfo
from resnet3d.engine.loader import make_loader
from resnet3d.engine.predict import predict_loader
from resnet3d.engine.train import volume_metrics
from resnet3d.models.factory import create_model


@pytest.mark.slow
def test_torchrun_two_ranks_resume_and_metrics(tmp_path: Path) -> None:
    proc = run_two_ranks(ROOT / "tests" / "helpers" / "ddp_train.py", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world_size"] == 2
    assert result["bitwise_equal"] is True
    # 13 samples, none doubled by the sampler's padding, in data set order.
    assert result["n_predictions"] == 13
    # One process over the same data with the same weights gives the same metrics.
    model = create_model("resnet10", widths=(4, 8, 8, 8), num_classes=3)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    loader = make_loader(
        ToyVolumes(13, 1),
        3,
        device=torch.device("cpu"),
        dist_info=DistInfo(),
        shuffle=False,
        workers=0,
    )
    single = predict_loader(model, loader, device=torch.device("cpu"))
    assert single.scan_ids == result["scan_ids"]
    np.testing.assert_allclose(single.probs, np.array(result["probs"]), rtol=0, atol=1e-6)
    single_metrics = volume_metrics(single, 3)
    for key, value in result["metrics"].items():
        assert single_metrics[key] == pytest.approx(value, abs=1e-6), key
