"""Model registry: factories by name, ``create_model`` and ``list_models``.

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


def create_model(name: str, **overrides: Any) -> ResNet3D:
    """Build a registered model.

    Args:
        name: A name from :func:`list_models`, e.g. ``"resnet18"``.
        **overrides: Config fields to change from the factory's defaults, e.g.
            ``in_channels=1, num_classes=2``.

    Returns:
        A freshly initialised :class:`~resnet3d.models.resnet.ResNet3D`.

    Raises:
        ValueError: If ``name`` is not registered (the message lists the closest names) or an
            override is not a config field.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown model {name!r}; available: {list_models()}." + did_you_mean(name, _REGISTRY)
        )
    return _REGISTRY[name](**overrides)


def _natural_key(name: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))
