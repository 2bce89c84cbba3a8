"""Pretend an installed package is missing, as on a machine without it."""

from __future__ import annotations

import sys

import pytest


def hide_module(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``import name`` (and of any of its submodules) raise ImportError until the test ends.

    A ``None`` entry in ``sys.modules`` stops an import; submodules already imported are
    hidden one by one, because the import system returns a cached submodule without looking
    at its parent.
    """
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, name, None)
