"""Faults the volume cache must notice: changed sources, damaged files, bad manifests.

One fault per test, named after it; docs/reliability.md lists them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet3d.cli import main
from resnet3d.data.cache import JOURNAL, VolumeCache, build_cache
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker
from resnet3d.errors import CacheError

STACKER = SliceStacker(depth=2, size=(6, 6))
SCANS = {"NCP/1/10": 4, "CP/2/20": 3, "Normal/3/30": 5}


def make_data(root: Path) -> Path:
    """A few 8x8 noise PNG slices per scan in the CC-CCII layout."""
    rng = np.random.default_rng(0)
    for key, n in SCANS.items():
        folder = root / key
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def index_of(root: Path) -> ScanIndex:
    return ScanIndex.from_ccii(root, check_duplicates=False)


def flip_last_byte(path: Path) -> None:
    """Overwrite one byte of the array data in place (same size: only a checksum sees it)."""
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def rewrite_slice(path: Path, value: int) -> None:
    """New pixels for one slice, with a modification time the build cannot have seen."""
    before = path.stat()
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8)).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_data(tmp_path / "data")


@pytest.fixture
def cache(data: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cache"
    build_cache(index_of(data), out, STACKER)
    return out


# -- sources that changed after the build --------------------------------------------------


def test_changed_source_slices_are_rebuilt(data: Path, cache: Path) -> None:
    rewrite_slice(data / "CP/2/20/1.png", 7)
    statuses: dict[str, str] = {}
    result = build_cache(index_of(data), cache, STACKER, on_scan=statuses.__setitem__)
    assert result.rebuilt == (("CP/2/20", "sources changed"),)
    assert (result.written, result.reused) == (1, 2)
    assert statuses == {"NCP/1/10": "reused", "CP/2/20": "rebuilt", "Normal/3/30": "reused"}
    served = VolumeCache(cache).slices("CP/2/20")
    np.testing.assert_array_equal(served, STACKER.replace(dtype="uint8").read(data / "CP/2/20"))


def test_slice_rewritten_in_place_with_same_size_is_rebuilt(data: Path, cache: Path) -> None:
    # The old cache compared dtype, count and size only: same-size edits were reused.
    path = data / "NCP/1/10/2.png"
    before = path.stat()
    raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw))  # same bytes, same size, later modification time
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    result = build_cache(index_of(data), cache, STACKER)
    assert result.rebuilt == (("NCP/1/10", "sources changed"),)


def test_added_source_slice_is_rebuilt(data: Path, cache: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "Normal/3/30/5.png")
    result = build_cache(index_of(data), cache, STACKER)
    assert result.rebuilt == (("Normal/3/30", "sources changed"),)
    assert VolumeCache(cache).slices("Normal/3/30").shape[0] == 6


def test_junk_file_added_to_a_scan_folder_is_not_a_change(data: Path, cache: Path) -> None:
    (data / "CP/2/20/.DS_Store").write_bytes(b"\0junk")
    (data / "CP/2/20/notes.txt").write_text("reviewed")
    result = build_cache(index_of(data), cache, STACKER)
    assert (result.rebuilt, result.reused) == ((), 3)


def test_changed_sources_are_not_served_from_cache(data: Path, cache: Path) -> None:
    opened = VolumeCache(cache)
    rewrite_slice(data / "NCP/1/10/0.png", 9)
    with pytest.raises(CacheError, match=r"scan NCP/1/10: sources changed .*build-volumes"):
        opened.load("NCP/1/10", stacker=STACKER)
    opened.load("CP/2/20", stacker=STACKER)  # unchanged scans are still served


def test_cache_without_its_sources_is_still_served(data: Path, cache: Path) -> None:
    data.rename(data.with_name("moved"))  # a cache copied to a machine without the data
    volumes = VolumeCache(cache).load("CP/2/20", stacker=STACKER)
    assert volumes.shape == (1, 3, 2, 6, 6)


def test_rerun_after_source_change_says_how_many_were_rebuilt_and_why(
    data: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_slice(data / "CP/2/20/0.png", 1)
    (cache / "slices/NCP/1/10.npy").unlink()
    argv = ["build-volumes", str(data), str(cache), "--depth", "2", "--size", "6"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 scan(s) written (2 rebuilt: 1 file missing, 1 sources changed), 1 reused" in out


# -- damaged cached files -------------------------------------------------------------------


def test_overwritten_bytes_in_cached_array_are_found_by_verify(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flip_last_byte(cache / "slices/Normal/3/30.npy")
    assert main(["build-volumes", "--verify", str(cache)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Normal/3/30: cached file slices/Normal/3/30.npy is damaged")
    assert lines[-1].startswith(f"{cache}: 1 of 3 scan(s) damaged or stale")
    assert len(lines) == 2


def test_changed_sources_are_named_by_verify(
    data: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rewrite_slice(data / "CP/2/20/2.png", 3)
    assert main(["build-volumes", "--verify", str(cache)]) == 1
    out = capsys.readouterr().out
    assert "CP/2/20: sources changed since the cache was built" in out
    assert "NCP/1/10" not in out and "Normal/3/30" not in out


def test_verify_passes_a_sound_cache_without_the_data_root(
    data: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data.rename(data.with_name("elsewhere"))
    assert main(["build-volumes", "--verify", str(cache)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{cache}: 3 scan(s) verified: none damaged or stale")
    assert "sources of 3 scan(s) not found, not compared" in out


def test_damaged_array_does_not_survive_rebuild(data: Path, cache: Path, tmp_path: Path) -> None:
    clean = tree_bytes(cache)
    flip_last_byte(cache / "slices/NCP/1/10.npy")
    result = build_cache(index_of(data), cache, STACKER)
    assert result.rebuilt == (("NCP/1/10", "file damaged"),)
    assert tree_bytes(cache) == clean


def test_deleted_cached_array_is_rebuilt(data: Path, cache: Path) -> None:
    clean = tree_bytes(cache)
    (cache / "slices/CP/2/20.npy").unlink()
    result = build_cache(index_of(data), cache, STACKER)
    assert result.rebuilt == (("CP/2/20", "file missing"),)
    assert tree_bytes(cache) == clean


def test_truncated_cached_array_is_refused_on_read(cache: Path) -> None:
    path = cache / "slices/CP/2/20.npy"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(CacheError, match=r"scan CP/2/20: cached file .* has \d+ bytes"):
        VolumeCache(cache).slices("CP/2/20")


def test_overwritten_bytes_are_refused_when_reading_with_verify(cache: Path) -> None:
    flip_last_byte(cache / "slices/CP/2/20.npy")
    assert VolumeCache(cache).slices("CP/2/20").shape == (3, 6, 6)  # default: size checks only
    with pytest.raises(CacheError, match=r"scan CP/2/20: .* is damaged"):
        VolumeCache(cache, verify=True).slices("CP/2/20")


def test_torn_journal_line_after_a_crash_is_ignored(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "crashed"

    def crash_after_two(key: str, status: str) -> None:
        if len(list(out.rglob("*.npy"))) == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        build_cache(index_of(data), out, STACKER, on_scan=crash_after_two)
    with open(out / JOURNAL, "a") as fh:
        fh.write('{"key": "Normal/3/30", "fi')  # killed mid-line
    result = build_cache(index_of(data), out, STACKER)
    assert (result.reused, result.written, result.rebuilt) == (2, 1, ())
    assert not (out / JOURNAL).exists()


# -- bad manifests and --overwrite ----------------------------------------------------------


def overwrite_repairs(data: Path, cache: Path) -> None:
    """A damaged manifest: refused with a hint to --overwrite, which then rebuilds the cache."""
    with pytest.raises(CacheError, match=r"manifest.json: .*--overwrite"):
        build_cache(index_of(data), cache, STACKER)
    result = build_cache(index_of(data), cache, STACKER, overwrite=True)
    assert result.written == 3 and len(VolumeCache(cache)) == 3


def test_garbage_manifest_does_not_block_overwrite(data: Path, cache: Path) -> None:
    (cache / "manifest.json").write_bytes(b"\x89\x00not json at all\xff")
    overwrite_repairs(data, cache)


def test_truncated_manifest_does_not_block_overwrite(data: Path, cache: Path) -> None:
    manifest = cache / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    overwrite_repairs(data, cache)


def test_manifest_that_is_a_folder_does_not_block_overwrite(data: Path, cache: Path) -> None:
    (cache / "manifest.json").unlink()
    (cache / "manifest.json").mkdir()
    overwrite_repairs(data, cache)


def test_garbage_manifest_is_a_one_line_error_when_reading(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (cache / "manifest.json").write_text("{ not json")
    with pytest.raises(CacheError, match=r"manifest.json: unreadable .*--overwrite"):
        VolumeCache(cache)
    assert main(["build-volumes", "--verify", str(cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnet3d build-volumes: error:") and err.count("\n") == 1


def test_overwrite_refuses_folder_that_is_not_a_cache(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    (folder / "manifest.json").write_text("garbage, but not ours to delete")
    with pytest.raises(CacheError, match=r"not a volume cache \(holds \['thesis.tex'\]\)"):
        build_cache(index_of(data), folder, STACKER, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "thesis.tex"]


def test_overwrite_refuses_folder_with_another_tools_manifest(data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "webapp"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"name": "my app", "icons": []}')
    with pytest.raises(CacheError, match="not a resnet3d volume cache manifest"):
        build_cache(index_of(data), folder, STACKER, overwrite=True)
    assert json.loads((folder / "manifest.json").read_text())["name"] == "my app"


def test_overwrite_keeps_files_the_cache_does_not_own(data: Path, cache: Path) -> None:
    (cache / "README.txt").write_text("built for the depth sweep")
    (cache / "slices/CP/notes.txt").write_text("mine")
    result = build_cache(index_of(data), cache, STACKER.replace(size=4), overwrite=True)
    assert result.written == 3
    assert (cache / "README.txt").read_text() == "built for the depth sweep"
    assert (cache / "slices/CP/notes.txt").read_text() == "mine"
    assert VolumeCache(cache).slices("CP/2/20").shape == (3, 4, 4)


def test_old_format_cache_is_refused_with_a_rebuild_hint(data: Path, cache: Path) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["version"] = 1
    for entry in manifest["scans"]:  # the version-1 layout had no fingerprints or checksums
        del entry["sources"], entry["sha256"], entry["bytes"], entry["source_path"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match=r"version 1; this resnet3d reads version 2.*--overwrite"):
        VolumeCache(cache)
    with pytest.raises(CacheError, match="--overwrite"):
        build_cache(index_of(data), cache, STACKER)
    assert build_cache(index_of(data), cache, STACKER, overwrite=True).written == 3


def test_scan_entry_without_checksum_is_refused(cache: Path) -> None:
    manifest = json.loads((cache / "manifest.json").read_text())
    del manifest["scans"][1]["sha256"]
    (cache / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match=r"malformed scan entry.*--overwrite"):
        VolumeCache(cache)
