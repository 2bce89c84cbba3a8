"""The "kinetics400" preset equals torchvision's video weights transforms, travels with
converted torchvision weights, and round-trips through the stacker's spec.

The oracle is torchvision's ``R3D_18_Weights.KINETICS400_V1.transforms()`` where torchvision
imports, else ``reference_transform`` below: a line-by-line copy of torchvision 0.28's
``VideoClassification.forward`` (resize to exactly (128, 171) with bilinear interpolation and
``antialias=False`` on the uint8 frames as float32, round back to uint8, centre crop with
Python's rounding, ``/ 255``, ``(x - mean) / std``, ``(T, C, H, W) -> (C, T, H, W)``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from resnet3d import presets
from resnet3d.data.volumes import SliceStacker
from resnet3d.models import convert

MEAN = (0.43216, 0.394666, 0.37645)
STD = (0.22803, 0.22145, 0.216989)


def reference_transform(frames: Tensor) -> Tensor:
    """torchvision's ``VideoClassification(crop_size=(112, 112), resize_size=(128, 171))``
    on uint8 ``(T, C, H, W)`` frames, without torchvision."""
    vid = frames.to(torch.float32)
    if tuple(vid.shape[-2:]) != (128, 171):
        vid = F.interpolate(
            vid, size=(128, 171), mode="bilinear", align_corners=False, antialias=False
        )
        vid = torch.round(vid).to(torch.uint8).to(torch.float32)
    top, left = round((128 - 112) / 2.0), round((171 - 112) / 2.0)
    vid = vid[..., top : top + 112, left : left + 112] / 255
    mean = torch.as_tensor(MEAN).view(-1, 1, 1)
    std = torch.as_tensor(STD).view(-1, 1, 1)
    return ((vid - mean) / std).permute(1, 0, 2, 3)


def torchvision_transform() -> Callable[[Tensor], Tensor] | None:
    """torchvision's own transform, or None where torchvision does not import (a CUDA
    build of torchvision next to a CPU torch fails at import with a RuntimeError)."""
    try:
        from torchvision.models.video import R3D_18_Weights
    except Exception:
        return None
    return R3D_18_Weights.KINETICS400_V1.transforms()  # type: ignore[no-any-return]


def oracles() -> list[Callable[[Tensor], Tensor]]:
    found = torchvision_transform()
    return [reference_transform] if found is None else [reference_transform, found]


def as_clip(volumes: np.ndarray) -> Tensor:
    """(N, C, D, H, W) volumes of consecutive frames as one (C, T, H, W) clip."""
    return torch.from_numpy(np.concatenate(list(volumes), axis=1))


@pytest.mark.parametrize("hw", [(48, 64), (128, 171), (150, 130)])
def test_preset_equals_torchvision_video_transforms(hw: tuple[int, int]) -> None:
    frames = np.random.default_rng(sum(hw)).integers(0, 256, (4, *hw, 3), dtype=np.uint8)
    ours = as_clip(SliceStacker.from_preset("kinetics400", depth=2).stack_array(frames))
    tchw = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    for oracle in oracles():
        expected = oracle(tchw)
        assert ours.shape == expected.shape == (3, 4, 112, 112)
        torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


def test_torchvision_numbers_when_torchvision_imports() -> None:
    transform = torchvision_transform()
    if transform is None:
        pytest.skip("torchvision does not import here")
    assert list(transform.crop_size) == [112, 112]  # type: ignore[attr-defined]
    assert list(transform.resize_size) == [128, 171]  # type: ignore[attr-defined]
    assert tuple(transform.mean) == presets.KINETICS400_MEAN  # type: ignore[attr-defined]
    assert tuple(transform.std) == presets.KINETICS400_STD  # type: ignore[attr-defined]


def test_resize_is_torchs_bilinear_without_antialiasing() -> None:
    image = np.random.default_rng(1).integers(0, 256, (40, 60), dtype=np.uint8)
    out = presets.resize_bilinear(image, (17, 23))
    ref = F.interpolate(
        torch.from_numpy(image).float()[None, None], size=(17, 23), mode="bilinear"
    ).round()
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, ref[0, 0].to(torch.uint8).numpy())
    floats = presets.resize_bilinear(image.astype(np.float32), (17, 23))
    assert floats.dtype == np.float32 and floats.shape == (17, 23)


def test_center_crop_rounds_as_torchvision_and_refuses_a_larger_crop() -> None:
    image = np.arange(5 * 8).reshape(5, 8)
    # top = round(1.5) = 2, left = round(2.5) = 2 (half to even)
    np.testing.assert_array_equal(presets.center_crop(image, (2, 3)), image[2:4, 2:5])
    with pytest.raises(ValueError, match="larger than"):
        presets.center_crop(image, (6, 3))


def test_preset_round_trips_and_plain_specs_keep_their_keys() -> None:
    stacker = SliceStacker.from_preset("kinetics400")
    spec = stacker.to_dict()
    assert spec == presets.get_preset("kinetics400")
    assert SliceStacker.from_dict(json.loads(json.dumps(spec))) == stacker
    assert (stacker.depth, stacker.crop, stacker.mean, stacker.std) == (16, (112, 112), MEAN, STD)
    assert "crop" in stacker.slice_spec()
    # Specs without crop or normalisation serialise byte for byte as before.
    plain = SliceStacker(depth=4, size=64)
    assert json.dumps(plain.to_dict()) == (
        '{"depth": 4, "stride": null, "size": [64, 64], "channels": 3, "window": null, '
        '"remainder": "drop", "pad_mode": "edge", "resample": "bilinear", "dtype": "float32"}'
    )
    assert list(plain.slice_spec()) == ["size", "channels", "window", "resample"]


def test_preset_errors_name_the_value() -> None:
    with pytest.raises(ValueError, match="kinetics400"):
        SliceStacker.from_preset("kinetic400")
    with pytest.raises(ValueError, match="mean and std"):
        SliceStacker(mean=MEAN)
    with pytest.raises(ValueError, match="one finite number per channel"):
        SliceStacker(mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="std values must be > 0"):
        SliceStacker(mean=MEAN, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="larger than size"):
        SliceStacker(size=64, crop=(65, 10))
    with pytest.raises(ValueError, match="resample"):
        SliceStacker(resample="torch_bicubic")


def test_normalised_volumes_stay_normalised_when_compact() -> None:
    # prepare_batch only divides uint8 by 255, so a normalising stacker sends floats.
    stacker = SliceStacker.from_preset("kinetics400", depth=2, size=(8, 12), crop=(4, 4))
    frames = np.random.default_rng(2).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
    prepared = stacker.replace(dtype="uint8").prepare(frames)
    assert prepared.dtype == np.uint8 and prepared.shape == (2, 4, 4, 3)
    compact = stacker.stack_prepared(prepared, compact=True)
    np.testing.assert_array_equal(compact, stacker.stack_prepared(prepared))
    assert compact.dtype == np.float32 and compact.min() < 0
    # uint8 output is the unnormalised levels (what a cache stores).
    levels = stacker.replace(dtype="uint8").stack_prepared(prepared)
    assert levels.dtype == np.uint8


def test_crop_applies_to_image_slices_and_deep_data(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(3)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    stacker = SliceStacker(depth=2, size=(16, 24), crop=(10, 10), resample="torch_bilinear")
    assert stacker(tmp_path).shape == (1, 3, 2, 10, 10)
    hu = rng.normal(0, 300, (2, 20, 30)).astype(np.float32)
    assert stacker.stack_array(hu, domain="hu").shape == (1, 3, 2, 10, 10)


def torchvision_r3d_18_state_dict() -> dict[str, Tensor]:
    """A randomly initialised r3d_18 in torchvision's layout (no download)."""
    torch.manual_seed(0)
    try:
        from torchvision.models.video import r3d_18

        return r3d_18(num_classes=5).state_dict()
    except Exception:  # torchvision missing or not importable: the test-local copy
        from tests.test_convert import tv_r3d_18

        return tv_r3d_18(5).state_dict()


