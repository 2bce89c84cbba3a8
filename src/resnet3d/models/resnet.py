"""``ResNet3D``, built from one :class:`~resnet3d.models.config.ResNet3DConfig`; its factories."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..weights.cfg import PretrainedCfg
from ..weights.save import save_pretrained
from ..weights.upload import push_to_hub
from .blocks import BLOCK_TYPES, BasicBlock3d, Bottleneck3d
from .config import ResNet3DConfig
from .layers import ThinDepthConv3d, activation
from .registry import register_model
from .stems import build_stem

# Device types torch.is_autocast_enabled accepts (it raises for others, e.g. "meta").
_AUTOCAST_DEVICES = frozenset({"cpu", "cuda", "mps", "xpu", "hpu", "xla"})


class ResNet3D(nn.Module):
    """A 3D ResNet for volumes ``(B, C, D, H, W)``: CT slices stacked in depth, or video.

    ``forward(x) == forward_head(forward_features(x))``. The state dict uses the key names of
    MONAI's and Hara et al.'s 3D ResNets (and Hara et al.'s ``resnet2p1d`` for (2+1)D nets),
    so their checkpoints load with ``load_state_dict`` and no conversion.

    Args:
        config: The architecture; the default is the paper's ResNet-18.
        **overrides: Config fields to change, e.g. ``num_classes=2``.

    Shape:
        ``(B, in_channels, D, H, W) -> (B, num_classes)``; any ``D, H, W >= 1``.

    Example:
        >>> model = ResNet3D(ResNet3DConfig(in_channels=1, num_classes=2))
        >>> model(torch.randn(2, 1, 4, 64, 64)).shape
        torch.Size([2, 2])
    """

    def __init__(self, config: ResNet3DConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        config = config if config is not None else ResNet3DConfig()
        if not isinstance(config, ResNet3DConfig):
            raise TypeError(f"config must be a ResNet3DConfig, got {type(config).__name__}")
        if overrides:
            config = config.replace(**overrides)
        self.config = config

        stem = build_stem(config)
        for name, module in stem.modules.items():
            self.add_module(name, module)
        self.relu = activation()
        self._stem_steps = stem.steps
        self._stem_pool = stem.pool

        block_type = BLOCK_TYPES[config.block]
        in_planes = config.widths[0]
        self._stage_names: list[str] = []
        for index, (blocks, width) in enumerate(zip(config.layers, config.widths)):
            stride = 1 if index == 0 else 2
            layer = []
            for b in range(blocks):
                layer.append(
                    block_type(
                        in_planes,
                        width,
                        stride=stride if b == 0 else 1,
                        shortcut=config.shortcut,
                        conv=config.conv,
                        midplanes=config.midplanes,
                    )
                )
                in_planes = width * block_type.expansion
            name = f"layer{index + 1}"
            self.add_module(name, nn.Sequential(*layer))
            self._stage_names.append(name)

        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.fc: nn.Module = self._make_classifier(config.num_classes)
        self._init_weights()
        self._apply_conv_impl(config.conv_impl)

    # ----------------------------------------------------------------- public surface
    @property
    def num_features(self) -> int:
        """Channels of ``forward_features``' output and of the pooled features."""
        return self.config.num_features

    @property
    def num_classes(self) -> int:
        """Outputs of the classifier (0 when it was removed with ``reset_classifier(0)``)."""
        return self.config.num_classes

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """Per stage: module name, channels and total stride ``(D, H, W)`` from the input."""
        reduction = list(self.config.stem_stride)
        if self._stem_pool is not None:
            reduction = [r * 2 for r in reduction]
        info = []
        for index, name in enumerate(self._stage_names):
            if index > 0:
                reduction = [r * 2 for r in reduction]
            info.append(
                {
                    "module": name,
                    "num_chs": self.config.widths[index] * self.config.expansion,
                    "reduction": tuple(reduction),
                }
            )
        return info

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` outputs.

        ``num_classes=0`` removes it: ``forward`` then returns pooled features
        ``(B, num_features)``. The model's ``config`` is updated to match.
        """
        self.config = self.config.replace(num_classes=num_classes)
        device = next(self.parameters()).device
        self.fc = self._make_classifier(num_classes).to(device)

    def set_conv_impl(self, impl: str) -> None:
        """Choose how every convolution runs: ``"auto"`` (fold thin depths) or ``"conv3d"``.

        Changes neither parameters nor results (beyond rounding); ``config.conv_impl`` is
        updated to match.
        """
        self.config = self.config.replace(conv_impl=impl)
        self._apply_conv_impl(impl)

    def check_input(self, x: Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is a floating ``(B, in_channels, D, H, W)`` tensor.

        Checked here rather than left to the convolutions, whose errors ("Kernel size can't be
        greater than actual input size", "expected scalar type Long but found Float") name
        neither the model nor what it expects.

        Raises:
            TypeError: If ``x`` is not a tensor.
            ValueError: If ``x`` is not 5-D, has another channel count, an empty depth, height
                or width, an integer or complex dtype, or a floating dtype other than the
                parameters' that autocast does not cast (any outside autocast, float64 in it).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor (B, C, D, H, W), got {type(x).__name__}")
        if x.ndim != 5:
            raise ValueError(
                f"expected a 5-D tensor (B, C, D, H, W) with C={self.config.in_channels}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"expected {self.config.in_channels} input channels (B, C, D, H, W), got "
                f"shape {tuple(x.shape)} with C={x.shape[1]}"
            )
        if min(x.shape[2:]) < 1:
            raise ValueError(
                f"expected at least one slice, row and column (D, H, W >= 1), got shape "
                f"{tuple(x.shape)}"
            )
        if not x.is_floating_point():
            hint = (
                " (scale 8-bit slices to [0, 1] first, e.g. x.float() / 255)"
                if (x.dtype == torch.uint8)
                else ""
            )
            raise ValueError(
                f"expected a floating-point input, got dtype {x.dtype} with shape "
                f"{tuple(x.shape)}: convert it with x.float(){hint}"
            )
        weight_dtype = self._first_conv_weight().dtype
        # Autocast casts float32/16 inputs to its dtype, but never float64.
        autocast = (
            x.device.type in _AUTOCAST_DEVICES
            and torch.is_autocast_enabled(x.device.type)
            and x.dtype != torch.float64
        )
        if x.dtype != weight_dtype and not autocast:
            raise ValueError(
                f"input dtype {x.dtype} differs from the model's parameters ({weight_dtype}): "
                f"use x.to({weight_dtype}), model.to({x.dtype}), or torch.autocast"
            )

    def _first_conv_weight(self) -> Tensor:
        """The first convolution's weight: its dtype and device are the model's."""
        return getattr(self, self._stem_steps[0][0]).weight

    def forward_stem(self, x: Tensor) -> Tensor:
        """The stem: convolution(s), BN, ReLU and the max pool."""
        for conv_name, norm_name in self._stem_steps:
            x = self.relu(getattr(self, norm_name)(getattr(self, conv_name)(x)))
        if self._stem_pool is not None:
            x = getattr(self, self._stem_pool)(x)
        return x

    def forward_features(self, x: Tensor) -> Tensor:
        """Stem and stages: ``(B, C, D, H, W) -> (B, num_features, D', H', W')``."""
        self.check_input(x)
        if self.training and x.shape[0] == 1:
            return self._forward_features_single(x)
        x = self.forward_stem(x)
        for name in self._stage_names:
            x = getattr(self, name)(x)
        return x

    def _forward_features_single(self, x: Tensor) -> Tensor:
        """:meth:`forward_features` for one volume in training mode, with a clear error.

        BatchNorm in training mode needs more than one value per channel; one small volume
        can shrink to ``1 x 1 x 1`` before the last stage. Torch's own error names neither the
        stage nor the input, so it is rewritten here (only on this path, so the common one
        stays free of try blocks under ``torch.compile``).
        """
        shape = tuple(x.shape)
        name = "stem"
        try:
            x = self.forward_stem(x)
            for name in self._stage_names:
                x = getattr(self, name)(x)
        except ValueError as error:
            if "more than 1 value per channel" not in str(error):
                raise
            raise ValueError(
                f"input of shape {shape} is too small to train on alone: in {name} its "
                f"feature map is 1 x 1 x 1, and BatchNorm in training mode needs more than one "
                f"value per channel; use a batch of 2 or more, larger slices, or model.eval()"
            ) from None
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool, dropout and classifier.

        Args:
            x: Output of :meth:`forward_features`.
            pre_logits: Return the pooled features, skipping the classifier.
        """
        x = torch.flatten(self.avgpool(x), 1)
        x = self.dropout(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------------ internals
    def _make_classifier(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        fc = nn.Linear(self.num_features, num_classes)
        nn.init.zeros_(fc.bias)
        bound = 1 / math.sqrt(self.num_features)
        nn.init.uniform_(fc.weight, -bound, bound)
        return fc

    def _apply_conv_impl(self, impl: str) -> None:
        for module in self.modules():
            if isinstance(module, ThinDepthConv3d):
                module.impl = impl

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.config.zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock3d, Bottleneck3d)):
                    nn.init.zeros_(module.last_norm.weight)

    # ------------------------------------------------------------------ pretrained weights
    _pretrained_cfg: PretrainedCfg | None = None

    @property
    def pretrained_cfg(self) -> PretrainedCfg | None:
        """What travels with the weights (:class:`~resnet3d.weights.cfg.PretrainedCfg`).

        Set by :func:`resnet3d.models.pretrained.from_pretrained`, by rebuilding a training
        checkpoint and by the converters: where the weights came from, the preprocessing spec
        (``SliceStacker`` arguments), labels, metrics and license. ``None`` for a model built
        from scratch. A dict assigned here is read with :meth:`PretrainedCfg.from_dict`.
        """
        return self._pretrained_cfg

    @pretrained_cfg.setter
    def pretrained_cfg(self, value: PretrainedCfg | Mapping[str, Any] | None) -> None:
        self._pretrained_cfg = None if value is None else PretrainedCfg.from_dict(value)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write ``model.safetensors``, ``config.json`` and a model card, atomically.

        See :func:`resnet3d.weights.save.save_pretrained` for the keyword arguments.
        """
        return save_pretrained(self, save_directory, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Save and upload to a Hugging Face Hub repo; returns the ``CommitInfo``.

        See :func:`resnet3d.weights.upload.push_to_hub` for the keyword arguments.
        """
        return push_to_hub(self, repo_id, **kwargs)


def _build(name: str, defaults: dict[str, Any], overrides: dict[str, Any]) -> ResNet3D:
    fields = {**defaults, **overrides}
    fields.setdefault("name", name)
    return ResNet3D(ResNet3DConfig.from_dict(fields))


_BASIC = {"block": "basic", "shortcut": "A"}
_BOTTLENECK = {"block": "bottleneck", "shortcut": "B"}
_2PLUS1D = {"conv": "2plus1d"}


@register_model
def resnet10(**overrides: Any) -> ResNet3D:
    """ResNet-10: basic blocks (1, 1, 1, 1), type-A shortcuts, the paper's stem."""
    return _build("resnet10", {**_BASIC, "layers": (1, 1, 1, 1)}, overrides)


@register_model
def resnet18(**overrides: Any) -> ResNet3D:
    """ResNet-18 of the paper (Table 3): basic blocks (2, 2, 2, 2), type-A shortcuts."""
    return _build("resnet18", {**_BASIC, "layers": (2, 2, 2, 2)}, overrides)


@register_model
def resnet34(**overrides: Any) -> ResNet3D:
    """ResNet-34 of the paper (Table 3): basic blocks (3, 4, 6, 3), type-A shortcuts."""
    return _build("resnet34", {**_BASIC, "layers": (3, 4, 6, 3)}, overrides)


@register_model
def resnet50(**overrides: Any) -> ResNet3D:
    """ResNet-50 of the paper (Table 3): bottlenecks (3, 4, 6, 3), type-B shortcuts."""
    return _build("resnet50", {**_BOTTLENECK, "layers": (3, 4, 6, 3)}, overrides)


@register_model
def resnet101(**overrides: Any) -> ResNet3D:
    """ResNet-101: bottlenecks (3, 4, 23, 3), type-B shortcuts, the paper's stem."""
    return _build("resnet101", {**_BOTTLENECK, "layers": (3, 4, 23, 3)}, overrides)


@register_model
def resnet152(**overrides: Any) -> ResNet3D:
    """ResNet-152: bottlenecks (3, 8, 36, 3), type-B shortcuts, the paper's stem."""
    return _build("resnet152", {**_BOTTLENECK, "layers": (3, 8, 36, 3)}, overrides)


@register_model
def resnet200(**overrides: Any) -> ResNet3D:
    """ResNet-200: bottlenecks (3, 24, 36, 3), type-B shortcuts, the paper's stem."""
    return _build("resnet200", {**_BOTTLENECK, "layers": (3, 24, 36, 3)}, overrides)


@register_model
def resnet18_2plus1d(**overrides: Any) -> ResNet3D:
    """ResNet-18(2+1)D of the paper: resnet18 with every convolution factorised."""
    return _build("resnet18_2plus1d", {**_BASIC, **_2PLUS1D, "layers": (2, 2, 2, 2)}, overrides)


@register_model
def resnet34_2plus1d(**overrides: Any) -> ResNet3D:
    """ResNet-34(2+1)D of the paper: resnet34 with every convolution factorised."""
    return _build("resnet34_2plus1d", {**_BASIC, **_2PLUS1D, "layers": (3, 4, 6, 3)}, overrides)


@register_model
def resnet50_2plus1d(**overrides: Any) -> ResNet3D:
    """ResNet-50(2+1)D: resnet50 with each 3x3x3 (and the stem) factorised."""
    return _build(
        "resnet50_2plus1d", {**_BOTTLENECK, **_2PLUS1D, "layers": (3, 4, 6, 3)}, overrides
    )
