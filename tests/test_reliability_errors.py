"""Reliability, the command line: every user error is one line and a non-zero exit; full
tracebacks only with ``--debug`` or ``RESNET3D_DEBUG=1``."""

from __future__ import annotations

import builtins
import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import resnet3d
from resnet3d import _utils
from resnet3d.cli import describe_error, main
from resnet3d.engine import checkpoint
from resnet3d.errors import CorruptSliceError

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def write_to_dev_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make atomic_open's temporary files (checkpoints') a full disk: writes fail with ENOSPC."""
    real_open = builtins.open

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if ".tmp-" in os.fspath(file) and "w" in mode:
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(_utils, "open", full_open, raising=False)


@needs_dev_full
def test_disk_full_while_saving_a_checkpoint_says_the_previous_one_is_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = checkpoint.save_checkpoint({"epoch": 1, "w": torch.ones(1000)}, tmp_path / "last.pt")
    before = target.read_bytes()
    write_to_dev_full(monkeypatch)
    with pytest.raises(OSError, match="no space left on device while writing") as info:
        checkpoint.save_checkpoint({"epoch": 2, "w": torch.zeros(1000)}, target)
    assert "the previous last.pt is intact" in str(info.value)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left
    status, message = describe_error(info.value)
    assert status == 2 and one_line(message).startswith("no space left on device")


@needs_dev_full
def test_disk_full_on_any_other_write_is_one_line_naming_the_file(tmp_path: Path) -> None:
    try:
        with open("/dev/full", "w") as handle:
            handle.write("x" * 100_000)
            handle.flush()
    except OSError as error:
        error.filename = os.fspath(tmp_path / "metrics.json")
        status, message = describe_error(error)
    assert status == 2
    assert one_line(message) == f"no space left on device while writing {tmp_path}/metrics.json"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize(
    ("device", "says"),
    [("cuda", "CUDA is not available here"), ("tpu", "is not a device"), ("xla", "not supported")],
)
def test_unavailable_device_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], device: str, says: str
) -> None:
    # --data does not exist: the device is checked first, so its error is the one shown.
    argv = ["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]
    assert main([*argv, "--device", device]) == 2
    assert says in one_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["tpu", "cuda:7" if torch.cuda.is_available() else "cuda"])
def test_unavailable_device_in_the_library_is_a_value_error(device: str) -> None:
    from resnet3d.engine.device import resolve_device

    with pytest.raises(ValueError, match=rf"device '{device}'.*(available|not available)"):
        resolve_device(device)  # what Trainer, evaluate_model and predict_scans call
    assert resolve_device("cpu") == torch.device("cpu")


class CorruptInWorker(Dataset):
    """Raises, from inside a DataLoader worker, the error a bad slice raises there."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        raise CorruptSliceError("scans/NCP/1/2/0003.png: truncated PNG (read 10 of 90 bytes)")


def test_error_in_a_dataloader_worker_is_one_line_with_the_original_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def run(args: Any) -> int:
        for _ in DataLoader(CorruptInWorker(), num_workers=1):
            pass
        return 0

    import resnet3d.cli.index as index_command

    monkeypatch.setattr(index_command, "run", run)
    assert main(["index", str(tmp_path)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line == (
        "resnet3d index: error: in a data-loading worker: "
        "scans/NCP/1/2/0003.png: truncated PNG (read 10 of 90 bytes)"
    )


def _folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_push_without_network_says_the_hub_is_unreachable_and_the_export_is_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    export = resnet3d.create_model("resnet10", widths=(4, 8, 8, 8)).save_pretrained(
        tmp_path / "export"
    )
    before = _folder_digest(export)
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_never_sent")
    from huggingface_hub import constants

    # Online as far as the libraries know (conftest turns offline mode on for the suite).
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert main(["push", str(export), "org/name"]) == 2
    line = one_line(capsys.readouterr().err)
    assert "cannot reach the Hugging Face Hub" in line
    assert f"{export} is intact" in line
    assert _folder_digest(export) == before


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: Any) -> int:
        raise RuntimeError("something no user can fix\nwith a second line")

    import resnet3d.cli.index as index_command

    monkeypatch.setattr(index_command, "run", run)
    monkeypatch.delenv("RESNET3D_DEBUG", raising=False)
    assert main(["index", str(tmp_path)]) == 1
    line = one_line(capsys.readouterr().err)
    assert "unexpected RuntimeError: something no user can fix" in line
    assert "--debug" in line and "RESNET3D_DEBUG=1" in line
    for argv in (["--debug", "index", str(tmp_path)], ["index", str(tmp_path), "--debug"]):
        with pytest.raises(RuntimeError, match="no user can fix"):
            main(argv)
    monkeypatch.setenv("RESNET3D_DEBUG", "1")
    with pytest.raises(RuntimeError, match="no user can fix"):
        main(["index", str(tmp_path)])


def test_user_error_with_several_lines_is_printed_on_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(args: Any) -> int:
        raise ValueError("cannot resume:\n  depth: 4 -> 2\n  lr: 0.001 -> 0.5")

    import resnet3d.cli.index as index_command

    monkeypatch.setattr(index_command, "run", run)
    assert main(["index", str(tmp_path)]) == 2
    assert one_line(capsys.readouterr().err) == (
        "resnet3d index: error: cannot resume:; depth: 4 -> 2; lr: 0.001 -> 0.5"
    )
