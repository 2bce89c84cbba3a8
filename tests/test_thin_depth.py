"""Thin-depth folding: exact against ``F.conv3d`` for every geometry, every model unchanged.

The oracle is PyTorch's own ``F.conv3d`` in float64: the fold must reproduce its output, its
input gradient and its weight gradient to 1e-10 for every depth, kernel, stride, padding,
channel count and memory layout; and every registered model must give the same logits and
parameter gradients with ``conv_impl="auto"`` as with ``"conv3d"``.
"""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet3d import ResNet3DConfig, create_model, list_models
from resnet3d.models import thin_depth
from resnet3d.models.layers import Conv2Plus1d, ThinDepthConv3d, conv3d
from resnet3d.models.thin_depth import (
    centre_tap,
    choose_path,
    folded_weight,
    thin_depth_conv3d,
)

TINY_WIDTHS = (4, 8, 8, 16)


@pytest.fixture
def fold_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fold whatever the number of positions, so tiny test inputs exercise the fold."""
    monkeypatch.setattr(thin_depth, "FOLD_MIN_POSITIONS", 0)
    monkeypatch.setattr(thin_depth, "FOLD_POSITIONS_PER_CHANNEL", 0)


# Depth 1..9 x kernel depth 1/3/5/7 x depth stride 1/2, with "same" padding; odd and even
# heights and widths; 1 to 16 channels; contiguous and channels-last inputs.
GEOMETRIES = [
    pytest.param(depth, kd, sd, id=f"D{depth}-k{kd}-s{sd}")
    for depth, kd, sd in itertools.product(range(1, 10), (1, 3, 5, 7), (1, 2))
]


@pytest.mark.usefixtures("fold_everywhere")
@pytest.mark.parametrize(("depth", "kd", "sd"), GEOMETRIES)
def test_fold_equals_conv3d_in_float64(depth: int, kd: int, sd: int) -> None:
    torch.manual_seed(depth * 100 + kd * 10 + sd)
    for (cin, cout), (h, w), channels_last, bias in [
        ((1, 1), (5, 6), False, False),
        ((3, 16), (6, 5), True, True),
        ((16, 4), (7, 8), False, True),
        ((5, 7), (4, 9), True, False),
    ]:
        x = torch.randn(2, cin, depth, h, w, dtype=torch.float64)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        weight = torch.randn(cout, cin, kd, 3, 3, dtype=torch.float64)
        b = torch.randn(cout, dtype=torch.float64) if bias else None
        stride, padding = (sd, 2, 1), (kd // 2, 1, 1)
        ours = _run(thin_depth_conv3d, x, weight, b, stride, padding)
        reference = _run(F.conv3d, x, weight, b, stride, padding)
        for got, expected in zip(ours, reference):
            torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def _run(conv, x, weight, bias, stride, padding):  # type: ignore[no-untyped-def]
    """Output and the gradients of input, weight (and bias) for a fixed upstream gradient."""
    leaves = [
        t.clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())
    ]
    out = conv(leaves[0], leaves[1], leaves[2] if bias is not None else None, stride, padding)
    grad = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    out.backward(grad)
    return [out.detach()] + [leaf.grad for leaf in leaves]


def test_paths_follow_the_depth() -> None:
    # The paper's resnet18 on 4-slice volumes: stem at depth 4, layer1 at 2, then depth 1.
    assert choose_path(4, 7, 1, 3, "auto") == "fold"
    assert choose_path(2, 3, 1, 1, "auto") == "fold"
    assert choose_path(2, 3, 2, 1, "auto") == "fold"  # layer2's first conv, depth 2 -> 1
    assert choose_path(1, 3, 1, 1, "auto") == "centre"
    assert choose_path(1, 1, 1, 0, "auto") == "conv3d"  # nothing wasted; Conv3d as fast
    # Thick enough: every tap meets a slice, Conv3d does no wasted work.
    assert choose_path(7, 7, 1, 3, "auto") == "conv3d"
    assert choose_path(4, 3, 1, 1, "auto") == "conv3d"
    assert choose_path(2, 1, 1, 0, "auto") == "conv3d"
    # Few output positions: assembling the folded weight would cost more than it saves.
    assert choose_path(2, 3, 1, 1, "auto", positions=255, in_channels=64) == "conv3d"
    assert choose_path(2, 3, 1, 1, "auto", positions=256, in_channels=64) == "fold"
    assert choose_path(2, 3, 1, 1, "auto", positions=512, in_channels=512) == "conv3d"
    assert choose_path(1, 3, 1, 1, "auto", positions=1, in_channels=512) == "centre"
    # Inference on the CPU: oneDNN's forward Conv3d skips the padding itself.
    assert choose_path(4, 7, 1, 3, "auto", forward_only=True) == "conv3d"
    assert choose_path(4, 7, 1, 3, "auto", forward_only=True, device_type="cuda") == "fold"
    # Never with impl="conv3d", nor where Conv3d must report a bad geometry itself.
    assert choose_path(1, 3, 1, 1, "conv3d") == "conv3d"
    assert choose_path(1, 3, 1, 0, "auto") == "conv3d"


def test_folded_weight_blocks_are_the_taps() -> None:
    weight = torch.arange(2 * 1 * 3, dtype=torch.float64).reshape(2, 1, 3, 1, 1) + 1
    # Depth 2, stride 1, padding 1: out[0] = w1 x0 + w2 x1; out[1] = w0 x0 + w1 x1.
    folded = folded_weight(weight, 2, 1, 1, depth_major=True)[:, :, 0, 0]
    w = weight[:, 0, :, 0, 0]
    expected = torch.stack(
        [
            torch.stack([w[0, 1], w[0, 2]]),  # t=0, Cout 0
            torch.stack([w[1, 1], w[1, 2]]),  # t=0, Cout 1
            torch.stack([w[0, 0], w[0, 1]]),  # t=1, Cout 0
            torch.stack([w[1, 0], w[1, 1]]),  # t=1, Cout 1
        ]
    )
    torch.testing.assert_close(folded, expected)


@pytest.mark.parametrize("kd", [3, 5, 7])
def test_centre_tap_is_the_tap_with_its_gradient_and_a_dense_layout(kd: int) -> None:
    torch.manual_seed(0)
    weight = torch.randn(6, 4, kd, 3, 2, dtype=torch.float64, requires_grad=True)
    for pd in range(kd):
        tap = centre_tap(weight, pd)
        assert torch.equal(tap, weight[:, :, pd]) and tap.is_contiguous()
        upstream = torch.randn_like(tap)
        (got,) = torch.autograd.grad(tap, weight, upstream)
        (want,) = torch.autograd.grad(weight[:, :, pd], weight, upstream)
        assert torch.equal(got, want)
    channels_last = weight.detach().contiguous(memory_format=torch.channels_last_3d)
    assert centre_tap(channels_last, kd // 2).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.usefixtures("fold_everywhere")
def test_channels_last_in_channels_last_out() -> None:
    conv = conv3d(8, 16, 3)
    x = torch.randn(2, 8, 2, 6, 6).contiguous(memory_format=torch.channels_last_3d)
    assert conv(x).is_contiguous(memory_format=torch.channels_last_3d)
    assert conv(x.contiguous()).is_contiguous()


def test_bad_impl_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="conv3d"):
        ThinDepthConv3d(1, 1, 3, impl="fold")
    with pytest.raises(ValueError, match="auto"):
        ResNet3DConfig(conv_impl="2d")
    with pytest.raises(ValueError, match="choose one of"):
        thin_depth_conv3d(torch.zeros(1, 1, 1, 3, 3), torch.zeros(1, 1, 3, 3, 3), impl="x")


def test_every_model_conv_is_thin_depth_aware() -> None:
    for name in list_models():
        model = create_model(name, widths=TINY_WIDTHS)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv3d)]
        assert convs and all(isinstance(m, ThinDepthConv3d) for m in convs), name
    assert isinstance(Conv2Plus1d(3, 8).conv_t, ThinDepthConv3d)


def test_conv_impl_round_trips_and_is_not_architecture() -> None:
    model = create_model("resnet18", widths=TINY_WIDTHS, conv_impl="conv3d")
    assert all(m.impl == "conv3d" for m in model.modules() if isinstance(m, ThinDepthConv3d))
    assert "impl='conv3d'" in repr(model.conv1)
    config = ResNet3DConfig.from_json(model.config.to_json())
    assert config.conv_impl == "conv3d"
    assert config == config.replace(conv_impl="auto")  # same architecture
    assert json.loads(ResNet3DConfig().to_json())["conv_impl"] == "auto"
    # Configs written before the field existed load with the default.
    old = json.loads(ResNet3DConfig().to_json())
    del old["conv_impl"]
    assert ResNet3DConfig.from_dict(old).conv_impl == "auto"
    model.set_conv_impl("auto")
    assert model.config.conv_impl == "auto" and "impl=" not in repr(model.conv1)
    # The state dict is Conv3d's: same keys and shapes either way.
    reference = create_model("resnet18", widths=TINY_WIDTHS)
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


@pytest.mark.usefixtures("fold_everywhere")
@pytest.mark.parametrize("name", list_models())
def test_every_model_auto_equals_conv3d(name: str) -> None:
    """Logits and every parameter gradient at depths 1, 2, 4, 8, 16: fp32, 1e-5 relative.

    Relative is the L2 norm of the difference over that of the ``conv3d`` result, per tensor.
    Where a gradient is so ill-conditioned that float32 itself misses the float64 result by
    more (resnet50 at depth 8 has a tensor 7 % off in either implementation), ``auto`` must
    be as close to float64 as ``conv3d`` is. In eval mode: training-mode BatchNorm over the
    few values of a tiny model's last stages amplifies rounding far beyond the convolutions.
    """
    torch.manual_seed(0)
    model = create_model(name, widths=TINY_WIDTHS).eval()
    for depth in (1, 2, 4, 8, 16):
        x = torch.rand(2, 3, depth, 20, 18)
        auto = _logits_and_grads(model, x, "auto")
        reference = _logits_and_grads(model, x, "conv3d")
        exact: dict[str, torch.Tensor] | None = None
        for key, expected in reference.items():
            error = _relative(auto[key], expected)
            if error <= 1e-5:
                continue
            if exact is None:  # float64 oracle, only when float32 rounding is in question
                exact = _logits_and_grads(model.double(), x.double(), "conv3d")
                model.float()
            rounding = _relative(expected, exact[key])
            assert _relative(auto[key], exact[key]) <= max(1e-5, 2 * rounding), (
                f"{name} depth {depth} {key}: auto differs from conv3d by {error:.2e}, "
                f"from float64 by {_relative(auto[key], exact[key]):.2e} (conv3d: {rounding:.2e})"
            )


def _logits_and_grads(model: nn.Module, x: torch.Tensor, impl: str) -> dict[str, torch.Tensor]:
    model.set_conv_impl(impl)  # type: ignore[operator]
    model.zero_grad()
    logits = model(x)
    logits.square().sum().backward()
    out = {"logits": logits.detach().double()}
    out.update({n: p.grad.double() for n, p in model.named_parameters()})  # type: ignore[union-attr]
    return out


def _relative(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).norm() / expected.norm().clamp_min(1e-30))


def test_inference_paths_equal_conv3d_and_follow_weight_changes() -> None:
    """Without gradients the depth-1 path keeps its 2D weight between calls: it must equal
    Conv3d, and follow in-place updates, a new state dict and a layout change."""
    torch.manual_seed(0)
    model = create_model("resnet18", widths=TINY_WIDTHS).eval()
    reference = create_model("resnet18", widths=TINY_WIDTHS, conv_impl="conv3d").eval()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 4, 20, 18)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
        for net in (model, reference):  # an optimiser step changes weights in place
            net.layer4[0].conv2.weight.mul_(-2.0)
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
        state = create_model("resnet18", widths=TINY_WIDTHS).state_dict()
        model.load_state_dict(state)
        reference.load_state_dict(state)
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)
        cl = x.contiguous(memory_format=torch.channels_last_3d)
        model = model.to(memory_format=torch.channels_last_3d)
        torch.testing.assert_close(model(cl), reference(x), atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(cl).float()
        torch.testing.assert_close(low, reference(x), atol=0.05, rtol=0.05)
    # With gradients the weight is sliced afresh: the gradient reaches the 3D weight.
    model.zero_grad()
    model(x).sum().backward()
    assert model.layer4[0].conv2.weight.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_compiled_bf16_channels_last_has_no_graph_breaks() -> None:
    import torch._dynamo

    torch._dynamo.reset()
    model = create_model("resnet18", widths=TINY_WIDTHS).train()
    model = model.to(memory_format=torch.channels_last_3d)
    x = torch.rand(2, 3, 4, 16, 16).contiguous(memory_format=torch.channels_last_3d)
    for grad in (True, False):
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
            explanation = torch._dynamo.explain(model)(x)
        reasons = [str(r.reason) for r in explanation.break_reasons]  # type: ignore[attr-defined]
        assert explanation.graph_break_count == 0, reasons  # type: ignore[attr-defined]
