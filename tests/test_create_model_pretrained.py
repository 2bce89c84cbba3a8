"""create_model(name, pretrained=...): one way to build a model, checked against the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import resnet3d
from resnet3d.errors import InvalidExportError
from resnet3d.models import pretrained as loading
from resnet3d.models.registry import check_architecture, registered_config
from resnet3d.weights.table import PretrainedEntry

SMALL = {"widths": (4, 8, 8, 8)}


@pytest.fixture
def export(tmp_path: Path) -> tuple[resnet3d.ResNet3D, Path]:
    model = resnet3d.create_model("resnet10", num_classes=3, **SMALL)
    return model, model.save_pretrained(tmp_path / "export")


def test_pretrained_loads_the_same_weights(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _model, folder = export
    # The widths differ from the registered resnet10 (64..512), so the architecture check
    # must fail for it; compare with a registered config of the same shape instead.
    with pytest.raises(ValueError, match="widths"):
        resnet3d.create_model("resnet10", pretrained=folder)


def test_registered_shape_loads_and_adapts(tmp_path: Path) -> None:
    model = resnet3d.create_model("resnet10", num_classes=3)
    folder = model.save_pretrained(tmp_path / "export")
    loaded = resnet3d.create_model("resnet10", pretrained=folder)
    x = torch.rand(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    adapted = resnet3d.create_model("resnet10", pretrained=folder, num_classes=5, in_channels=1)
    assert adapted.num_classes == 5 and adapted.config.in_channels == 1


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    folder = resnet3d.create_model("resnet10").save_pretrained(tmp_path / "export")
    with pytest.raises(ValueError, match=r"not the architecture registered as 'resnet18'.*layers"):
        resnet3d.create_model("resnet18", pretrained=folder)


def test_architecture_overrides_cannot_apply_to_weights(tmp_path: Path) -> None:
    folder = resnet3d.create_model("resnet10").save_pretrained(tmp_path / "export")
    with pytest.raises(ValueError, match=r"cannot change \['widths'\]"):
        resnet3d.create_model("resnet10", pretrained=folder, widths=(8, 8, 8, 8))


def test_unknown_name_lists_the_closest() -> None:
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        resnet3d.create_model("resnet81", pretrained="./nowhere")


def test_registered_config_builds_nothing() -> None:
    config = registered_config("resnet200", num_classes=7)
    assert config.num_classes == 7 and config.layers == (3, 24, 36, 3)
    check_architecture("resnet200", config, source="x")  # itself passes


def test_an_alias_is_checked_against_the_registry(
    export: tuple[resnet3d.ResNet3D, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A table entry that claims resnet10 for weights of another width: refused by the
    # registry check, not by comparing names (the export's config says "resnet10").
    _, folder = export
    entry = PretrainedEntry(
        alias="test-alias", architecture="resnet10", preprocessing={}, labels=("a", "b", "c")
    )
    with pytest.raises(InvalidExportError, match="not the architecture registered as 'resnet10'"):
        loading._load_export(
            folder / "config.json",
            folder / "model.safetensors",
            source={"source": "local", "path": str(folder)},
            entry=entry,
            num_classes=None,
            in_channels=None,
        )
