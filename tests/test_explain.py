"""Grad-CAM (resnet3d.explain): oracles, invariants, the scan pictures, the CLI, lesion overlap."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from tests.helpers.explain import exported_scan, hook_count, scan_model, tiny, write_scan
from torch import nn

import resnet3d
from resnet3d.cli import main
from resnet3d.data import phantom
from resnet3d.data.volumes import SliceStacker
from resnet3d.explain import (
    colorize,
    contact_sheet,
    default_layer,
    explain_scan,
    grad_cam,
    mask_overlap,
    occlusion,
    overlay,
    slice_heatmaps,
)
from resnet3d.workflows import stacker_for

# ----------------------------------------------------------------------------------- oracles


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        ("layer1", (2, 3, 4, 32, 32)),
        ("layer3", (2, 3, 8, 16, 24)),
        ("layer4", (2, 3, 4, 32, 32)),
        ("layer2.0.bn2", (2, 3, 8, 16, 24)),
    ],
)
def test_grad_cam_matches_monai(layer: str, shape: tuple[int, ...]) -> None:
    monai_cam = pytest.importorskip("monai.visualize").GradCAM
    model = tiny()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    # MONAI leaves its hooks on the module, so it gets a copy; its default post-processing
    # flips the map (min -> 1), so the raw upsampled maps are compared. It is called one
    # volume at a time: with a batch it indexes logits[:, classes] as a (B, B) block and
    # sums it, mixing the volumes' targets.
    reference = copy.deepcopy(model)
    nonzero = 0
    for target in (None, 1):
        ours = grad_cam(model, x, target=target, layer=layer, normalize=False)
        assert ours.heatmaps.shape == shape[:1] + shape[2:]
        for i in range(shape[0]):
            ref = monai_cam(nn_module=reference, target_layers=layer, postprocessing=lambda t: t)(
                x[i : i + 1], class_idx=target
            )[0, 0]
            torch.testing.assert_close(ours.heatmaps[i], ref, rtol=1e-5, atol=1e-8)
            nonzero += int(ref.max() > 0)
    assert nonzero >= shape[0]  # at least the predicted classes' maps are not all zero


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "layercam"])
def test_last_stage_closed_form(method: str) -> None:
    # After the last stage come a global average pool and a linear layer, so the gradient of
    # class c's logit is fc.weight[c] / (d h w) everywhere: Grad-CAM reduces to CAM (Zhou et
    # al.), Grad-CAM++'s alpha to 1 / (2 + sum(A_k) g_k) and LayerCAM's weights to relu(g).
    # No autograd in the oracle.
    model = tiny()
    x = torch.rand(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        feats = model.forward_features(x)
    z = feats[0, 0].numel()
    w = model.fc.weight[1].detach()[None, :, None, None, None]
    g = w / z
    if method == "gradcam":
        weights = g
    elif method == "layercam":
        weights = F.relu(g)
    else:
        alpha = g**2 / (2 * g**2 + feats.sum(dim=(2, 3, 4), keepdim=True) * g**3)
        weights = z * alpha * F.relu(g)
    cam = F.relu((weights * feats).sum(dim=1, keepdim=True))
    expected = F.interpolate(cam, size=(8, 32, 32), mode="trilinear", align_corners=False)[:, 0]
    ours = grad_cam(model, x, target=1, layer="layer4", method=method, normalize=False)
    torch.testing.assert_close(ours.heatmaps, expected, rtol=1e-4, atol=1e-6)
    assert ours.feature_shape == tuple(feats.shape[2:])


# --------------------------------------------------------------------------- model invariants


def test_model_is_left_as_it_was() -> None:
    model = tiny(dropout=0.3)
    model.train()
    model.layer2.eval()  # a mixed state must come back exactly
    flags = {name: m.training for name, m in model.named_modules()}
    state = copy.deepcopy(model.state_dict())
    x = torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    model.eval()
    with torch.no_grad():
        before = model(x)
    model.train()
    model.layer2.eval()

    for method, layer in [("gradcam", "auto"), ("gradcam++", "layer1.0.bn1"), ("gradcam", "relu")]:
        with torch.no_grad():  # a caller's no_grad must not break it
            grad_cam(model, x, layer=layer, method=method, batch_size=2)

    assert hook_count(model) == 0
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():  # BN running stats were not updated
        assert torch.equal(value, state[key]), key
    model.eval()
    with torch.no_grad():
        after = model(x)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_hooks_removed_when_it_fails() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="not a \\(B, C, D, H, W\\) feature map"):
        grad_cam(model, torch.rand(1, 3, 4, 16, 16), layer="fc")
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, torch.rand(1, 3, 4, 16, 16), target=7)
    assert hook_count(model) == 0
    assert not model.training


def test_frozen_parameters_and_inference_tensors() -> None:
    model = tiny()
    reference = grad_cam(model, torch.ones(1, 3, 4, 16, 16) * 0.5).heatmaps
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.inference_mode():
        x = torch.ones(1, 3, 4, 16, 16) * 0.5
    cam = grad_cam(model, x)
    torch.testing.assert_close(cam.heatmaps, reference)
    assert all(not p.requires_grad for p in model.parameters())
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        grad_cam(model, x)


def test_batching_and_dtypes_do_not_change_maps() -> None:
    model = tiny()
    x8 = torch.randint(0, 256, (5, 3, 4, 24, 24), dtype=torch.uint8)
    x = x8.float() / 255.0
    one = grad_cam(model, x, batch_size=1)
    many = grad_cam(model, x8, batch_size=4)
    torch.testing.assert_close(one.heatmaps, many.heatmaps, rtol=1e-4, atol=1e-5)
    assert torch.equal(one.targets, many.targets)
    numpy_in = grad_cam(model, x.numpy(), batch_size=5)
    torch.testing.assert_close(one.heatmaps, numpy_in.heatmaps, rtol=1e-4, atol=1e-5)
    # the predicted class is the default target; probabilities are the model's
    with torch.no_grad():
        probs = model(x).softmax(dim=1)
    assert torch.equal(one.targets, probs.argmax(dim=1))
    torch.testing.assert_close(one.probs, probs)
    h = one.heatmaps.reshape(5, -1)
    assert torch.all(h.min(dim=1).values == 0) and torch.all(h.max(dim=1).values == 1)


def test_targets_by_name_and_per_volume() -> None:
    model = tiny()
    model.pretrained_cfg = {"labels": ["NCP", "CP", "Normal"]}
    x = torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    by_name = grad_cam(model, x, target="CP", normalize=False)
    by_index = grad_cam(model, x, target=1, normalize=False)
    torch.testing.assert_close(by_name.heatmaps, by_index.heatmaps)
    mixed = grad_cam(model, x, target=["NCP", 1, "Normal"], normalize=False)
    assert mixed.targets.tolist() == [0, 1, 2]
    torch.testing.assert_close(mixed.heatmaps[1], by_index.heatmaps[1])
    with pytest.raises(ValueError, match="Did you mean 'NCP'"):
        grad_cam(model, x, target="NPC")
    with pytest.raises(ValueError, match="one per volume"):
        grad_cam(model, x, target=[0, 1])


DEEP = ("resnet101", "resnet152", "resnet200")  # 100+ layers: seconds each on a busy CPU


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in DEEP else n for n in resnet3d.list_models()],
)
def test_every_registered_model(name: str) -> None:
    model = tiny(name, widths=(4, 4, 8, 8))
    x = torch.rand(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    method = "gradcam++" if "2plus1d" in name or name.endswith("50") else "gradcam"
    cam = grad_cam(model, x, method=method)
    assert cam.heatmaps.shape == (2, 4, 16, 16)
    assert cam.layer == default_layer(model, x.shape)
    assert torch.isfinite(cam.heatmaps).all()
    assert float(cam.heatmaps.min()) >= 0 and float(cam.heatmaps.max()) <= 1
    assert hook_count(model) == 0


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 8, 16, 32, 64])
@pytest.mark.parametrize("stem_stride", [(1, 2, 2), (2, 2, 2)])
def test_default_layer_is_deepest_stage_with_depth(
    depth: int, stem_stride: tuple[int, ...]
) -> None:
    model = tiny("resnet10", stem_stride=stem_stride)
    x = torch.zeros(1, 3, depth, 8, 8)
    depths = {}
    with torch.no_grad():  # the real output depth of every stage, as the oracle
        h = model.forward_stem(x)
        for info in model.feature_info:
            h = getattr(model, info["module"])(h)
            depths[info["module"]] = h.shape[2]
    resolving = [name for name, d in depths.items() if d > 1]
    expected = resolving[-1] if resolving else "layer4"
    assert default_layer(model, x.shape) == expected
    if (depth, stem_stride) == (4, (1, 2, 2)):
        assert expected == "layer1"  # the paper's stem at the paper's depth: documented


def test_bad_input_is_explained() -> None:
    model = tiny()
    x = torch.rand(1, 3, 4, 16, 16)
    with pytest.raises(ValueError, match="Did you mean 'layer3'"):
        grad_cam(model, x, layer="layr3")
    with pytest.raises(ValueError, match="Did you mean 'gradcam'"):
        grad_cam(model, x, method="gradcan")
    with pytest.raises(ValueError, match="5-D"):
        grad_cam(model, x[0])
    with pytest.raises(ValueError, match="empty"):
        grad_cam(model, x[:0])
    with pytest.raises(TypeError, match=r"torch\.Tensor or numpy"):
        grad_cam(model, [[1.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        grad_cam(model, x, batch_size=0)
    with pytest.raises(ValueError, match="input channels"):
        grad_cam(model, torch.rand(1, 1, 4, 16, 16))
    headless = tiny(num_classes=0)
    with pytest.raises(ValueError, match="num_classes=0"):
        grad_cam(headless, x)
    with pytest.raises(ValueError, match="feature_info"):
        grad_cam(nn.Sequential(nn.Conv3d(3, 2, 1), nn.Flatten(), nn.LazyLinear(2)), x)


# ------------------------------------------------------------------------ volumes -> slices


@pytest.mark.parametrize(
    "spec",
    [
        {"depth": 4},
        {"depth": 4, "stride": 2},
        {"depth": 4, "stride": 3, "remainder": "overlap"},
        {"depth": 4, "remainder": "pad"},
        {"depth": 4, "remainder": "pad", "pad_mode": "zero"},
        {"depth": 8, "remainder": "pad"},
        {"depth": 4, "stride": 6},
    ],
)
def test_slice_heatmaps_against_a_loop(spec: dict[str, Any]) -> None:
    stacker = SliceStacker(size=None, **spec)
    n = 11
    idx = stacker.volume_indices(n)
    rng = np.random.default_rng(0)
    maps = rng.random((len(idx), stacker.depth, 3, 5)).astype(np.float32)
    heat, covered = slice_heatmaps(torch.from_numpy(maps), idx, n)
    for s in range(n):  # oracle: a plain loop over every (volume, position) that is slice s
        parts = []
        for v, row in enumerate(idx):
            for j, value in enumerate(row):
                padding = value < 0 or (j > 0 and row[j - 1] == value)
                if value == s and not padding:
                    parts.append(maps[v, j])
        assert covered[s] == bool(parts)
        if parts:
            np.testing.assert_allclose(heat[s], np.mean(parts, axis=0), rtol=1e-6)
        else:
            assert np.isnan(heat[s]).all()


def test_slice_heatmaps_put_each_map_on_its_slice() -> None:
    stacker = SliceStacker(depth=4, stride=2, remainder="pad", size=None)
    n = 9
    idx = stacker.volume_indices(n)
    maps = np.broadcast_to(idx[:, :, None, None].astype(np.float32), (*idx.shape, 2, 2)).copy()
    maps[idx < 0] = 1000.0
    heat, covered = slice_heatmaps(maps, idx, n)
    assert covered.all()
    np.testing.assert_array_equal(heat[:, 0, 0], np.arange(n, dtype=np.float32))
    with pytest.raises(ValueError, match="slice numbers must be in"):
        slice_heatmaps(maps, idx, 5)
    with pytest.raises(ValueError, match="one slice number per"):
        slice_heatmaps(maps, idx[:, :2], n)


# ------------------------------------------------------------------------------- pictures


def test_colorize_is_matplotlib_jet() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    x = np.arange(256) / 255.0
    ref = np.rint(matplotlib.colormaps["jet"](x)[:, :3] * 255).astype(int)
    ours = colorize(x).astype(int)
    assert np.abs(ours - ref).max() <= 1
    assert colorize(np.array([np.nan, -1.0, 2.0])).tolist() == [
        [0, 0, 0],
        colorize(np.array(0.0)).tolist(),
        colorize(np.array(1.0)).tolist(),
    ]


def test_overlay_blends_by_heat() -> None:
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    heat = rng.random((6, 7))
    plain = np.repeat(gray[..., None], 3, axis=-1)
    assert np.array_equal(overlay(gray, heat, alpha=0.0), plain)
    assert np.array_equal(overlay(gray, np.zeros((6, 7))), plain)
    assert np.array_equal(overlay(gray, np.full((6, 7), np.nan)), plain)
    full = overlay(gray, np.ones((6, 7)), alpha=1.0)
    assert np.array_equal(full, np.broadcast_to(colorize(np.ones(1))[0], full.shape))
    half = overlay(gray.astype(np.float32) / 255.0, heat, alpha=0.5).astype(float)
    a = 0.5 * heat[..., None]
    expected = plain * (1 - a) + colorize(heat).astype(float) * a
    assert np.abs(half - expected).max() <= 1.0
    with pytest.raises(ValueError, match="same shape"):
        overlay(gray, heat[:, :3])
    with pytest.raises(ValueError, match="alpha"):
        overlay(gray, heat, alpha=1.5)


def test_contact_sheet_layout() -> None:
    tiles = [np.full((20, 10, 3), i * 20, dtype=np.uint8) for i in range(7)]
    sheet = contact_sheet(tiles, columns=3, tile=40)
    assert sheet.size == (3 * 20 + 2 * 2, 3 * 40 + 2 * 2)
    titled = contact_sheet(tiles, tile=40, captions=list("abcdefg"), title=["scan", "x"])
    assert titled.width == 3 * 20 + 4 and titled.height > 3 * 40 + 4
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([])
    with pytest.raises(ValueError, match="captions"):
        contact_sheet(tiles, captions=["a"])


# --------------------------------------------------------------------------------- mask score


def test_mask_overlap_against_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    heat = rng.random((4, 10, 10))
    mask = rng.random((4, 10, 10)) < 0.2
    region = rng.random((4, 10, 10)) < 0.8
    region |= mask & (rng.random(mask.shape) < 0.5)
    score = mask_overlap(heat, mask, region, top=0.25)
    values, inside = heat[region], mask[region]
    k = round(0.25 * values.size)
    predicted = values >= np.sort(values)[-k]  # random floats: no ties
    assert score.n_top == k == predicted.sum()
    assert score.hit_rate == pytest.approx(metrics.precision_score(inside, predicted))
    assert score.chance == pytest.approx(inside.mean())
    assert score.energy == pytest.approx(values[inside].sum() / values.sum())
    assert score.lift == pytest.approx(score.hit_rate / score.chance)


def test_mask_overlap_chance_and_perfect_maps() -> None:
    rng = np.random.default_rng(3)
    mask = np.zeros((8, 32, 32), dtype=bool)
    mask[2:5, 8:16, 8:16] = True
    perfect = mask_overlap(mask.astype(float) + rng.random(mask.shape) * 0.1, mask, top=0.02)
    assert perfect.hit_rate == 1.0
    hits = [mask_overlap(rng.random(mask.shape), mask, top=0.05).hit_rate for _ in range(200)]
    chance = mask.mean()
    # a random map of the same area hits at the mask's share of the region, on average
    assert abs(np.mean(hits) - chance) < 4 * np.std(hits) / math.sqrt(len(hits))
    # Ties share the places at the threshold: a constant map scores chance exactly, and a
    # map hot on half of the mask plus a tie elsewhere is computed by hand.
    flat = mask_overlap(np.zeros(mask.shape), mask, top=0.1)
    assert flat.hit_rate == pytest.approx(chance) and flat.lift == pytest.approx(1.0)
    small = np.zeros((10,), dtype=bool)
    small[:4] = True
    heat = np.array([5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    # top 4: the two 5s (both in the mask) and 2 of the four tied 1s (half of them inside)
    assert mask_overlap(heat, small, top=0.4).hit_rate == pytest.approx((2 + 2 * 0.5) / 4)
    with pytest.raises(ValueError, match="same shape"):
        mask_overlap(rng.random((2, 2)), mask)
    with pytest.raises(ValueError, match="no voxel inside the region"):
        mask_overlap(rng.random(mask.shape), np.zeros_like(mask))
    with pytest.raises(ValueError, match="top"):
        mask_overlap(rng.random(mask.shape), mask, top=0.0)


# ----------------------------------------------------------------------------------- one scan


def test_explain_scan_writes_one_overlay_per_slice(tmp_path: Path) -> None:
    from resnet3d.workflows import predict_scans

    scan = write_scan(tmp_path / "scan", n=10)
    model = scan_model()
    model.train()
    out = tmp_path / "out"
    result = explain_scan(model, scan, out_dir=out, batch_size=2)
    assert model.training and hook_count(model) == 0

    # 10 slices in depth-4 volumes with remainder="drop": slices 8 and 9 are in no volume
    assert result.heatmaps.shape == (10, 32, 32) and result.slices.shape == (10, 32, 32)
    assert result.covered.tolist() == [True] * 8 + [False] * 2
    assert np.isnan(result.heatmaps[8:]).all()
    cov = result.heatmaps[:8]
    assert cov.min() == 0.0 and cov.max() == 1.0  # normalize="scan"
    model.eval()
    reference = predict_scans(model, [scan])[0]
    np.testing.assert_allclose(result.probs, reference.probs, rtol=1e-5)
    assert result.prediction == reference.label == result.target_label

    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"slice_{i:04d}.png" for i in range(10)] + ["contact_sheet.png", "explanation.json"]
    )
    assert result.files == [out / f"slice_{i:04d}.png" for i in range(10)]
    with Image.open(result.files[0]) as im:
        assert im.mode == "RGB" and im.size == (256, 256)  # 32 px upscaled 8x for legibility
    with Image.open(result.files[9]) as im:  # uncovered: the plain slice (below the text)
        pixels = np.asarray(im)[100:140]
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["prediction"] == result.prediction
    assert summary["uncovered_slices"] == [8, 9]
    assert summary["layer"] == "layer1" and summary["feature_shape"] == [2, 8, 8]

    # a shorter scan explained into the same folder leaves no overlay of the longer one
    short = write_scan(tmp_path / "short", n=4)
    again = explain_scan(model, short, out_dir=out, target="CP", method="gradcam++")
    assert sorted(p.name for p in out.glob("slice_*.png")) == [
        f"slice_{i:04d}.png" for i in range(4)
    ]
    assert again.target_label == "CP" and again.covered.all()


def test_explain_scan_warns_about_an_empty_map(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A classifier of zeros gives every feature map a zero weight: the ReLU leaves nothing.
    scan = write_scan(tmp_path / "scan", n=4)
    model = scan_model()
    with torch.no_grad():
        model.fc.weight.zero_()
    with caplog.at_level("WARNING", logger="resnet3d.explain"):
        result = explain_scan(model, scan)
    assert np.all(result.heatmaps == 0.0)
    assert "zero everywhere" in caplog.text and "layercam" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="resnet3d.explain"):
        explain_scan(scan_model(), scan)
    assert "zero everywhere" not in caplog.text


def test_explain_scan_volume_normalisation_and_overlap(tmp_path: Path) -> None:
    scan = write_scan(tmp_path / "scan", n=9)
    model = scan_model()
    stacker = SliceStacker(depth=4, stride=2, size=32, channels=1, remainder="overlap")
    result = explain_scan(model, scan, stacker, normalize="volume", target=0)
    cam = grad_cam(model, stacker(scan), target=0)  # per volume, already in [0, 1]
    expected, covered = slice_heatmaps(cam.heatmaps, stacker.volume_indices(9), 9)
    assert covered.all()
    np.testing.assert_allclose(result.heatmaps, expected, rtol=1e-5, atol=1e-6)
    assert result.files == [] and result.contact_sheet is None  # no out_dir: nothing written


def test_explain_scan_errors(tmp_path: Path) -> None:
    model = scan_model()
    with pytest.raises(FileNotFoundError, match="scan not found"):
        explain_scan(model, tmp_path / "missing")
    scan = write_scan(tmp_path / "scan", n=3)
    with pytest.raises(ValueError, match="remainder='pad'"):
        explain_scan(model, scan)
    with pytest.raises(ValueError, match="Did you mean 'scan'"):
        explain_scan(model, scan, normalize="scna")
    bare = tiny("resnet10", in_channels=1)
    with pytest.raises(ValueError, match="preprocessing spec"):
        explain_scan(bare, scan)


# ------------------------------------------------------------------------------------- CLI


def test_cli_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = exported_scan(tmp_path)
    out = tmp_path / "out"
    assert main([*argv, "--target", "Normal", "--layer", "layer2"]) == 0
    text = capsys.readouterr().out
    assert "gradcam of class Normal at layer2" in text and "wrote 8 overlays" in text
    assert len(list(out.glob("slice_*.png"))) == 8 and (out / "contact_sheet.png").is_file()

    assert main([*argv, "--target", "2", "--depth", "3", "--remainder", "overlap"]) == 0
    summary = json.loads((out / "explanation.json").read_text())
    assert summary["target"] == "Normal" and summary["n_volumes"] == 3

    assert main([*argv, "--target", "Norml"]) == 2
    assert "Did you mean 'Normal'" in capsys.readouterr().err
    assert main([*argv, "--layer", "layer9"]) == 2
    assert "is not a submodule" in capsys.readouterr().err
    missing = [*argv[:1], str(tmp_path / "nope"), *argv[2:]]
    assert main(missing) == 2
    assert "scan not found" in capsys.readouterr().err


# ------------------------------------------------------------- lesion overlap, trained model

LABELS = ("NCP", "CP", "Normal")
SIZE, N_SLICES, LESION_SCALE = 48, 16, 2.5  # the demo draws findings 2.5 times larger too
STACKER = SliceStacker(depth=4, size=SIZE, channels=1)
METHODS_USED = ("gradcam", "layercam")


def phantom_volumes(seed: int, label: str) -> tuple[phantom.PhantomScan, np.ndarray]:
    scan = phantom.generate_scan(
        label, seed, N_SLICES, SIZE, return_hu=False, lesion_scale=LESION_SCALE
    )
    return scan, STACKER.stack_array(scan.slices)


@pytest.fixture(scope="module")
def phantom_model() -> nn.Module:
    """resnet10 (widths 8-64, 1 channel) trained 10 epochs on 48 px phantom volumes.

    Every training patient is drawn as all three classes: the phantom draws the same chest
    (and noise) for a seed whatever the class, so the finding is the only thing that tells
    the classes apart and the model cannot learn patients instead. NCP and CP volumes that
    hold no lesion voxel are left out (their label would be noise). About a minute on two
    busy cores.
    """
    xs, ys = [], []
    for p in range(16):
        for y, label in enumerate(LABELS):
            scan, volumes = phantom_volumes(1000 + p, label)
            for volume, rows in zip(volumes, STACKER.volume_indices(N_SLICES)):
                if label == "Normal" or scan.lesion_mask[rows].any():
                    xs.append(volume)
                    ys.append(y)
    x, y_true = torch.from_numpy(np.stack(xs)), torch.tensor(ys)
    torch.manual_seed(0)
    model = resnet3d.create_model("resnet10", in_channels=1, num_classes=3, widths=(8, 16, 32, 64))
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(10):
        model.train()
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), 8):
            batch = perm[start : start + 8]
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            loss = F.cross_entropy(model(x[batch]), y_true[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@pytest.mark.slow
def test_heatmaps_find_the_phantom_lesions(phantom_model: nn.Module) -> None:
    """On held-out phantom patients, the true class's map hits the lesion above chance.

    For every NCP and CP scan of 6 patients never seen in training: the per-slice heatmap
    (default layer: layer1, the only stage with depth > 1 at D = 4) of the true class; of the
    10% hottest lung voxels, the fraction inside the lesion mask (hit rate) against the
    lesion's share of the lung (what a random map of the same area hits on average).
    """
    hits: dict[str, dict[str, list[float]]] = {m: {"NCP": [], "CP": []} for m in METHODS_USED}
    chances: dict[str, list[float]] = {"NCP": [], "CP": []}
    correct = []
    for p in range(6):
        for y, label in enumerate(LABELS):
            scan, volumes = phantom_volumes(5000 + p, label)
            for method in METHODS_USED if label != "Normal" else ("gradcam",):
                cam = grad_cam(phantom_model, volumes, target=y, method=method, normalize=False)
                assert cam.layer == "layer1"
                if method == "gradcam":
                    correct.append(int(cam.probs.mean(dim=0).argmax()) == y)
                if label == "Normal":
                    continue
                heat, covered = slice_heatmaps(
                    cam.heatmaps, STACKER.volume_indices(N_SLICES), N_SLICES
                )
                score = mask_overlap(
                    heat[covered], scan.lesion_mask[covered], scan.lung_mask[covered], top=0.1
                )
                hits[method][label].append(score.hit_rate)
                if method == "gradcam":
                    chances[label].append(score.chance)
    # The premise: the model learned the findings (chance is 1/3).
    assert np.mean(correct) >= 0.6, f"held-out scan accuracy {np.mean(correct):.2f}"

    def lift(method: str, labels: tuple[str, ...] = ("NCP", "CP")) -> float:
        hit = np.mean([h for lab in labels for h in hits[method][lab]])
        return float(hit / np.mean([c for lab in labels for c in chances[lab]]))

    figures = {m: (lift(m), lift(m, ("CP",)), lift(m, ("NCP",))) for m in METHODS_USED}
    report = ", ".join(
        f"{m}: all {a:.2f} CP {c:.2f} NCP {n:.2f}" for m, (a, c, n) in figures.items()
    )
    # Measured with this recipe (seed 0; seeds 1 and 2 of the model in brackets), hit rate
    # over chance: LayerCAM all 1.98 (1.81, 1.92), CP 2.98 (2.6, 2.5); Grad-CAM all 2.21
    # (1.64, 1.25), CP 3.13. NCP's small peripheral opacities are found by neither (0.85-1.2).
    print(f"\nlesion overlap (hit rate / chance): {report}")
    assert figures["layercam"][0] >= 1.5, report
    assert figures["layercam"][1] >= 2.0, report
    assert figures["gradcam"][0] > 1.0, report


# ------------------------------------------------------------- lesion overlap, the demo's model


DEMO_METHODS = ("gradcam", "occlusion")


def demo_patients(settings: dict[str, Any], count: int) -> list[phantom.PhantomScan]:
    """Scans of ``count`` new patients drawn as the demo draws its data (same seed, size,
    finding scale, 12-16 slices), numbered from 1000 so none is one of the demo's."""
    return [
        phantom.generate_scan(
            LABELS[p % 3],
            phantom.patient_seed(settings["seed"], p),
            12 + p % 5,
            settings["size"],
            return_hu=False,
            lesion_scale=settings["lesion_scale"],
        )
        for p in range(1000, 1000 + count)
    ]


