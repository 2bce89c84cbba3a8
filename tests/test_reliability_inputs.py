"""Reliability, model inputs: a bad tensor is a ValueError from the model that names its shape
or dtype and what the model expects, not a RuntimeError from inside a convolution."""

from __future__ import annotations

import pytest
import torch

import resnet3d

# One model per stem kind: the paper's 7x7x7 stem and the (2+1)D stem of two convolutions.
MODELS = ["resnet18", "resnet18_2plus1d"]


def tiny(name: str) -> resnet3d.ResNet3D:
    torch.manual_seed(0)
    return resnet3d.create_model(name, widths=(4, 8, 8, 8), num_classes=3).eval()


@pytest.mark.parametrize("name", MODELS)
def test_depth_zero_input_is_a_value_error_naming_the_shape(name: str) -> None:
    with pytest.raises(ValueError, match=r"D, H, W >= 1.*\(1, 3, 0, 16, 16\)"):
        tiny(name)(torch.zeros(1, 3, 0, 16, 16))


@pytest.mark.parametrize("shape", [(1, 3, 4, 0, 16), (1, 3, 4, 16, 0)])
def test_empty_height_or_width_is_a_value_error_naming_the_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"D, H, W >= 1") as info:
        tiny("resnet18")(torch.zeros(shape))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int64, torch.bool])
def test_integer_input_dtype_is_a_value_error_naming_the_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match=rf"floating-point input, got dtype {dtype}") as info:
        tiny("resnet18")(torch.zeros(1, 3, 4, 16, 16, dtype=dtype))
    assert "x.float()" in str(info.value)


def test_float64_input_to_float32_model_is_a_value_error_outside_and_inside_autocast() -> None:
    model = tiny("resnet18")
    x = torch.rand(1, 3, 4, 16, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"torch.float64 differs .*torch.float32"):
        model(x)
    with torch.autocast("cpu", torch.bfloat16), pytest.raises(ValueError, match="float64"):
        model(x)  # autocast never casts float64
    # What the checks must keep allowing: a matching dtype, and autocast's own casts.
    assert model.double()(x).dtype == torch.float64
    with torch.autocast("cpu", torch.bfloat16):
        assert model.float()(x.bfloat16()).shape == (1, 3)


@pytest.mark.parametrize("name", MODELS)
def test_single_tiny_volume_in_training_mode_names_the_stage(name: str) -> None:
    model = tiny(name).train()
    # 16 x 16 slices shrink to 1 x 1 x 1 in layer3: BatchNorm cannot normalise one value.
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4, 16, 16\).*in layer3.*batch of 2"):
        model(torch.rand(1, 3, 4, 16, 16))
    assert model(torch.rand(2, 3, 4, 16, 16)).shape == (2, 3)  # two volumes are fine
    assert model.eval()(torch.rand(1, 3, 4, 16, 16)).shape == (1, 3)  # and eval mode
