"""Model registry: factories by name, ``list_models`` and architecture checks.

Factories are declarations: each fills a :class:`~resnet3d.models.config.ResNet3DConfig` and builds
the model. The registry imports no model code: the built-in factories register themselves when
``resnet3d.models.resnet`` is imported, which importing the ``resnet3d.models`` package (the
parent of this module) always does first.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .._utils import did_you_mean

if TYPE_CHECKING:
    from .config import ResNet3DConfig
    from .resnet import ResNet3D

Factory = Callable[..., "ResNet3D"]
F = TypeVar("F", bound=Callable[..., Any])

_REGISTRY: dict[str, Factory] = {}


def register_model(fn: F) -> F:
    """Decorator: register ``fn`` as a model factory under its ``__name__``.

    Raises:
        ValueError: If a factory with the same name is already registered.
    """
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models that match a shell-style ``pattern``, sorted.

    Args:
        pattern: e.g. ``"resnet*"`` or ``"*2plus1d"``.
    """
    return sorted((n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)), key=_natural_key)


def get_factory(name: str) -> Factory:
    """The factory registered as ``name``.

    Raises:
        ValueError: If ``name`` is not registered (the message lists the closest names).
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown model {name!r}; available: {list_models()}." + did_you_mean(name, _REGISTRY)
        )
    return _REGISTRY[name]


def registered_config(name: str, **overrides: Any) -> ResNet3DConfig:
    """The config the factory ``name`` builds with ``overrides``, without allocating weights.

    The model is built on PyTorch's ``meta`` device, which records shapes only, so this is
    cheap even for resnet200.

    Raises:
        ValueError: If ``name`` is not registered or an override is not a config field.
    """
    import torch

    factory = get_factory(name)
    with torch.device("meta"):
        return factory(**overrides).config


def check_architecture(name: str, config: ResNet3DConfig, source: str) -> None:
    """Raise unless ``config`` is the architecture registered as ``name``.

    The classifier size, the input channels and the (2+1)D stem width may differ (weights
    adapt them explicitly); the name and ``conv_impl`` are not architecture.

    Raises:
        ValueError: Naming the fields that differ.
    """
    reference = registered_config(
        name,
        num_classes=config.num_classes,
        in_channels=config.in_channels,
        stem_midplanes=config.stem_midplanes,
    )
    if reference == config:
        return
    ours, theirs = reference.to_dict(), config.to_dict()
    differ = [
        f"{key}: {theirs[key]!r} (registered: {ours[key]!r})"
        for key in ours
        if key not in ("name", "conv_impl") and ours[key] != theirs.get(key)
    ]
    raise ValueError(
        f"{source} is not the architecture registered as {name!r}: {'; '.join(differ)}"
    )


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
