"""link_checkpoint: an improving epoch writes its checkpoint once (best.pt), last.pt links it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tests.helpers.toy import make_trainer

from resnet3d.engine import checkpoint as ckpt


def test_link_makes_the_same_file_and_later_saves_part_them(tmp_path: Path) -> None:
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    ckpt.save_checkpoint({"epoch": 1, "x": torch.ones(3)}, best)
    last.write_bytes(b"an older last.pt")
    ckpt.link_checkpoint(best, last)
    assert os.path.samefile(best, last)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["best.pt", "last.pt"]
    ckpt.save_checkpoint({"epoch": 2, "x": torch.zeros(3)}, last)  # a new file, not in place
    assert not os.path.samefile(best, last)
    assert torch.load(best)["epoch"] == 1 and torch.load(last)["epoch"] == 2


def test_without_hard_links_it_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(ckpt.os, "link", no_links)
    best = ckpt.save_checkpoint({"epoch": 1}, tmp_path / "best.pt")
    last = ckpt.link_checkpoint(best, tmp_path / "last.pt")
    assert not os.path.samefile(best, last)
    assert last.read_bytes() == best.read_bytes()


def test_a_failed_link_leaves_the_target_as_it_was(tmp_path: Path) -> None:
    last = tmp_path / "last.pt"
    last.write_bytes(b"previous")
    with pytest.raises(FileNotFoundError):
        ckpt.link_checkpoint(tmp_path / "missing.pt", last)
    assert last.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_training_writes_an_improving_epoch_once(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, epochs=1)
    trainer.fit()
    # One epoch always improves on nothing: best.pt and last.pt are one file.
    assert os.path.samefile(trainer.best_path, trainer.last_path)
    state = ckpt.load_checkpoint(trainer.last_path)
    assert state["epoch"] == 1
