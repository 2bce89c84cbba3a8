"""Converters: outputs equal the source library's, against real MONAI, a test-local copy of
torchvision's VideoResNet (and torchvision itself where it imports), and a test-local copy of
Hara et al.'s resnet2p1d layout."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from resnet3d.errors import CheckpointMismatchError
from resnet3d.models import convert
from resnet3d.models.convert import ConversionError


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def clip(channels: int = 3, depth: int = 4, size: int = 16) -> Tensor:
    return torch.randn(2, channels, depth, size, size, generator=torch.Generator().manual_seed(3))


def assert_same_outputs(a: nn.Module, b: nn.Module, x: Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- torchvision
# A copy of torchvision 0.29's models/video/resnet.py module structure (VideoResNet with
# BasicBlock, Conv3DSimple / Conv2Plus1D / Conv3DNoTemporal, BasicStem / R2Plus1dStem), used
# as the oracle where torchvision does not import. Checked against torchvision 0.29.1 itself:
# identical state-dict keys and outputs (see test_real_torchvision below).
class TVConv3DSimple(nn.Conv3d):
    def __init__(self, inp: int, out: int, mid: int | None = None, stride: int = 1) -> None:
        super().__init__(inp, out, (3, 3, 3), stride, 1, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class TVConv2Plus1D(nn.Sequential):
    def __init__(self, inp: int, out: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(inp, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return stride, stride, stride


class TVConv3DNoTemporal(nn.Conv3d):
    def __init__(self, inp: int, out: int, mid: int | None = None, stride: int = 1) -> None:
        super().__init__(inp, out, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        return 1, stride, stride


class TVBasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inp: int,
        planes: int,
        builder: Callable[..., nn.Module],
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        mid = (inp * planes * 27) // (inp * 9 + 3 * planes)
        self.conv1 = nn.Sequential(
            builder(inp, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(builder(planes, planes, mid), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


def tv_basic_stem() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(3, 64, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
    )


def tv_r2plus1d_stem() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(3, 45, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
        nn.BatchNorm3d(45),
        nn.ReLU(inplace=True),
        nn.Conv3d(45, 64, (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
    )


class TVVideoResNet(nn.Module):
    def __init__(
        self, builders: list[type], stem: Callable[[], nn.Module], num_classes: int
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.stem = stem()
        self.layer1 = self._make_layer(builders[0], 64, 2, 1)
        self.layer2 = self._make_layer(builders[1], 128, 2, 2)
        self.layer3 = self._make_layer(builders[2], 256, 2, 2)
        self.layer4 = self._make_layer(builders[3], 512, 2, 2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, builder: type, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(
                    self.inplanes, planes, 1, builder.get_downsample_stride(stride), bias=False
                ),
                nn.BatchNorm3d(planes),
            )
        layers = [TVBasicBlock(self.inplanes, planes, builder, stride, downsample)]
        self.inplanes = planes
        layers += [TVBasicBlock(planes, planes, builder) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def tv_r3d_18(num_classes: int = 7) -> nn.Module:
    return TVVideoResNet([TVConv3DSimple] * 4, tv_basic_stem, num_classes)


def tv_r2plus1d_18(num_classes: int = 7) -> nn.Module:
    return TVVideoResNet([TVConv2Plus1D] * 4, tv_r2plus1d_stem, num_classes)


def tv_mc3_18(num_classes: int = 7) -> nn.Module:
    return TVVideoResNet([TVConv3DSimple] + [TVConv3DNoTemporal] * 3, tv_basic_stem, num_classes)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("factory", "name", "conv"),
    [
        (tv_r3d_18, "r3d_18", "3d"),
        (tv_r2plus1d_18, "r2plus1d_18", "2plus1d"),
    ],
)
def test_torchvision_layout(factory: Callable[[], nn.Module], name: str, conv: str) -> None:
    torch.manual_seed(0)
    source = randomise_bn(factory())
    model, report = convert.from_torchvision(source.state_dict())
    cfg = model.config
    assert cfg.name == name and cfg.conv == conv and cfg.shortcut == "B" and not cfg.stem_pool
    assert cfg.stem_kernel == (3, 7, 7) and cfg.stem_stride == (1, 2, 2) and cfg.num_classes == 7
    if conv == "2plus1d":
        assert cfg.midplanes == "shared" and cfg.stem_midplanes == 45
    assert len(report.mapped) == len(source.state_dict()) and not report.dropped
    assert_same_outputs(model, source, clip(depth=4, size=16))


@pytest.mark.slow
def test_torchvision_mc3_is_refused() -> None:
    with pytest.raises(ConversionError, match="mc3_18 cannot be converted exactly"):
        convert.from_torchvision(tv_mc3_18().state_dict())


def test_torchvision_bad_input() -> None:
    with pytest.raises(ConversionError, match="not a torchvision VideoResNet"):
        convert.from_torchvision({"conv1.weight": torch.zeros(4, 3, 7, 7, 7)})


@pytest.mark.slow
def test_torchvision_arch_must_match() -> None:
    with pytest.raises(ConversionError, match="arch='r2plus1d_18' but the weights have the r3d"):
        convert.from_torchvision(tv_r3d_18().state_dict(), arch="r2plus1d_18")
    with pytest.raises(ValueError, match="arch="):
        convert.from_torchvision(tv_r3d_18().state_dict(), arch="r4d")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["r3d_18", "r2plus1d_18", "mc3_18"])
def test_real_torchvision(name: str) -> None:
    video = pytest.importorskip("torchvision.models.video")
    torch.manual_seed(0)
    source = randomise_bn(getattr(video, name)(num_classes=5))
    local = {"r3d_18": tv_r3d_18, "r2plus1d_18": tv_r2plus1d_18, "mc3_18": tv_mc3_18}[name](5)
    local.load_state_dict(source.state_dict())  # the local copy has torchvision's exact layout
    if name == "mc3_18":
        with pytest.raises(ConversionError, match="mc3_18"):
            convert.from_torchvision(source.state_dict())
        return
    model, _ = convert.from_torchvision(source.state_dict())
    assert_same_outputs(model, source, clip())
    assert_same_outputs(local.eval(), source, clip())


# ----------------------------------------------------------------------------- MONAI
def monai_resnet(**kwargs: object) -> nn.Module:
    from monai.networks.nets import ResNet

    kwargs.setdefault("block_inplanes", [4, 8, 8, 8])
    torch.manual_seed(0)
    return randomise_bn(ResNet(spatial_dims=3, **kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "conv_kwargs"),
    [
        (
            dict(
                block="basic",
                layers=[2, 2, 2, 2],
                shortcut_type="A",
                conv1_t_stride=(1, 2, 2),
                num_classes=3,
            ),
            dict(conv1_t_stride=(1, 2, 2)),
        ),
        (
            dict(
                block="basic",
                layers=[1, 1, 1, 1],
                shortcut_type="B",
                bias_downsample=True,
                n_input_channels=1,
                conv1_t_size=3,
                num_classes=2,
            ),
            {},
        ),
        (
            dict(
                block="bottleneck",
                layers=[1, 1, 1, 1],
                shortcut_type="B",
                bias_downsample=False,
                no_max_pool=True,
                conv1_t_stride=2,
                feed_forward=False,
            ),
            dict(no_max_pool=True, conv1_t_stride=2),
        ),
    ],
    ids=["resnet18-A", "resnet10-B-bias", "bottleneck-nopool-features"],
)
def test_monai(kwargs: dict[str, object], conv_kwargs: dict[str, object]) -> None:
    source = monai_resnet(**kwargs)
    model, report = convert.from_monai(source.state_dict(), **conv_kwargs)  # type: ignore[arg-type]
    channels = int(kwargs.get("n_input_channels", 3))  # type: ignore[call-overload]
    x = clip(channels=channels)
    assert_same_outputs(model, source, x)
    if kwargs.get("bias_downsample"):
        assert report.dropped and all(k.endswith("downsample.0.bias") for k in report.dropped)
        assert any("folded" in note for note in report.notes)
        # The fold is exact in training mode too: BN's batch mean absorbs the bias.
        model.train(), source.train()
        assert_same_outputs(model, source, x)
    if kwargs.get("feed_forward") is False:
        assert model.num_classes == 0


def test_converted_paper_config_gets_its_registered_name() -> None:
    with torch.device("meta"):
        source = monai_resnet(
            block="basic",
            layers=[2, 2, 2, 2],
            shortcut_type="A",
            block_inplanes=[64, 128, 256, 512],
            conv1_t_stride=(1, 2, 2),
        )
    config = convert.infer_config(source.state_dict(), stem_stride=(1, 2, 2))
    assert config.name == "resnet18"
    assert convert.infer_config(source.state_dict(), stem_stride=(2, 2, 2)).name == ""


def test_monai_from_file_with_module_prefix(tmp_path: Path) -> None:
    source = monai_resnet(block="basic", layers=[1, 1, 1, 1], shortcut_type="A", num_classes=3)
    path = tmp_path / "monai.pt"
    torch.save(
        {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path
    )
    model, _ = convert.convert("monai", path)
    assert_same_outputs(model, source, clip())
    save_file(
        {k: v.contiguous() for k, v in source.state_dict().items()}, tmp_path / "m.safetensors"
    )
    model2, _ = convert.from_monai(tmp_path / "m.safetensors")
    assert_same_outputs(model2, source, clip())


def test_monai_wrong_stem_stride_is_not_detectable_but_shapes_are() -> None:
    # The stride leaves no trace in the weights: the caller must pass it (documented).
    source = monai_resnet(block="basic", layers=[1, 1, 1, 1], shortcut_type="A")
    model, _ = convert.from_monai(source.state_dict())
    assert model.config.stem_stride == (1, 1, 1)


# ----------------------------------------------------------------------------- Hara et al.
# A copy of the layout of Hara et al.'s 3D-ResNets-PyTorch models/resnet2p1d.py (BasicBlock,
# stem with the width computed for 3 input channels, shortcut A or B), used as the oracle.
class HaraBlock2p1d(nn.Module):
    expansion = 1

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        mid1 = (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)
        self.conv1_s = nn.Conv3d(
            in_planes, mid1, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False
        )
        self.bn1_s = nn.BatchNorm3d(mid1)
        self.conv1_t = nn.Conv3d(mid1, planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False)
        self.bn1_t = nn.BatchNorm3d(planes)
        mid2 = (planes * planes * 27) // (planes * 9 + 3 * planes)
        self.conv2_s = nn.Conv3d(planes, mid2, (1, 3, 3), 1, (0, 1, 1), bias=False)
        self.bn2_s = nn.BatchNorm3d(mid2)
        self.conv2_t = nn.Conv3d(mid2, planes, (3, 1, 1), 1, (1, 0, 0), bias=False)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1_t(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2_t(self.conv2_t(out))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class HaraResNet2p1d(nn.Module):
    def __init__(
        self,
        layers: list[int],
        inplanes: list[int],
        n_input_channels: int = 3,
        conv1_t_size: int = 7,
        conv1_t_stride: int = 1,
        no_max_pool: bool = False,
        shortcut_type: str = "B",
        n_classes: int = 4,
    ) -> None:
        super().__init__()
        self.in_planes = inplanes[0]
        self.no_max_pool = no_max_pool
        mid = (3 * self.in_planes * conv1_t_size * 49) // (3 * 49 + conv1_t_size * self.in_planes)
        self.conv1_s = nn.Conv3d(n_input_channels, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1_s = nn.BatchNorm3d(mid)
        self.conv1_t = nn.Conv3d(
            mid,
            self.in_planes,
            (conv1_t_size, 1, 1),
            (conv1_t_stride, 1, 1),
            (conv1_t_size // 2, 0, 0),
            bias=False,
        )
        self.bn1_t = nn.BatchNorm3d(self.in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, 2, 1)
        self.layer1 = self._make_layer(inplanes[0], layers[0], shortcut_type)
        self.layer2 = self._make_layer(inplanes[1], layers[1], shortcut_type, stride=2)
        self.layer3 = self._make_layer(inplanes[2], layers[2], shortcut_type, stride=2)
        self.layer4 = self._make_layer(inplanes[3], layers[3], shortcut_type, stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(inplanes[3], n_classes)

    @staticmethod
    def _downsample_basic_block(x: Tensor, planes: int, stride: int) -> Tensor:
        out = F.avg_pool3d(x, kernel_size=1, stride=stride)
        pad = torch.zeros(out.size(0), planes - out.size(1), *out.shape[2:])
        return torch.cat([out, pad], dim=1)

    def _make_layer(
        self, planes: int, blocks: int, shortcut: str, stride: int = 1
    ) -> nn.Sequential:
        downsample: nn.Module | Callable[[Tensor], Tensor] | None = None
        if stride != 1 or self.in_planes != planes:
            if shortcut == "A":
                downsample = partial(self._downsample_basic_block, planes=planes, stride=stride)
            else:
                downsample = nn.Sequential(
                    nn.Conv3d(self.in_planes, planes, 1, stride, bias=False), nn.BatchNorm3d(planes)
                )
        layers = [HaraBlock2p1d(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes
        layers += [HaraBlock2p1d(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        x = self.relu(self.bn1_t(self.conv1_t(x)))
        if not self.no_max_pool:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(shortcut_type="B"),
        dict(
            shortcut_type="A",
            n_input_channels=1,
            conv1_t_size=3,
            conv1_t_stride=2,
            no_max_pool=True,
        ),
    ],
    ids=["B-rgb", "A-grey-stride2-nopool"],
)
def test_hara_resnet2p1d_checkpoint(tmp_path: Path, kwargs: dict[str, object]) -> None:
    torch.manual_seed(0)
    source = randomise_bn(HaraResNet2p1d([1, 2, 1, 1], [8, 16, 16, 16], **kwargs))  # type: ignore[arg-type]
    path = tmp_path / "save_200.pth"
    # Hara's training script saves DataParallel weights inside a checkpoint dict.
    torch.save(
        {
            "epoch": 200,
            "arch": "resnet2p1d-18",
            "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
            "optimizer": {"state": {}, "param_groups": []},
        },
        path,
    )
    model, report = convert.from_hara(
        path,
        conv1_t_stride=int(kwargs.get("conv1_t_stride", 1)),  # type: ignore[call-overload]
        no_max_pool=bool(kwargs.get("no_max_pool", False)),
    )
    cfg = model.config
    assert cfg.conv == "2plus1d" and cfg.midplanes == "tran" and cfg.layers == (1, 2, 1, 1)
    # Hara computes the stem width for 3 channels whatever the input; it is read from weights.
    assert cfg.stem_midplanes == source.conv1_s.out_channels
    assert all(a == f"module.{b}" or a == b for a, b in report.mapped)
    assert_same_outputs(model, source, clip(channels=int(kwargs.get("n_input_channels", 3))))  # type: ignore[call-overload]


def test_hara_old_checkpoint_without_bn_counters() -> None:
    source = randomise_bn(HaraResNet2p1d([1, 1, 1, 1], [4, 8, 8, 8]))
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    model, report = convert.from_hara(state)
    assert report.initialised and all(k.endswith("num_batches_tracked") for k in report.initialised)
    assert_same_outputs(model, source, clip())


# ----------------------------------------------------------------------------- MedicalNet
def medicalnet_state() -> tuple[nn.Module, dict[str, Tensor]]:
    # MedicalNet's encoder shapes (1 channel, 7x7x7 stem, stride 2) as MONAI builds them,
    # plus its segmentation head, DataParallel-prefixed as in the released .pth files.
    source = monai_resnet(
        block="basic",
        layers=[1, 1, 1, 1],
        shortcut_type="B",
        bias_downsample=False,
        n_input_channels=1,
        conv1_t_stride=2,
        feed_forward=False,
    )
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.randn(8, 8, 2, 2, 2)
    state["module.conv_seg.0.bias"] = torch.randn(8)
    return source, state


def test_medicalnet_refused_unless_inexact_is_allowed() -> None:
    _, state = medicalnet_state()
    with pytest.raises(ConversionError, match="dilation 2 and 4"):
        convert.from_medicalnet(state)


def test_medicalnet_inexact(caplog: pytest.LogCaptureFixture) -> None:
    source, state = medicalnet_state()
    model, report = convert.from_medicalnet(state, allow_inexact=True)
    assert report.dropped == ["conv_seg.0.bias", "conv_seg.0.weight"]
    assert any("inexact" in note for note in report.notes)
    cfg = model.config
    assert cfg.in_channels == 1 and cfg.stem_stride == (2, 2, 2) and cfg.stem_kernel == (7, 7, 7)
    assert_same_outputs(model, source, clip(channels=1))  # MONAI's non-dilated equivalent
    head, report2 = convert.from_medicalnet(state, allow_inexact=True, num_classes=2)
    assert head.num_classes == 2 and report2.initialised == ["fc.weight", "fc.bias"]
    assert "medicalnet" in str(report2)


# ----------------------------------------------------------------------------- safety, errors
class Payload:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(ConversionError, match=r"is not a safe checkpoint.*arbitrary code"):
        convert.load_state_dict_file(path)
    with pytest.raises(ConversionError, match="not a safe checkpoint"):
        convert.from_monai(path)
    assert not marker.exists()
    # The payload is live: unpickling it without weights_only really runs it.
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="is not a PyTorch checkpoint"):
        convert.load_state_dict_file(tmp_path / "junk.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ConversionError, match=r"is empty \(0 bytes\)"):
        convert.load_state_dict_file(tmp_path / "empty.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ConversionError, match="safetensors"):
        convert.load_state_dict_file(tmp_path / "junk.safetensors")
    torch.save({"epoch": 1}, tmp_path / "nostate.pt")
    with pytest.raises(ConversionError, match="holds no state dict"):
        convert.load_state_dict_file(tmp_path / "nostate.pt")
    with pytest.raises(FileNotFoundError):
        convert.load_state_dict_file(tmp_path / "missing.pt")


def test_unknown_source_and_non_resnet() -> None:
    with pytest.raises(ValueError, match="Did you mean 'monai'"):
        convert.convert("mona", {})
    with pytest.raises(ConversionError, match="not a ResNet"):
        convert.from_monai({"encoder.weight": torch.zeros(2, 2)})
    with pytest.raises(TypeError):
        convert.from_monai(42)  # type: ignore[arg-type]


def test_extra_key_is_reported_strictly() -> None:
    source = monai_resnet(block="basic", layers=[1, 1, 1, 1], shortcut_type="A")
    state = dict(source.state_dict())
    state["layer1.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r"unexpected key.*layer1\.0\.extra\.weight"):
        convert.from_monai(state)
    assert issubclass(CheckpointMismatchError, ValueError)
