"""Reliability, messages: refusing a pickle, an empty or truncated checkpoint, and options
that would be ignored each say what is wrong in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.test_convert import Payload

from resnet3d.cli import main
from resnet3d.engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from resnet3d.torch_files import UnsafeCheckpointError, load_torch_file


def test_refused_pickle_says_not_a_safe_checkpoint_and_how_to_convert(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "extra": Payload(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "is not a safe checkpoint: it holds pickled Python objects (GLOBAL " in message
    assert "will likely succeed" not in message  # torch's advice is not repeated
    assert "safetensors.torch.save_file" in message  # how to convert a file one trusts
    assert "\n" not in message
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):
        load_torch_file(path)


def test_zero_byte_checkpoint_says_it_is_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"best.pt is empty \(0 bytes\)"):
        load_checkpoint(path)
    assert main(["export", str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "best.pt is empty (0 bytes): an interrupted copy or write? Copy or save it again"
    )


def test_truncated_checkpoint_says_truncated_with_its_size(tmp_path: Path) -> None:
    path = save_checkpoint({"w": torch.ones(10_000)}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=rf"\({len(data) // 2} bytes\): truncated, damaged or not"
    ):
        load_checkpoint(path)


def test_garbage_file_says_not_a_pytorch_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(b"these are my notes, not weights\n" * 4)
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as info:
        load_checkpoint(path)
    assert "will likely succeed" not in str(info.value)


@pytest.mark.parametrize("option", [["--fractions", "0.8,0.1,0.1"], ["--seed", "3"]])
def test_index_split_options_without_split_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    assert main(["index", str(tmp_path), *option]) == 2
    err = capsys.readouterr().err
    assert f"{option[0]} only apply to a split: add --split FILE" in err


def test_index_fractions_must_be_three_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["index", str(tmp_path), "--split", str(tmp_path / "s.json"), "--fractions", "0.5,0.5"]
    assert main(argv) == 2
    assert "give three numbers" in capsys.readouterr().err
