"""CUDA checks (marked ``gpu``; skipped without a CUDA device, run on a lent GPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tests.helpers.toy import ToyVolumes

from resnet3d import create_model
from resnet3d.engine.train import TrainConfig, Trainer

pytestmark = pytest.mark.gpu

#: bf16 autocast against an fp32 reference (TF32 off), eval mode, random init, input
#: (2, 3, 4, 128, 128): the largest absolute logit difference allowed, relative to the
#: largest fp32 logit, and the largest absolute difference of softmax probabilities.
BF16_LOGIT_RTOL = 0.05
BF16_PROB_ATOL = 0.02


@pytest.fixture
def fp32_reference() -> None:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet18_2plus1d"])
def test_bf16_logits_and_loss_close_to_fp32(name: str, fp32_reference: None) -> None:
    torch.manual_seed(0)
    model = create_model(name).cuda().eval()
    x = torch.rand(2, 3, 4, 128, 128, device="cuda")
    y = torch.tensor([0, 2], device="cuda")
    with torch.no_grad():
        reference = model(x).float()
        model_cl = model.to(memory_format=torch.channels_last_3d)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fast = model_cl(x.contiguous(memory_format=torch.channels_last_3d)).float()
    scale = reference.abs().max().item()
    logit_err = (fast - reference).abs().max().item() / scale
    prob_err = (fast.softmax(-1) - reference.softmax(-1)).abs().max().item()
    loss_ref, loss_fast = F.cross_entropy(reference, y).item(), F.cross_entropy(fast, y).item()
    print(
        f"{name}: bf16 vs fp32 logit error {logit_err:.4f} of max |logit| {scale:.3f}, "
        f"prob error {prob_err:.5f}, loss {loss_fast:.5f} vs {loss_ref:.5f}"
    )
    assert torch.isfinite(fast).all()
    assert logit_err <= BF16_LOGIT_RTOL
    assert prob_err <= BF16_PROB_ATOL
    assert abs(loss_fast - loss_ref) <= 0.02 * max(loss_ref, 1.0)


def test_channels_last_fp32_equals_ncdhw_on_cuda(fp32_reference: None) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", widths=(16, 32, 64, 128)).cuda().eval()
    x = torch.rand(2, 3, 4, 64, 64, device="cuda")
    with torch.no_grad():
        reference = model(x)
        out = model.to(memory_format=torch.channels_last_3d)(
            x.contiguous(memory_format=torch.channels_last_3d)
        )
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)


def test_training_on_cuda_bf16_and_resume(tmp_path: Path) -> None:
    def trainer(epochs: int) -> Trainer:
        config = TrainConfig(
            out_dir=str(tmp_path),
            model="resnet18",
            model_overrides={"widths": (16, 32, 64, 128)},
            epochs=epochs,
            batch_size=8,
            lr_step=1,
            progress=False,
            device="cuda",
        )
        return Trainer(
            config,
            ToyVolumes(32, 0, uint8=True),
            ToyVolumes(16, 1, uint8=True),
            ["a", "b", "c"],
            split_hash="s",
        )

    first = trainer(1)
    assert first.precision == "bf16" and first.channels_last
    first.fit()
    second = trainer(2)
    result = second.fit(resume="auto")
    assert [row.epoch for row in result.history] == [1, 2]
    assert all(math.isfinite(row.train_loss) for row in result.history)
    assert second.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    state = torch.load(tmp_path / "last.pt", weights_only=True, map_location="cpu")
    assert state["precision"] == "bf16" and state["epoch"] == 2


def test_fp16_with_grad_scaler_trains(tmp_path: Path) -> None:
    config = TrainConfig(
        out_dir=str(tmp_path),
        model="resnet10",
        model_overrides={"widths": (8, 16, 16, 32)},
        epochs=1,
        batch_size=4,
        progress=False,
        device="cuda",
        precision="fp16",
    )
    trainer = Trainer(config, ToyVolumes(16, 0), None, ["a", "b", "c"])
    assert trainer.scaler.is_enabled()
    result = trainer.fit()
    assert math.isfinite(result.history[0].train_loss)


def test_compiled_model_matches_eager_on_cuda(fp32_reference: None) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", widths=(16, 32, 64, 128)).cuda().eval()
    x = torch.rand(2, 3, 4, 64, 64, device="cuda")
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, atol=1e-3, rtol=1e-3)
