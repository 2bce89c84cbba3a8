"""The uint8 volume cache: equal to decoding, atomic, resumable, byte-identical after a kill."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import ccii

from resnet3d.data.cache import VolumeCache, build_cache
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.data.split import split_by_patient
from resnet3d.data.volumes import SliceStacker
from resnet3d.errors import CacheError, CorruptSliceError, DatasetNotFoundError

LAYOUT: Mapping[str, Mapping[str, Mapping[str, int]]] = {
    "NCP": {"1": {"10": 7, "11": 3}, "2": {"20": 5}},
    "CP": {"3": {"30": 6}, "4": {"40": 4}},
    "Normal": {"5": {"50": 5}, "6": {"60": 8, "61": 2}},
}
STACKER = SliceStacker(depth=2, size=(5, 7))


def make_ccii(root: Path, rgb_scan: str = "30") -> Path:
    """Noise PNG slices (8x8 gray; one scan RGB) in the CC-CCII layout."""
    return ccii.make_ccii(root, LAYOUT, size=8, rgb_scans=(rgb_scan,))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> ScanIndex:
    return ScanIndex.from_ccii(make_ccii(tmp_path / "ccii"))


def test_cache_equals_decoding_on_the_fly(data: ScanIndex, tmp_path: Path) -> None:
    result = build_cache(data, tmp_path / "cache", STACKER)
    assert (result.written, result.reused, result.skipped) == (len(data), 0, ())
    assert result.n_slices == sum(r.n_slices for r in data)
    cache = VolumeCache(tmp_path / "cache")
    assert len(cache) == len(data) and cache.keys() == [r.key for r in data]
    for row in data:
        stored = cache.slices(row.key)
        assert stored.dtype == np.uint8 and not stored.flags.writeable
        assert stored.shape == (
            (row.n_slices, 5, 7, 3) if row.scan_id == "30" else (row.n_slices, 5, 7)
        )
        np.testing.assert_array_equal(cache.load(row.key, stacker=STACKER), STACKER.load(row.path))
    # one cache serves any depth, stride and remainder with the same slice settings
    other = STACKER.replace(depth=3, stride=1, remainder="pad", dtype="uint8")
    for row in data:
        np.testing.assert_array_equal(cache.load(row.key, stacker=other), other.load(row.path))
    # and the data set reads it instead of decoding, with identical items
    split = split_by_patient(data, seed=0)
    decoded = VolumeDataset(split, STACKER, split="train")
    cached = VolumeDataset(split, STACKER, split="train", cache=tmp_path / "cache")
    assert len(decoded) == len(cached) > 0
    for i in range(len(decoded)):
        a, b = decoded[i], cached[i]
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert cache.to_index() == data


def test_hounsfield_source_is_rounded_to_256_levels(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    scan = tmp_path / "tree" / "ct" / "s1"
    scan.mkdir(parents=True)
    for name in ("2062", "2392", "2693", "3023", "3353"):
        shutil.copy(get_testdata_file(f"dicomdirtests/98892001/CT5N/{name}"), scan / name)
    assert pydicom.dcmread(scan / "2062").Modality == "CT"
    index = ScanIndex.from_tree(tmp_path / "tree")
    stacker = SliceStacker(depth=5, size=(16, 16), window="mediastinum")
    build_cache(index, tmp_path / "cache", stacker)
    cached = VolumeCache(tmp_path / "cache").load("ct/s1/s1", stacker=stacker)
    exact = stacker.load(scan)
    assert np.abs(cached - exact).max() <= 0.5 / 255 + 1e-6
    assert not np.array_equal(cached, exact)  # really quantized, not a copy of floats


def test_interrupted_build_resumes_byte_identical(data: ScanIndex, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    build_cache(data, clean, STACKER)

    resumed = tmp_path / "resumed"

    def crash_after_three(key: str, status: str) -> None:
        if len(list(resumed.rglob("*.npy"))) == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(data, resumed, STACKER, on_scan=crash_after_three)
    assert json.loads((resumed / "manifest.json").read_text())["complete"] is False
    with pytest.raises(CacheError, match="did not finish"):
        VolumeCache(resumed)
    statuses: list[str] = []
    build_cache(data, resumed, STACKER, on_scan=lambda key, status: statuses.append(status))
    assert statuses.count("reused") == 3 and statuses.count("written") == len(data) - 3
    assert tree_bytes(resumed) == tree_bytes(clean)


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from resnet3d.data import cache
    from resnet3d.data.index import ScanIndex
    from resnet3d.data.volumes import SliceStacker

    root, out, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real_replace = os.replace
    done = []

    def replace(src, dst):
        if str(dst).endswith(".npy"):
            if len(done) == keep:  # the temp file is written and synced, never renamed
                os.kill(os.getpid(), signal.SIGKILL)
            done.append(dst)
        real_replace(src, dst)

    cache.os.replace = replace
    cache.build_cache(ScanIndex.from_ccii(root), out, SliceStacker(depth=2, size=(5, 7)))
    """
)


