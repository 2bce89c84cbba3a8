"""Architecture tests: MONAI parity, type-A gradients, registry-driven invariants, (2+1)D widths."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import resnet3d
from resnet3d import ResNet3D, ResNet3DConfig, create_model, list_models
from resnet3d.models.blocks import BasicBlock3d, Bottleneck3d, ProjectionShortcut, ZeroPadShortcut
from resnet3d.models.layers import Conv2Plus1d, tran_midplanes

monai_nets = pytest.importorskip("monai.networks.nets")

ALL_MODELS = list_models()
TINY_WIDTHS = (4, 8, 8, 16)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def monai_model(name: str, in_channels: int, shortcut: str) -> nn.Module:
    factory = getattr(monai_nets, name)
    return factory(
        spatial_dims=3,
        n_input_channels=in_channels,
        num_classes=3,
        conv1_t_size=7,
        conv1_t_stride=(1, 2, 2),
        shortcut_type=shortcut,
        bias_downsample=False,
    )


# --------------------------------------------------------------------------- MONAI parity
@pytest.mark.parametrize(
    ("name", "shortcut"), [("resnet18", "A"), ("resnet34", "A"), ("resnet50", "B")]
)
@pytest.mark.parametrize(("in_channels", "shape"), [(3, (2, 3, 4, 64, 64)), (1, (1, 1, 8, 32, 48))])
def test_monai_parity(name: str, shortcut: str, in_channels: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    reference = monai_model(name, in_channels, shortcut).eval()
    ours = create_model(name, in_channels=in_channels, num_classes=3).eval()
    # The paper's stem, on both sides.
    assert reference.conv1.stride == (1, 2, 2) == ours.conv1.stride
    assert ours.conv1.kernel_size == (7, 7, 7)
    assert n_params(ours) == n_params(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=0)


def test_state_dict_keys_and_shapes_equal_monai_for_every_depth() -> None:
    for name, shortcut in [("resnet10", "A"), ("resnet101", "B")]:
        ours = create_model(name, widths=(64, 128, 256, 512))
        reference = monai_model(name, 3, shortcut)
        theirs = {k: v.shape for k, v in reference.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == theirs


# ---------------------------------------------------------------------- type-A shortcut
def test_type_a_shortcut_passes_gradient_through_shortcut_alone() -> None:
    block = BasicBlock3d(4, 8, stride=2, shortcut="A")
    assert isinstance(block.downsample, ZeroPadShortcut)
    # Zero the residual branch: the output is relu(shortcut(x)), nothing else.
    nn.init.zeros_(block.bn2.weight)
    nn.init.zeros_(block.bn2.bias)
    x = torch.randn(2, 4, 5, 6, 7, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 8, 3, 3, 4)
    out.sum().backward()
    assert x.grad is not None
    expected = torch.zeros_like(x)
    expected[:, :, ::2, ::2, ::2] = (x.detach()[:, :, ::2, ::2, ::2] > 0).float()
    torch.testing.assert_close(x.grad, expected)
    assert expected.sum() > 0  # the check above cannot pass vacuously


def test_zero_pad_shortcut_values() -> None:
    shortcut = ZeroPadShortcut(2, 5, stride=(1, 2, 2))
    x = torch.randn(1, 2, 3, 4, 5)
    y = shortcut(x)
    assert y.shape == (1, 5, 3, 2, 3)
    torch.testing.assert_close(y[:, :2], x[:, :, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 2:]) == 0
    with pytest.raises(ValueError, match="cannot reduce channels"):
        ZeroPadShortcut(8, 4)


def test_projection_shortcut_keys() -> None:
    block = Bottleneck3d(64, 64, shortcut="B")
    assert isinstance(block.downsample, ProjectionShortcut)
    keys = {k for k in block.state_dict() if k.startswith("downsample")}
    assert "downsample.0.weight" in keys and "downsample.1.running_mean" in keys
    assert block.downsample[0].bias is None


# ----------------------------------------------------------------- registry invariants
def test_registry_lists_the_issue_models() -> None:
    expected = {f"resnet{d}" for d in (10, 18, 34, 50, 101, 152, 200)}
    expected |= {"resnet18_2plus1d", "resnet34_2plus1d", "resnet50_2plus1d"}
    assert set(ALL_MODELS) == expected
    assert list_models("*2plus1d") == ["resnet18_2plus1d", "resnet34_2plus1d", "resnet50_2plus1d"]


def test_unknown_model_names_closest() -> None:
    with pytest.raises(ValueError, match="resnet18"):
        create_model("resnet81")
    with pytest.raises(ValueError, match="not a ResNet3DConfig field"):
        create_model("resnet18", num_clases=2)


@pytest.fixture(params=ALL_MODELS)
def tiny_model(request: pytest.FixtureRequest) -> ResNet3D:
    torch.manual_seed(0)
    return create_model(request.param, widths=TINY_WIDTHS, num_classes=3)


def test_invariants_shapes_gradients(tiny_model: ResNet3D) -> None:
    x = torch.randn(2, 3, 4, 32, 32)
    out = tiny_model(x)
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in tiny_model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, f"parameters without gradient: {missing}"


def test_invariants_features_and_head(tiny_model: ResNet3D) -> None:
    tiny_model.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    # Both sides without gradients: with them, thin convolutions take the fold, which agrees
    # only to float32 rounding (1e-4 of 20 after resnet152's 150 layers).
    with torch.no_grad():
        features = tiny_model.forward_features(x)
    assert features.shape[1] == tiny_model.num_features
    assert tiny_model.feature_info[-1]["num_chs"] == tiny_model.num_features
    with torch.no_grad():
        pooled = tiny_model.forward_head(features, pre_logits=True)
        tiny_model.reset_classifier(0)
        assert tiny_model.config.num_classes == 0
        torch.testing.assert_close(tiny_model(x), pooled)
        tiny_model.reset_classifier(5)
        assert tiny_model(x).shape == (1, 5)


def test_invariants_config_round_trip(tiny_model: ResNet3D) -> None:
    text = json.dumps(tiny_model.config.to_dict())
    rebuilt = ResNet3D(ResNet3DConfig.from_dict(json.loads(text)))
    assert rebuilt.config == tiny_model.config
    ours = {k: v.shape for k, v in tiny_model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == ours
    rebuilt.load_state_dict(tiny_model.state_dict(), strict=True)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_invariants_depths_and_non_cubic(tiny_model: ResNet3D, depth: int) -> None:
    tiny_model.eval()
    with torch.no_grad():
        assert tiny_model(torch.randn(1, 3, depth, 24, 40)).shape == (1, 3)


def test_invariants_channels_last_3d(tiny_model: ResNet3D) -> None:
    tiny_model.eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        reference = tiny_model(x)
        tiny_model.to(memory_format=torch.channels_last_3d)
        out = tiny_model(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=1e-4)


def test_feature_info_matches_feature_maps() -> None:
    model = create_model("resnet18", widths=TINY_WIDTHS).eval()
    x = torch.randn(1, 3, 16, 64, 64)
    shapes = {}
    hooks = [
        getattr(model, info["module"]).register_forward_hook(
            lambda m, i, o, name=info["module"]: shapes.__setitem__(name, o.shape)
        )
        for info in model.feature_info
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    for info in model.feature_info:
        shape = shapes[info["module"]]
        assert shape[1] == info["num_chs"]
        assert tuple(shape[2:]) == tuple(-(-s // r) for s, r in zip(x.shape[2:], info["reduction"]))
    assert model.feature_info[0]["reduction"] == (2, 4, 4)


def test_full_width_factories_build_with_paper_defaults() -> None:
    with torch.device("meta"):
        for name in ALL_MODELS:
            model = create_model(name)
            cfg = model.config
            assert cfg.stem_kernel == (7, 7, 7) and cfg.stem_stride == (1, 2, 2) and cfg.stem_pool
            assert cfg.shortcut == ("A" if cfg.block == "basic" else "B")
            assert cfg.widths == (64, 128, 256, 512)
            assert cfg.num_classes == 3 and cfg.in_channels == 3
    params = {n: n_params(create_model(n, num_classes=3)) for n in ("resnet18", "resnet18_2plus1d")}
    # Tran et al.'s rule matches the parameter count of the 3D net to within 0.1 %.
    assert abs(params["resnet18_2plus1d"] / params["resnet18"] - 1) < 1e-3


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error() -> None:
    model = create_model("resnet10", widths=TINY_WIDTHS, in_channels=1)
    with pytest.raises(ValueError, match=r"5-D tensor .*got shape \(1, 8, 8, 8\)"):
        model(torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match=r"expected 1 input channels.*C=3"):
        model(torch.randn(1, 3, 4, 16, 16))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"block": "basik"}, "'basic'"),
        ({"conv": "2+1d"}, "2plus1d"),
        ({"shortcut": "C"}, "shortcut"),
        ({"layers": (2, 2), "widths": (64, 128, 256)}, "one entry per stage"),
        ({"stem_kernel": (7, 6, 7)}, "odd"),
        ({"in_channels": 0}, "in_channels"),
        ({"dropout": 1.5}, "dropout"),
        ({"midplanes": "tram"}, "tran"),
    ],
)
def test_config_validation(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResNet3DConfig(**fields)


def test_config_type_errors() -> None:
    with pytest.raises(TypeError):
        ResNet3DConfig(num_classes=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResNet3DConfig(layers="2222")  # type: ignore[arg-type]


# -------------------------------------------------------------------------------- (2+1)D
@pytest.mark.parametrize("in_channels", [1, 3])
def test_2plus1d_tran_widths_follow_the_formula(in_channels: int) -> None:
    def formula(t: int, d: int, n_in: int, n_out: int) -> int:
        return (t * d * d * n_in * n_out) // (d * d * n_in + t * n_out)

    model = create_model("resnet18_2plus1d", in_channels=in_channels)
    assert model.conv1_s.out_channels == formula(7, 7, in_channels, 64)
    assert model.conv1_s.kernel_size == (1, 7, 7) and model.conv1_t.kernel_size == (7, 1, 1)
    assert model.conv1_s.stride == (1, 2, 2) and model.conv1_t.stride == (1, 1, 1)
    checked = 0
    for name, module in model.named_modules():
        if isinstance(module, BasicBlock3d):
            for i in (1, 2):
                spatial = getattr(module, f"conv{i}_s")
                temporal = getattr(module, f"conv{i}_t")
                expected = formula(3, 3, spatial.in_channels, temporal.out_channels)
                assert spatial.out_channels == expected, name
                checked += 1
    assert checked == 16


def test_2plus1d_shared_widths_equal_torchvision_r2plus1d_18() -> None:
    model = create_model("resnet18_2plus1d", midplanes="shared")
    # torchvision's VideoResNet: midplanes = (inplanes*planes*27) // (inplanes*9 + 3*planes),
    # one value for both (2+1)D convolutions of a block.
    expected, inplanes = [], 64
    for planes in (64, 128, 256, 512):
        for _ in range(2):
            expected.append((inplanes * planes * 27) // (inplanes * 9 + 3 * planes))
            inplanes = planes
    got = [
        (m.conv1_s.out_channels, m.conv2_s.out_channels)
        for m in model.modules()
        if isinstance(m, BasicBlock3d)
    ]
    assert got == [(w, w) for w in expected]
    assert expected[:4] == [144, 144, 230, 288]


def test_2plus1d_keys_follow_hara() -> None:
    keys = set(create_model("resnet18_2plus1d", widths=TINY_WIDTHS).state_dict())
    for key in (
        "conv1_s.weight",
        "bn1_s.weight",
        "conv1_t.weight",
        "bn1_t.weight",
        "layer1.0.conv1_s.weight",
        "layer1.0.bn1_t.running_var",
        "layer2.0.conv2_t.weight",
        "fc.weight",
    ):
        assert key in keys
    keys50 = set(create_model("resnet50_2plus1d", widths=TINY_WIDTHS).state_dict())
    assert {
        "layer1.0.conv1.weight",
        "layer1.0.conv2_s.weight",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
    } <= keys50


def test_conv2plus1d_module_matches_formula_and_shape() -> None:
    conv = Conv2Plus1d(3, 16, kernel=(3, 3, 3), stride=(2, 2, 2))
    assert conv.mid_planes == tran_midplanes(3, 16, (3, 3, 3)) == (27 * 3 * 16) // (27 + 48)
    assert conv(torch.randn(1, 3, 4, 8, 8)).shape == (1, 16, 2, 4, 4)
    full = nn.Conv3d(3, 16, 3, bias=False)
    factorised = sum(p.numel() for n, p in conv.named_parameters() if n.startswith("conv"))
    assert abs(factorised - full.weight.numel()) / full.weight.numel() < 0.05


# ------------------------------------------------------------------------ misc behaviour
def test_zero_init_residual_and_dropout() -> None:
    model = create_model("resnet50", widths=TINY_WIDTHS, zero_init_residual=True, dropout=0.2)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck3d)]
    assert blocks and all(torch.count_nonzero(b.bn3.weight) == 0 for b in blocks)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.2


def test_print_shows_shortcuts() -> None:
    text = repr(create_model("resnet18", widths=TINY_WIDTHS))
    assert "ZeroPadShortcut(4, 8, stride=(2, 2, 2))" in text
    assert "MaxPool3d" in text


def test_lazy_package_exports() -> None:
    assert resnet3d.ResNet3D is ResNet3D
    assert "create_model" in dir(resnet3d)
    with pytest.raises(AttributeError):
        resnet3d.not_a_thing  # noqa: B018


@pytest.mark.slow
def test_torch_compile_matches_eager() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", widths=(8, 16, 16, 32)).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)
