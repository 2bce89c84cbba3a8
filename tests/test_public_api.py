"""The top-level API: one list of names, loaded lazily, old paths still working."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import resnet3d

INIT = Path(resnet3d.__file__)


def _type_checking_names() -> set[str]:
    tree = ast.parse(INIT.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for child in node.body:
                assert isinstance(child, ast.ImportFrom)
                names.update(alias.asname or alias.name for alias in child.names)
    return names


def test_one_list_of_public_names() -> None:
    public = set(resnet3d.__all__) - {"__version__"}
    assert len(resnet3d.__all__) == len(set(resnet3d.__all__)), "a name is listed twice"
    assert set(resnet3d._EXPORTS) == public
    assert _type_checking_names() == public


@pytest.mark.parametrize("name", sorted(set(resnet3d.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_module(name: str) -> None:
    value = getattr(resnet3d, name)
    module = importlib.import_module(f"resnet3d.{resnet3d._EXPORTS[name]}")
    assert getattr(module, name) is value
    doc = getattr(value, "__doc__", None)
    assert doc and doc.strip(), f"resnet3d.{name} has no docstring"


def test_workflows_split_and_entry_are_exported() -> None:
    for name in ("fit_from_folder", "evaluate_model", "predict_scans", "Split", "PretrainedEntry"):
        assert name in resnet3d.__all__


def test_dir_shows_no_internals() -> None:
    shown = dir(resnet3d)
    assert not [n for n in shown if n.startswith("_") and n != "__version__"]
    assert not {"importlib", "annotations", "TYPE_CHECKING", "Any"} & set(shown)
    assert {"models", "data", "weights", "engine", "metrics"} <= set(shown)
    assert set(resnet3d.__all__) <= set(shown)


def test_layer_classes_live_in_models_and_old_names_still_import() -> None:
    from resnet3d import models

    for name in (
        "Conv2Plus1d",
        "BasicBlock3d",
        "Bottleneck3d",
        "ZeroPadShortcut",
        "ProjectionShortcut",
    ):
        assert getattr(resnet3d, name) is getattr(models, name)
        assert name not in resnet3d.__all__


def test_import_resnet3d_is_cheap() -> None:
    code = (
        "import sys, resnet3d; "
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'numpy', 'resnet3d.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(["resnet3d._moved", "resnet3d._version"]))


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("resnet3d.hub", "from_pretrained", "resnet3d"),
        ("resnet3d.volumes", "SliceStacker", "resnet3d.data.volumes"),
        ("resnet3d.train", "Trainer", "resnet3d.engine.train"),
        ("resnet3d.pretrained", "PretrainedEntry", "resnet3d.weights.table"),
        ("resnet3d.registry", "create_model", "resnet3d.models.factory"),
    ],
)
def test_old_module_paths_still_import_with_a_warning(old: str, name: str, new: str) -> None:
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
        "warnings.simplefilter('ignore')\n"
        f"import importlib; old = importlib.import_module({old!r})\n"
        f"import resnet3d; new = importlib.import_module({new!r})\n"
        f"print(getattr(old, {name!r}) is getattr(new, {name!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "warned:" in out.stdout and "moved to" in out.stdout
    assert out.stdout.strip().endswith("True")


def test_an_unknown_name_says_so() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        resnet3d.nope  # noqa: B018
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hub = importlib.import_module("resnet3d.hub")
    with pytest.raises(AttributeError, match="moved to"):
        hub.nope  # noqa: B018


def test_rooms_resolve_their_names_and_modules_lazily() -> None:
    code = (
        "import sys, resnet3d\n"
        "assert resnet3d.data.phantom.__name__ == 'resnet3d.data.phantom'\n"
        "assert resnet3d.data.SliceStacker is resnet3d.data.volumes.SliceStacker\n"
        "assert resnet3d.weights.PretrainedCfg.__module__ == 'resnet3d.weights.cfg'\n"
        "assert 'torch' not in sys.modules, 'the weights table and phantom need no torch'\n"
        "try:\n    resnet3d.data.nope\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "module 'resnet3d.data' has no attribute 'nope'" in out.stdout