@pytest.mark.slow  # a subprocess that imports torch: about 5 s on a 2-core machine
def test_killed_build_resumes_byte_identical(data: ScanIndex, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    build_cache(data, clean, STACKER)
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(data.root), str(killed), "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr  # SIGKILL: no cleanup ran
    stale = list(killed.rglob("*.npy.tmp*"))
    assert len(stale) == 1 and len(list(killed.rglob("*.npy"))) == 4
    result = build_cache(data, killed, STACKER)
    assert (result.reused, result.written) == (4, len(data) - 4)
    assert tree_bytes(killed) == tree_bytes(clean)  # stale temp file gone, bytes equal


def test_settings_mismatch_and_overwrite(data: ScanIndex, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    build_cache(data, out, STACKER)
    # only the slice settings matter: another depth reuses everything
    assert build_cache(data, out, STACKER.replace(depth=8)).reused == len(data)
    with pytest.raises(CacheError, match=r"size: \[5, 7\] -> \[6, 6\]") as info:
        build_cache(data, out, STACKER.replace(size=6))
    assert str(out) in str(info.value)
    result = build_cache(data, out, STACKER.replace(size=6), overwrite=True)
    assert result.written == len(data)
    cache = VolumeCache(out)
    with pytest.raises(CacheError, match="build a cache with these settings"):
        cache.load(data[0].key, stacker=STACKER)
    with pytest.raises(CacheError, match="slice"):
        VolumeDataset(data, STACKER, cache=cache)


def test_not_a_cache_and_missing_scans(data: ScanIndex, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(CacheError, match="not a volume cache") as info:
        build_cache(data, foreign, STACKER)
    assert str(foreign) in str(info.value) and (foreign / "thesis.tex").exists()
    with pytest.raises(DatasetNotFoundError, match="build-volumes"):
        VolumeCache(foreign)
    out = tmp_path / "cache"
    build_cache(data.subset(list(data)[:3]), out, STACKER)
    with pytest.raises(CacheError, match=r"5 scan\(s\) missing"):
        VolumeDataset(data, STACKER, cache=out)
    with pytest.raises(KeyError, match="not in the cache"):
        VolumeCache(out).slices(data[5].key)


def test_lenient_build_skips_and_lists_bad_scans(data: ScanIndex, tmp_path: Path) -> None:
    bad = data[1].path / "1.png"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptSliceError) as info:
        build_cache(data, tmp_path / "strict", STACKER)
    assert str(bad) in str(info.value)
    result = build_cache(data, tmp_path / "lenient", STACKER, lenient=True)
    assert [k for k, _ in result.skipped] == [data[1].key]
    cache = VolumeCache(tmp_path / "lenient")
    assert data[1].key not in cache and len(cache) == len(data) - 1
    manifest = json.loads((tmp_path / "lenient" / "manifest.json").read_text())
    assert str(bad) in manifest["skipped"][0]["error"]
    with pytest.raises(KeyError, match="skipped at build"):
        cache.slices(data[1].key)
