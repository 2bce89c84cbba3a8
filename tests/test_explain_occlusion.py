"""Occlusion sensitivity (resnet3d.explain.occlusion): MONAI oracle, invariants, scans, CLI."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.explain import exported_scan, hook_count, scan_model, tiny, write_scan
from torch import Tensor, nn

from resnet3d.cli import explain as cli_explain
from resnet3d.cli import main
from resnet3d.explain import FILLS, METHODS, explain_scan, occlusion


def monai_occlusion(
    model: nn.Module, x: Tensor, mask: tuple[int, int, int], mode: str | float
) -> Tensor:
    """MONAI's map of every class: the mean logit over the windows that hide each voxel."""
    sensitivity = pytest.importorskip("monai.visualize").OcclusionSensitivity
    occ = sensitivity(
        copy.deepcopy(model),
        mask_size=mask,
        n_batch=7,
        verbose=False,
        mode=mode,
        overlap=0.5,
        activate=False,  # raw logits, not softmax
    )
    with warnings.catch_warnings():
        # MONAI indexes with lists, which torch deprecates; its warnings are not ours to test.
        warnings.simplefilter("ignore", UserWarning)
        maps, _ = occ(x)
    return torch.as_tensor(maps)[0]


# ----------------------------------------------------------------------------------- oracle


@pytest.mark.parametrize(
    ("shape", "mask", "kwargs"),
    [
        # The defaults: half the depth, a quarter of the slice, moved by half a window.
        ((1, 3, 4, 32, 32), (2, 8, 8), {}),
        # Odd sizes: MONAI moves the last window flush with the end, as occlusion does.
        ((1, 3, 5, 20, 24), (3, 6, 8), {"patch": (3, 6, 8), "stride": (1, 3, 4)}),
    ],
)
def test_occlusion_matches_monai(
    shape: tuple[int, ...], mask: tuple[int, int, int], kwargs: dict[str, object]
) -> None:
    # MONAI's OcclusionSensitivity returns, per voxel, the mean logit of the occluded copies;
    # ours is the mean drop, base - that mean, clipped at zero.
    model = tiny()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(4))
    reference = monai_occlusion(model, x, mask, 0.3)
    with torch.no_grad():
        base = model(x)[0]
    for target in range(3):
        ours = occlusion(model, x, target=target, fill=0.3, normalize=False, **kwargs)
        expected = (base[target] - reference[target]).clamp_min(0.0)
        torch.testing.assert_close(ours.heatmaps[0], expected, rtol=1e-5, atol=1e-6)
        assert ours.targets.tolist() == [target]
    assert ours.layer == "input" and ours.method == "occlusion"


