"""Reliability, exports: never overwrite what the library did not write."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.test_hub_cli import training_checkpoint

import resnet3d
from resnet3d.cli import main
from resnet3d.weights.export_format import EXPORT_FILES

USERS_README = "# My project\n\nNotes I wrote myself.\n"


def test_export_into_a_folder_holding_the_users_readme_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ckpt = training_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text(USERS_README)
    assert main(["export", str(ckpt), str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "is not empty (it holds README.md)" in err and "--overwrite" in err
    assert (out / "README.md").read_text() == USERS_README
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "mine"]  # no temp folder


def test_export_overwrite_replaces_only_the_export_files(tmp_path: Path) -> None:
    model, ckpt = training_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert main(["export", str(ckpt), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPORT_FILES, ".git", "notes.txt"])
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    x = torch.rand(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(resnet3d.from_pretrained(out)(x), model(x))


def test_save_pretrained_into_a_non_empty_folder_is_refused_unless_overwrite(
    tmp_path: Path,
) -> None:
    model = resnet3d.create_model("resnet10", widths=(4, 8, 8, 8))
    folder = model.save_pretrained(tmp_path / "export")
    card = (folder / "README.md").read_bytes()
    with pytest.raises(FileExistsError, match="is not empty"):
        model.save_pretrained(folder)  # even a previous export: the user may have edited it
    assert (folder / "README.md").read_bytes() == card
    assert model.save_pretrained(folder, overwrite=True) == folder
    empty = tmp_path / "empty"
    empty.mkdir()
    assert model.save_pretrained(empty) == empty  # an empty folder is fine