def test_converted_torchvision_weights_preprocess_by_themselves(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import generate_video, write_video
    from resnet3d.data.video import read_frames
    from resnet3d.models.pretrained import from_pretrained
    from resnet3d.workflows import stacker_for

    model, report = convert.from_torchvision(torchvision_r3d_18_state_dict())
    assert model.pretrained_cfg is not None
    assert model.pretrained_cfg["preprocessing"] == presets.get_preset("kinetics400")
    assert "kinetics400" in str(report)
    model.save_pretrained(tmp_path / "export")
    stored = json.loads((tmp_path / "export" / "config.json").read_text(encoding="utf-8"))
    assert stored["preprocessing"] == presets.get_preset("kinetics400")

    loaded = from_pretrained(tmp_path / "export")
    stacker = stacker_for(loaded)
    assert stacker == SliceStacker.from_preset("kinetics400")

    video = write_video(tmp_path / "clip.mp4", generate_video("right", frames=16, size=32))
    clips = stacker(video)
    assert clips.shape == (1, 3, 16, 112, 112) and clips.dtype == torch.float32
    frames = torch.from_numpy(read_frames(video, np.arange(16))).permute(0, 3, 1, 2)
    torch.testing.assert_close(
        clips[0], reference_transform(frames.contiguous()), rtol=0, atol=1e-6
    )
