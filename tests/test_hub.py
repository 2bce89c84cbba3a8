"""save_pretrained / from_pretrained on local folders: identity, strictness, adaptation,
atomic saves, name resolution and the not-yet-published error."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import resnet3d
from resnet3d.errors import CheckpointMismatchError, InvalidExportError, WeightsNotPublishedError
from resnet3d.models import pretrained as loading
from resnet3d.models.pretrained import from_pretrained
from resnet3d.weights import export_format, save
from resnet3d.weights.save import save_pretrained
from resnet3d.weights.state_dict import adapt_input_conv

SPEC = {"depth": 4, "size": 16, "channels": 3, "window": None, "stride": 4}


def tiny(name: str = "resnet18", seed: int = 0, **overrides: Any) -> resnet3d.ResNet3D:
    """A small model with non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    overrides.setdefault("widths", (4, 8, 8, 8))
    model = resnet3d.create_model(name, **overrides)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    return model.eval()


def volume(channels: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, channels, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def export(tmp_path: Path) -> tuple[resnet3d.ResNet3D, Path]:
    model = tiny()
    folder = save_pretrained(
        model,
        tmp_path / "export",
        preprocessing=SPEC,
        labels=["NCP", "CP", "Normal"],
        metrics=[{"name": "accuracy", "value": 0.5, "split": "synthetic"}],
        license="apache-2.0",
        dataset="synthetic phantoms",
    )
    return model, folder


# ----------------------------------------------------------------------------- identity
def test_save_writes_the_three_files(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    model, folder = export
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    document = json.loads((folder / "config.json").read_text())
    assert document["config"] == json.loads(model.config.to_json())
    assert document["preprocessing"] == SPEC
    assert document["labels"] == ["NCP", "CP", "Normal"]
    assert document["library_version"] == resnet3d.__version__
    assert set(load_file(folder / "model.safetensors")) == set(model.state_dict())
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: resnet3d\nlicense: apache-2.0\n")
    assert "| accuracy | 0.5000 | fraction | synthetic |" in card
    assert "not for clinical decisions" in card
    assert "synthetic phantoms" in card
    # No temporary folders left beside the export.
    assert [p.name for p in folder.parent.iterdir()] == ["export"]


@pytest.mark.parametrize("name", ["resnet18", "resnet18_2plus1d", "resnet50"])
def test_save_load_identity(tmp_path: Path, name: str) -> None:
    model = tiny(name, layers=(1, 1, 1, 1))
    model.save_pretrained(tmp_path / "m", preprocessing=SPEC)
    loaded = from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    x = volume()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_save_is_reproducible(tmp_path: Path) -> None:
    model = tiny()
    a = model.save_pretrained(tmp_path / "a", preprocessing=SPEC)
    b = model.save_pretrained(tmp_path / "b", preprocessing=SPEC)
    for name in ("model.safetensors", "config.json", "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_pretrained_cfg_travels(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    cfg = from_pretrained(folder).pretrained_cfg
    assert cfg is not None
    assert cfg["source"] == "local" and cfg["path"] == os.fspath(folder.resolve())
    assert cfg["preprocessing"] == SPEC
    assert cfg["labels"] == ["NCP", "CP", "Normal"]
    assert cfg["metrics"] == [
        {"name": "accuracy", "value": 0.5, "split": "synthetic", "unit": "fraction"}
    ]
    assert cfg["license"] == "apache-2.0" and cfg["adapted"] == {}


def test_resave_keeps_metadata(export: tuple[resnet3d.ResNet3D, Path], tmp_path: Path) -> None:
    _, folder = export
    again = from_pretrained(folder).save_pretrained(tmp_path / "again")
    doc = json.loads((again / "config.json").read_text())
    assert doc["preprocessing"] == SPEC and doc["labels"] == ["NCP", "CP", "Normal"]
    assert doc["license"] == "apache-2.0" and doc["metrics"][0]["value"] == 0.5


# ----------------------------------------------------------------------------- bad exports
def test_missing_config(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    (folder / "config.json").unlink()
    with pytest.raises(InvalidExportError, match=r"missing config\.json"):
        from_pretrained(folder)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"labels": ["a"]}', "lacks the architecture"),
        ('{"config": {"blocks": "basic"}}', "Did you mean 'block'"),
        ('{"config": {"num_classes": 2}, "labels": ["a", "b", "c"]}', "3 labels"),
        ('{"config": {}, "metrics": [{"name": "acc", "value": 1}]}', "invalid metric"),
        ('{"config": {}, "format_version": 99}', "format_version 99"),
        ('{"config": {}, "library_name": "timm"}', "not resnet3d"),
    ],
)
def test_invalid_config(export: tuple[resnet3d.ResNet3D, Path], content: str, message: str) -> None:
    _, folder = export
    (folder / "config.json").write_text(content)
    with pytest.raises(InvalidExportError, match=message):
        from_pretrained(folder)


def test_missing_weights(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    (folder / "model.safetensors").unlink()
    with pytest.raises(InvalidExportError, match="missing weights"):
        from_pretrained(folder)


def test_truncated_weights_in_folder(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(InvalidExportError, match="truncated, corrupted"):
        from_pretrained(folder)


def test_missing_and_extra_keys_are_listed(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    path = folder / "model.safetensors"
    state = load_file(path)
    del state["layer1.0.conv1.weight"]
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    save_file(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        from_pretrained(folder)
    message = str(info.value)
    assert "1 missing key(s): layer1.0.conv1.weight" in message
    assert "1 unexpected key(s): layer9.0.conv1.weight" in message


def test_misshapen_key(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    path = folder / "model.safetensors"
    state = load_file(path)
    state["fc.weight"] = torch.zeros(5, 8)
    save_file(state, path)
    with pytest.raises(
        CheckpointMismatchError, match=r"fc.weight: \(5, 8\) in .*\(3, 8\) in model"
    ):
        from_pretrained(folder)


def test_pickled_weights_are_not_loaded(tmp_path: Path) -> None:
    model = tiny()
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(InvalidExportError, match="pickled checkpoints are never loaded"):
        from_pretrained(tmp_path / "m")


# ----------------------------------------------------------------------------- adaptation
def test_num_classes_reinitialises_only_the_head(
    export: tuple[resnet3d.ResNet3D, Path], caplog: pytest.LogCaptureFixture
) -> None:
    model, folder = export
    with caplog.at_level(logging.INFO, logger="resnet3d.models.pretrained"):
        adapted = from_pretrained(folder, num_classes=5)
    assert "re-initialised the classifier: 3 -> 5" in caplog.text
    assert adapted.num_classes == 5 and adapted.fc.weight.shape == (5, 8)
    original = model.state_dict()
    for key, value in adapted.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, original[key]), key
    x = volume()
    with torch.no_grad():
        feats = adapted.forward_head(adapted.forward_features(x), pre_logits=True)
        assert torch.equal(feats, model.forward_head(model.forward_features(x), pre_logits=True))
    cfg = adapted.pretrained_cfg
    assert cfg is not None
    assert cfg["labels"] is None and cfg["metrics"] == []
    assert cfg["adapted"] == {"num_classes": [3, 5]}
    assert from_pretrained(folder, num_classes=0)(x).shape == (2, 8)


@pytest.mark.parametrize("name", ["resnet18", "resnet18_2plus1d"])
def test_in_channels_adaptation_is_exact_for_repeated_inputs(tmp_path: Path, name: str) -> None:
    model = tiny(name, layers=(1, 1, 1, 1))
    model.save_pretrained(tmp_path / "m", preprocessing=SPEC)
    grey = volume(1)
    one = from_pretrained(tmp_path / "m", in_channels=1)
    six = from_pretrained(tmp_path / "m", in_channels=6)
    x = volume(3)
    with torch.no_grad():
        reference_grey = model(grey.repeat(1, 3, 1, 1, 1))
        torch.testing.assert_close(one(grey), reference_grey, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(six(torch.cat([x, x], 1)), model(x), rtol=1e-4, atol=1e-5)
    assert one.config.in_channels == 1
    cfg = one.pretrained_cfg
    assert cfg is not None and cfg["preprocessing"]["channels"] == 1
    assert cfg["adapted"] == {"in_channels": [3, 1]}
    # Only the first convolution changed.
    first = "conv1.weight" if name == "resnet18" else "conv1_s.weight"
    for key, value in model.state_dict().items():
        if key != first:
            assert torch.equal(one.state_dict()[key], value), key


def test_adapt_input_conv_rules() -> None:
    w = torch.randn(4, 3, 1, 1, 1)
    assert adapt_input_conv(w, 3) is w
    torch.testing.assert_close(adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    two = adapt_input_conv(w, 2)
    torch.testing.assert_close(two, w[:, :2] * 1.5)
    five = adapt_input_conv(w, 5)
    torch.testing.assert_close(five, torch.cat([w, w[:, :2]], 1) * 0.6)
    with pytest.raises(ValueError, match="positive int"):
        adapt_input_conv(w, 0)
    with pytest.raises(ValueError, match="5-D"):
        adapt_input_conv(torch.zeros(3, 3), 1)


def test_bad_adaptation_arguments(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    with pytest.raises(TypeError, match="num_classes"):
        from_pretrained(folder, num_classes="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        from_pretrained(folder, in_channels=0)


# ----------------------------------------------------------------------------- saving
def test_save_validates_metadata(tmp_path: Path) -> None:
    model = tiny()
    with pytest.raises(ValueError, match="2 labels"):
        save_pretrained(model, tmp_path / "a", labels=["a", "b"])
    with pytest.raises(ValueError, match="Did you mean 'depth'"):
        save_pretrained(model, tmp_path / "a", preprocessing={"dpth": 4})
    with pytest.raises(ValueError, match="channels=1 but the model takes in_channels=3"):
        save_pretrained(model, tmp_path / "a", preprocessing={"channels": 1})
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        save_pretrained(model, tmp_path / "file")
    assert not (tmp_path / "a").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_interrupted_save_keeps_the_previous_export(
    export: tuple[resnet3d.ResNet3D, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = export
    before = _snapshot(folder)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C after the weights were written

    monkeypatch.setattr(save, "write_model_card", crash)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(tiny(seed=7), folder, overwrite=True)
    assert _snapshot(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["export"]  # temp folder removed


def test_failed_swap_restores_the_previous_export(
    export: tuple[resnet3d.ResNet3D, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, folder = export
    before = _snapshot(folder)
    real_replace = os.replace
    calls: list[tuple[str, str]] = []

    def flaky_replace(src: Any, dst: Any) -> None:
        calls.append((os.fspath(src), os.fspath(dst)))
        if len(calls) == 2:  # old export moved aside; moving the new one in fails
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(save.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(tiny(seed=7), folder, overwrite=True)
    monkeypatch.setattr(save.os, "replace", real_replace)
    assert _snapshot(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["export"]


def test_overwrite_replaces_and_keeps_foreign_files(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    _, folder = export
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    new = tiny(seed=3)
    save_pretrained(new, folder, overwrite=True)
    assert (folder / ".gitattributes").read_text() == "*.safetensors filter=lfs\n"
    x = volume()
    with torch.no_grad():
        assert torch.equal(from_pretrained(folder)(x), new(x))


def test_overwrite_of_a_clean_export(export: tuple[resnet3d.ResNet3D, Path]) -> None:
    model, folder = export
    new = tiny(seed=3)
    save_pretrained(new, folder, overwrite=True)
    x = volume()
    with torch.no_grad():
        out = from_pretrained(folder)(x)
        assert torch.equal(out, new(x)) and not torch.equal(out, model(x))
    assert [p.name for p in folder.parent.iterdir()] == ["export"]


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for one test: the umask it had before is restored after it."""
    previous = os.umask(0o022)
    os.umask(previous)
    try:
        yield os.umask
    finally:
        os.umask(previous)


def _modes(folder: Path) -> dict[str, int]:
    paths = [folder, *sorted(folder.iterdir())]
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_export_files_get_the_users_umask(
    umask: Callable[[int], int], mask: int, tmp_path: Path
) -> None:
    umask(mask)
    folder = save_pretrained(tiny(), tmp_path / "export", preprocessing=SPEC)
    modes = _modes(folder)
    assert modes.pop("export") == 0o777 & ~mask  # e.g. 0755, not mkdtemp's 0700
    assert modes == dict.fromkeys(
        export_format.EXPORT_FILES, 0o666 & ~mask
    )  # not safetensors' 0600
    # Replacing an export, wholesale or file by file beside foreign files, keeps the rule.
    save_pretrained(tiny(seed=3), folder, overwrite=True)
    assert _modes(folder)["model.safetensors"] == 0o666 & ~mask
    (folder / "notes.txt").write_text("mine\n")
    folder.chmod(0o700)  # the user's own folder: its mode is theirs and is kept
    save_pretrained(tiny(seed=4), folder, overwrite=True)
    modes = _modes(folder)
    assert modes.pop("export") == 0o700
    assert modes == {
        **dict.fromkeys(export_format.EXPORT_FILES, 0o666 & ~mask),
        "notes.txt": 0o666 & ~mask,
    }


# ----------------------------------------------------------------------------- names
def test_alias_not_published_explains_the_recipe() -> None:
    with pytest.raises(WeightsNotPublishedError) as info:
        from_pretrained("ccii-depth4")
    message = str(info.value)
    assert "not published yet" in message and "never substitutes random weights" in message
    assert (
        "resnet3d train --data ROOT --model resnet18 --depth 4 --size 512 --batch-size 32"
        in message
    )
    assert "resnet3d export" in message and "resnet3d push" in message
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_name_lists_closest_aliases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"not a pretrained alias.*Did you mean 'ccii-depth4'"):
        from_pretrained("ccii-depht4")
    with pytest.raises(ValueError, match="empty string"):
        from_pretrained("  ")
    with pytest.raises(TypeError):
        from_pretrained(42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no export directory"):
        from_pretrained("./nowhere")


def test_directory_never_shadows_alias_or_repo_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    model = tiny()
    model.save_pretrained("ccii-depth4")
    model.save_pretrained("org/name")
    model.save_pretrained("plainname")
    with (
        caplog.at_level(logging.WARNING, logger="resnet3d.models.pretrained"),
        pytest.raises(WeightsNotPublishedError),
    ):
        from_pretrained("ccii-depth4")
    assert "pass './ccii-depth4'" in caplog.text
    assert loading._resolve_name("org/name") == ("repo", "org/name")
    assert loading._resolve_name("./org/name") == ("dir", "./org/name")
    assert loading._resolve_name(Path("org/name")) == ("dir", Path("org/name"))
    assert loading._resolve_name("plainname") == ("dir", "plainname")
    x = volume()
    with torch.no_grad():
        assert torch.equal(from_pretrained("./ccii-depth4")(x), model(x))
        assert torch.equal(from_pretrained("./org/name")(x), model(x))
        assert torch.equal(from_pretrained("plainname")(x), model(x))