@pytest.mark.slow
def test_demo_model_heatmaps_find_the_lesions(demo_run: Path) -> None:
    """The model that ``resnet3d demo`` trained, on new phantom patients drawn its way.

    For every NCP and CP scan: the per-slice map of the true class (default settings, raw
    maps), the 10% hottest lung voxels, their share inside the lesion mask (hit rate)
    against the lesion's share of the lung (chance, what a random map of the same area hits).
    Grad-CAM on 60 patients (40 NCP/CP scans), occlusion, 50 times slower, on the first 30
    (20 scans). Measured (seed 0, CPU): accuracy 0.92; Grad-CAM lift CP 2.38, NCP 1.04 (16 of
    20 NCP maps are zero everywhere); occlusion lift CP 3.24, NCP 2.62 (docs/explain.md).
    """
    settings = json.loads((demo_run / "data" / "phantom.json").read_text())
    model = resnet3d.from_pretrained(demo_run / "export").eval()
    stacker = stacker_for(model)
    hits: dict[str, dict[str, list[float]]] = {m: {"NCP": [], "CP": []} for m in DEMO_METHODS}
    chances: dict[str, dict[str, list[float]]] = {m: {"NCP": [], "CP": []} for m in DEMO_METHODS}
    correct = []
    for i, scan in enumerate(demo_patients(settings, 60)):
        y = LABELS.index(scan.label)
        n = len(scan.slices)
        volumes = stacker.stack_array(scan.slices)
        maps = {"gradcam": grad_cam(model, volumes, target=y, normalize=False)}
        correct.append(int(maps["gradcam"].probs.mean(dim=0).argmax()) == y)
        if scan.label == "Normal":
            continue
        if i < 30:
            maps["occlusion"] = occlusion(model, volumes, target=y, normalize=False)
        for method, result in maps.items():
            heat, covered = slice_heatmaps(result.heatmaps, stacker.volume_indices(n), n)
            score = mask_overlap(
                heat[covered], scan.lesion_mask[covered], scan.lung_mask[covered], top=0.1
            )
            hits[method][scan.label].append(score.hit_rate)
            chances[method][scan.label].append(score.chance)
    lift = {
        (m, k): float(np.mean(hits[m][k]) / np.mean(chances[m][k]))
        for m in DEMO_METHODS
        for k in ("NCP", "CP")
    }
    report = f"accuracy {np.mean(correct):.2f}; lift " + ", ".join(
        f"{m} {k} {v:.2f}" for (m, k), v in lift.items()
    )
    print(f"\ndemo model, new patients: {report}")
    assert np.mean(correct) >= 0.8, report  # the premise: it learned the findings
    assert lift[("gradcam", "CP")] >= 1.6, report
    assert lift[("occlusion", "CP")] >= 2.2, report
    assert lift[("occlusion", "NCP")] >= 1.6, report
