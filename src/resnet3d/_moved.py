"""Old module paths, kept importable after the modules moved into subpackages.

Version 0.1 had one flat package (``resnet3d.hub``, ``resnet3d.data``, ``resnet3d.train``...).
The code now lives in rooms (``models``, ``weights``, ``data``, ``engine``); this finder makes
``import resnet3d.hub`` and ``from resnet3d.train import Trainer`` keep working, with a
:class:`DeprecationWarning` that names the new home. An old module is a read-only view: its
names are looked up in the new modules, in order, on first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: Old module -> the modules that hold its names now (looked up in this order).
MOVED: dict[str, tuple[str, ...]] = {}


class _MovedModule(types.ModuleType):
    """A module whose attributes come from the modules that replaced it."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        super().__init__(name, f"Moved: use {', '.join(targets)}.")
        self._targets = tuple(targets)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(
            f"module {self.__name__!r} (moved to {self._targets[0]}) has no attribute {attr!r}"
        )

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for target in self._targets:
            names.update(getattr(importlib.import_module(target), "__all__", ()))
        return sorted(names)


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``resnet3d.<old name>`` and builds its :class:`_MovedModule`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {', '.join(targets)}; the old path will be removed in 0.3",
            DeprecationWarning,
            stacklevel=4,
        )
        return _MovedModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install(moved: dict[str, tuple[str, ...]]) -> None:
    """Register the old paths (once per process)."""
    MOVED.update(moved)
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