def test_mean_fill_matches_monai_mean_image() -> None:
    # One channel: the volume's mean per channel is MONAI's mean of the whole image.
    model = tiny(in_channels=1)
    x = torch.rand(1, 1, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    reference = monai_occlusion(model, x, (2, 8, 8), "mean_img")
    ours = occlusion(model, x, target=2, normalize=False)
    with torch.no_grad():
        base = model(x)[0, 2]
    torch.testing.assert_close(
        ours.heatmaps[0], (base - reference[2]).clamp_min(0.0), rtol=1e-5, atol=1e-6
    )


class BoxScore(nn.Module):
    """Class 0's logit is the input's sum inside a box, class 1's is minus that."""

    def __init__(self, box: tuple[slice, slice, slice]) -> None:
        super().__init__()
        self.box = box
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        s = x[:, :, self.box[0], self.box[1], self.box[2]].sum(dim=(1, 2, 3, 4)) * self.scale
        return torch.stack([s, -s], dim=1)


def test_map_points_at_what_the_score_reads() -> None:
    # The model reads one box; hiding anything else changes nothing.
    box = (slice(1, 3), slice(8, 12), slice(20, 24))
    model = BoxScore(box)
    x = torch.rand(2, 1, 4, 32, 32, generator=torch.Generator().manual_seed(6)) + 0.5
    occ = occlusion(model, x, target=0, patch=(1, 4, 4), stride=(1, 4, 4), fill="zero")
    inside = torch.zeros(4, 32, 32, dtype=torch.bool)
    inside[box] = True
    for heat in occ.heatmaps:
        assert heat[inside].min() > 0 and heat[~inside].max() == 0
        assert heat.max() == 1.0  # normalised per volume
    # Class 1 only gains when the box is hidden: no evidence anywhere, an all-zero map.
    assert occlusion(model, x, target=1, fill="zero").heatmaps.max() == 0


# ------------------------------------------------------------------------------ invariants


def test_model_is_left_as_it_was_and_inference_mode_works() -> None:
    model = tiny(dropout=0.3)
    model.train()
    model.layer2.eval()
    flags = {name: m.training for name, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    x = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    first = occlusion(model, x, batch_size=5)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert hook_count(model) == 0 and all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():  # BN running stats were not updated
        assert torch.equal(value, state[key]), key
    with torch.inference_mode():  # no gradients needed, unlike Grad-CAM
        again = occlusion(model, x, batch_size=5)
    torch.testing.assert_close(again.heatmaps, first.heatmaps)


def test_batching_dtypes_and_targets() -> None:
    model = tiny()
    x8 = torch.randint(0, 256, (3, 3, 4, 16, 16), dtype=torch.uint8)
    xf = x8.float() / 255.0
    one = occlusion(model, xf, batch_size=1, normalize=False)
    many = occlusion(model, x8, batch_size=64, normalize=False)
    torch.testing.assert_close(one.heatmaps, many.heatmaps, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one.probs, many.probs)
    assert torch.equal(one.targets, one.probs.argmax(dim=1))  # default: the predicted class
    model.pretrained_cfg = {"labels": ["NCP", "CP", "Normal"]}
    named = occlusion(model, xf.numpy(), target=["CP", 0, "Normal"], normalize=False)
    assert named.targets.tolist() == [1, 0, 2]
    assert named.heatmaps.min() >= 0


def test_bad_input_is_explained() -> None:
    model = tiny()
    x = torch.rand(1, 3, 4, 16, 16)
    with pytest.raises(ValueError, match=">= 1 voxel"):
        occlusion(model, x, patch=0)
    with pytest.raises(ValueError, match=">= 1 voxel"):
        occlusion(model, x, stride=(1, 0, 2))
    with pytest.raises(TypeError, match="three ints"):
        occlusion(model, x, patch=(2, 8))
    with pytest.raises(TypeError, match="three ints"):
        occlusion(model, x, stride=True)
    with pytest.raises(ValueError, match="Did you mean 'mean'"):
        occlusion(model, x, fill="maen")
    with pytest.raises(TypeError, match="finite number"):
        occlusion(model, x, fill=float("nan"))
    with pytest.raises(ValueError, match="batch_size"):
        occlusion(model, x, batch_size=0)
    with pytest.raises(ValueError, match="5-D"):
        occlusion(model, x[0])
    with pytest.raises(ValueError, match="out of range"):
        occlusion(model, x, target=3)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        occlusion(lambda v: v, x)  # type: ignore[arg-type]


def test_windows_cover_every_voxel() -> None:
    # Windows larger than the volume are clipped; an odd stride still reaches the far end.
    model = tiny()
    x = torch.rand(1, 3, 3, 17, 19, generator=torch.Generator().manual_seed(8))
    occ = occlusion(model, x, patch=(9, 40, 5), stride=(1, 1, 4), normalize=False)
    assert occ.feature_shape == (1, 1, 5)  # starts 0, 4, 8, 12 and 14 along the width
    assert occ.heatmaps.shape == (1, 3, 17, 19) and torch.isfinite(occ.heatmaps).all()


# ---------------------------------------------------------------------------- scans and CLI


def test_explain_scan_with_occlusion(tmp_path: Path) -> None:
    scan = write_scan(tmp_path / "scan", n=8)
    model = scan_model()
    out = tmp_path / "out"
    result = explain_scan(model, scan, out_dir=out, method="occlusion", patch=16, stride=8)
    assert result.method == "occlusion" and result.layer == "input"
    assert result.feature_shape == (3, 3, 3)
    assert result.heatmaps.shape == (8, 32, 32) and np.nanmax(result.heatmaps) == 1.0
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["method"] == "occlusion" and summary["layer"] == "input"
    assert len(list(out.glob("slice_*.png"))) == 8
    with pytest.raises(ValueError, match="occlusion hides parts of the input"):
        explain_scan(model, scan, method="occlusion", layer="layer2")
    with pytest.raises(ValueError, match="method='occlusion' only"):
        explain_scan(model, scan, patch=8)


def test_cli_explain_occlusion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_explain.METHODS == METHODS and cli_explain.FILLS == FILLS
    argv = exported_scan(tmp_path)
    out = tmp_path / "out"
    assert main([*argv, "--method", "occlusion", "--patch", "16", "--fill", "zero"]) == 0
    text = capsys.readouterr().out
    assert "occlusion of class" in text and "grid of 3 x 3 x 3 windows" in text
    assert json.loads((out / "explanation.json").read_text())["method"] == "occlusion"
    assert main([*argv, "--patch", "8"]) == 2
    assert "--patch and --stride apply to --method occlusion" in capsys.readouterr().err
    assert main([*argv, "--method", "occlusion", "--layer", "layer2"]) == 2
    assert "occlusion has no layer" in capsys.readouterr().err
