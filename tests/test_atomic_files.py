"""_utils.atomic_open: the one way files that must never be half-written are written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from resnet3d._utils import TMP_MARK, atomic_open, atomic_write_text, usable_cpus


def test_complete_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "old\n")
    with atomic_open(target, "w", sync_dir=True) as handle:
        handle.write("new\n")
        assert target.read_text() == "old\n"  # not visible before the block ends
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_an_error_inside_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "best.pt"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="boom"), atomic_open(target) as handle:
        handle.write(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_temporary_name_is_hidden_and_marked(tmp_path: Path) -> None:
    target = tmp_path / "log.csv"
    with atomic_open(target, "w") as handle:
        names = [p.name for p in tmp_path.iterdir()]
        assert names == [f".log.csv{TMP_MARK}{os.getpid()}"]
        handle.write("a,b\n")


def test_only_write_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writes only"), atomic_open(tmp_path / "x", "a"):
        pass


def test_usable_cpus_is_the_affinity_mask() -> None:
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    assert usable_cpus() >= 1
    if expected is not None:
        assert usable_cpus() == expected
