"""``create_model``: the one way to build a model, fresh or with pretrained weights."""

from __future__ import annotations

import os
from typing import Any

from .pretrained import from_pretrained
from .registry import check_architecture, get_factory
from .resnet import ResNet3D

__all__ = ["create_model"]

# What pretrained weights can be adapted to explicitly (see from_pretrained).
_ADAPTABLE = ("num_classes", "in_channels")


def create_model(
    name: str,
    *,
    pretrained: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> ResNet3D:
    """Build a registered model, freshly initialised or from pretrained weights.

    Args:
        name: A name from :func:`~resnet3d.models.registry.list_models`, e.g. ``"resnet18"``.
        pretrained: Weights to start from: a weights-table alias, a Hub repo id or an export
            folder (resolved as :func:`~resnet3d.models.pretrained.from_pretrained` does).
            Their architecture must be the one registered as ``name``.
        **overrides: Config fields to change from the factory's defaults, e.g.
            ``in_channels=1, num_classes=2``. With ``pretrained`` only ``num_classes`` (a new
            classifier) and ``in_channels`` (an adapted first convolution) are allowed.

    Returns:
        A :class:`~resnet3d.models.resnet.ResNet3D` (in eval mode when loaded from weights,
        as ``from_pretrained`` returns it).

    Raises:
        ValueError: If ``name`` is not registered (the message lists the closest names), an
            override is not a config field or cannot apply to pretrained weights, or the
            weights are another architecture.
    """
    factory = get_factory(name)
    if pretrained is None:
        return factory(**overrides)
    fixed = sorted(k for k in overrides if k not in _ADAPTABLE)
    if fixed:
        raise ValueError(
            f"cannot change {fixed} of pretrained weights; with pretrained= only "
            f"{list(_ADAPTABLE)} can be given (the rest is the weights' architecture)"
        )
    model = from_pretrained(pretrained, **overrides)
    check_architecture(name, model.config, source=f"the weights {os.fspath(pretrained)!r}")
    return model
