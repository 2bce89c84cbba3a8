"""The ``resnet3d build-volumes`` and ``resnet3d index`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import ccii

from resnet3d.cli import main
from resnet3d.data.cache import VolumeCache
from resnet3d.data.index import ScanIndex
from resnet3d.data.split import Split
from resnet3d.data.volumes import SliceStacker


def make_ccii(root: Path) -> Path:
    layout = {
        label: {patient: {f"{patient}0": 5} for patient in patients}
        for label, patients in {"NCP": ("1", "2"), "CP": ("3", "4"), "Normal": ("5", "6")}.items()
    }
    return ccii.make_ccii(root, layout, size=8, csv_rows=False, seed=1)


def test_build_volumes_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_ccii(tmp_path / "ccii")
    out = tmp_path / "cache"
    argv = ["build-volumes", str(root), str(out), "--depth", "2", "--size", "4", "--no-progress"]
    assert main(argv) == 0
    assert "6 scan(s) written, 0 reused, 0 skipped; 30 slices" in capsys.readouterr().out
    cache = VolumeCache(out)
    assert cache.stacker == SliceStacker(depth=2, size=4, dtype="uint8")
    assert main(argv) == 0
    assert "0 scan(s) written, 6 reused" in capsys.readouterr().out
    assert main([*argv, "--size", "5"]) == 2
    err = capsys.readouterr().err
    assert "build-volumes: error:" in err and "--overwrite" in err


def test_build_volumes_windows_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_ccii(tmp_path / "ccii")
    out = tmp_path / "cache"
    argv = ["build-volumes", str(root), str(out), "--size", "4", "8", "--no-progress"]
    # a negative center needs the --window=C,W form (argparse reads "-600" as an option)
    assert main([*argv, "--window", "lung", "--window=-600,1500"]) == 0
    assert VolumeCache(out).stacker.window == ("lung", (-600.0, 1500.0))
    assert VolumeCache(out).stacker.channels == 2
    assert main([*argv, "--window", "lung,x"]) == 2
    assert "CENTER,WIDTH" in capsys.readouterr().err
    assert main(["build-volumes", str(tmp_path / "none"), str(out)]) == 2
    assert str(tmp_path / "none") in capsys.readouterr().err
    assert main(["build-volumes", str(root)]) == 2
    assert "give ROOT and OUT" in capsys.readouterr().err
    assert main(["build-volumes", "--verify", str(root), str(out)]) == 2
    assert "--verify takes the cache folder only" in capsys.readouterr().err


def test_index_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_ccii(tmp_path / "ccii")
    split_file = tmp_path / "split.json"
    assert (
        main(["index", str(root), "--csv", str(tmp_path / "i.csv"), "--split", str(split_file)])
        == 0
    )
    out = capsys.readouterr().out
    assert "total" in out and "consistency: no issues" in out
    index = ScanIndex.from_csv(tmp_path / "i.csv")
    assert len(index) == 6
    assert f"(hash {Split.from_json(split_file, index).hash[:16]})" in out

    (root / "CP" / "3" / "30" / "2.png").write_bytes(b"")
    assert main(["index", str(root)]) == 2
    assert str(root / "CP" / "3" / "30" / "2.png") in capsys.readouterr().err
    assert main(["index", str(root), "--lenient", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [i["kind"] for i in report["issues"]] == ["bad_scan"]
    assert report["counts"]["CP"]["scans"] == 1
