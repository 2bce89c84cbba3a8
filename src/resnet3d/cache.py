"""A volume cache: every scan decoded once into memory-mappable uint8 slices.

Decoding PNG slices is the bottleneck of training on CT slices. ``build_cache`` (CLI:
``resnet3d build-volumes ROOT OUT``) decodes every scan of an index once, prepares its slices
(resize, window, channels) exactly as a :class:`~resnet3d.volumes.SliceStacker` does, and
stores them as one uint8 ``.npy`` file per scan; :class:`VolumeCache` memory-maps them and
builds volumes without decoding anything.

Layout of ``OUT``::

    manifest.json                     format, version, the stacker spec, every scan's entry
    slices/<label>/<patient>/<scan>.npy   uint8, (S, H, W) gray or (S, H, W, C)

The files hold slices, not volumes, so one cache serves every ``depth``, ``stride`` and
``remainder`` (the paper's depth sweep): only the slice settings (``size``, ``channels``,
``window``, ``resample``) must match. Gray scans are stored once and repeated to 3 channels
when volumes are built, which keeps the cache at one byte per pixel.

Every file is written to a temporary name, synced, and renamed into place, so a file either
exists complete or not at all. An interrupted build (crash, Ctrl-C, kill) rerun with the same
arguments skips the scans already written, removes stale temporary files and ends with a
folder byte-identical to an uninterrupted build; ``manifest.json`` is marked complete last.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np

from .errors import CacheError, DatasetLayoutError, DatasetNotFoundError, Resnet3DError
from .volumes import SliceStacker

if TYPE_CHECKING:
    from .data import ScanIndex

__all__ = ["CACHE_FORMAT", "CACHE_VERSION", "CacheBuildResult", "VolumeCache", "build_cache"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "resnet3d-volume-cache"
CACHE_VERSION = 1
MANIFEST = "manifest.json"
SLICES_DIR = "slices"
_TMP_MARK = ".tmp"


def _safe(component: str) -> str:
    """A file-name-safe, reversible form of one id (no separators, never ``.``/``..``)."""
    text = quote(component, safe="-_.")
    if not text or set(text) <= {"."}:
        text = text.replace(".", "%2E") or "%00"
    return text


def cache_file(key: str) -> str:
    """Relative path of a scan's file inside a cache, from its ``label/patient/scan`` key."""
    parts = key.split("/")
    return "/".join([SLICES_DIR, *(_safe(p) for p in parts[:-1]), _safe(parts[-1]) + ".npy"])


def _write_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    tmp = path.with_name(path.name + f"{_TMP_MARK}{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f"{_TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CacheError(f"{path}: unreadable cache manifest: {error}", path=path) from error
    if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
        raise CacheError(f"{path}: not a resnet3d volume cache manifest", path=path)
    if doc.get("version") != CACHE_VERSION:
        raise CacheError(
            f"{path}: cache format version {doc.get('version')!r}, this resnet3d reads version "
            f"{CACHE_VERSION}; rebuild it with --overwrite",
            path=path,
        )
    return doc


def _slice_differences(manifest: Mapping[str, Any], stacker: SliceStacker) -> list[str]:
    """``field: cached -> requested`` for every slice setting that differs."""
    try:
        cached = SliceStacker.from_dict(manifest.get("stacker") or {}).slice_spec()
    except (TypeError, ValueError) as error:
        return [f"unreadable settings: {error}"]
    wanted = stacker.slice_spec()
    return [f"{k}: {cached[k]!r} -> {wanted[k]!r}" for k in wanted if cached[k] != wanted[k]]


@dataclass(frozen=True)
class CacheBuildResult:
    """What :func:`build_cache` did.

    Attributes:
        root: The cache folder.
        written: Scans decoded and written by this run.
        reused: Scans already present from an earlier (interrupted) run.
        skipped: ``(key, error message)`` of scans skipped in lenient mode.
        n_slices: Slices stored in the cache.
        n_bytes: Size of the stored slice files.
    """

    root: Path
    written: int
    reused: int
    skipped: tuple[tuple[str, str], ...]
    n_slices: int
    n_bytes: int


def _existing_ok(path: Path, n_slices: int, hw: tuple[int, int] | None) -> bool:
    """Whether a finished file from an earlier run can be kept (header check only)."""
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or arr.shape[0] != n_slices:
        return False
    return hw is None or tuple(arr.shape[1:3]) == hw


def build_cache(
    index: ScanIndex,
    out: str | os.PathLike[str],
    stacker: SliceStacker | None = None,
    *,
    lenient: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    on_scan: Callable[[str, str], None] | None = None,
) -> CacheBuildResult:
    """Decode every scan of an index once into a uint8 slice cache (resumable).

    Args:
        index: The scans (e.g. :meth:`resnet3d.data.ScanIndex.from_ccii`).
        out: The cache folder; created if needed. An existing cache with the same settings is
            resumed (finished scans are kept); with other settings it is an error unless
            ``overwrite``.
        stacker: Slice settings (``size``, ``channels``, ``window``, ``resample``; the volume
            fields are stored as the cache's default). Default: ``SliceStacker()``.
        lenient: Skip scans that cannot be decoded and list them in the manifest instead of
            stopping. A strict build stops at the first bad scan; rerunning resumes.
        overwrite: Delete an existing cache in ``out`` built with other settings.
        progress: Show a tqdm progress bar (on stderr).
        on_scan: Called as ``on_scan(key, status)`` after each scan, status ``"written"``,
            ``"reused"`` or ``"skipped"``.

    Returns:
        Counts of what was done.

    Raises:
        CacheError: If ``out`` holds a cache with other settings (and not ``overwrite``) or
            something that is not a cache.
        DatasetLayoutError: If a scan no longer has the slice count the index says.
        CorruptSliceError, InconsistentScanError: For a bad scan in strict mode.
    """
    from tqdm.auto import tqdm

    base = stacker if stacker is not None else SliceStacker()
    spec_stacker = base.replace(dtype="uint8")
    spec = spec_stacker.to_dict()
    root = Path(out)
    manifest = _read_manifest(root) if root.exists() else None
    if manifest is None and root.exists():
        foreign = [e.name for e in os.scandir(root) if e.name not in (SLICES_DIR,)]
        if foreign:
            raise CacheError(
                f"{root}: folder exists and is not a volume cache (holds {sorted(foreign)[:5]}); "
                "choose an empty or new folder",
                path=root,
            )
    differences = _slice_differences(manifest, spec_stacker) if manifest is not None else []
    if differences:
        if not overwrite:
            raise CacheError(
                f"{root}: holds a cache whose slices were prepared with other settings ("
                + ", ".join(differences)
                + "); use another folder or overwrite=True (CLI: --overwrite)",
                path=root,
            )
        logger.info("%s: removing a cache built with other settings", root)
        shutil.rmtree(root / SLICES_DIR, ignore_errors=True)
        (root / MANIFEST).unlink()
        manifest = None
    root.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(
        root / MANIFEST,
        {"format": CACHE_FORMAT, "version": CACHE_VERSION, "complete": False, "stacker": spec},
    )
    slices_root = root / SLICES_DIR
    if slices_root.exists():  # leftovers of a killed run: never renamed, never valid
        for stale in slices_root.rglob(f"*.npy{_TMP_MARK}*"):
            stale.unlink(missing_ok=True)

    entries: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    written = reused = 0
    n_slices = n_bytes = 0
    bar = tqdm(total=len(index), unit="scan", desc="build-volumes", disable=not progress)
    try:
        for row in index:
            rel = cache_file(row.key)
            path = root / rel
            if _existing_ok(path, row.n_slices, spec_stacker.hw):
                status = "reused"
                reused += 1
            else:
                try:
                    prepared = spec_stacker.read(row.path)
                except Resnet3DError as error:
                    if not lenient:
                        raise
                    logger.warning("skipping %s: %s", row.path, error)
                    skipped.append((row.key, str(error)))
                    bar.update(1)
                    if on_scan is not None:
                        on_scan(row.key, "skipped")
                    continue
                if prepared.shape[0] != row.n_slices:
                    raise DatasetLayoutError(
                        f"{row.path}: the index says {row.n_slices} slices, the scan now has "
                        f"{prepared.shape[0]}; rebuild the index",
                        path=row.path,
                    )
                _save_npy_atomic(path, prepared)
                status = "written"
                written += 1
            shape = list(np.load(path, mmap_mode="r", allow_pickle=False).shape)
            entries.append(
                {
                    "key": row.key,
                    "label": row.label,
                    "label_index": row.label_index,
                    "patient_id": row.patient_id,
                    "scan_id": row.scan_id,
                    "n_slices": row.n_slices,
                    "shape": shape,
                    "file": rel,
                    "source": os.fspath(row.path),
                }
            )
            n_slices += row.n_slices
            n_bytes += path.stat().st_size
            bar.update(1)
            if on_scan is not None:
                on_scan(row.key, status)
    finally:
        bar.close()
    _write_json_atomic(
        root / MANIFEST,
        {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "complete": True,
            "stacker": spec,
            "classes": list(index.classes),
            "scans": entries,
            "skipped": [{"key": k, "error": e} for k, e in skipped],
        },
    )
    return CacheBuildResult(root, written, reused, tuple(skipped), n_slices, n_bytes)


class VolumeCache:
    """Read a cache written by :func:`build_cache`; slices are memory-mapped, not decoded.

    Args:
        root: The cache folder.

    Raises:
        DatasetNotFoundError: If ``root`` has no ``manifest.json``.
        CacheError: If the build did not finish (rerun it to resume) or the manifest is from
            another format version.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        manifest = _read_manifest(self.root)
        if manifest is None:
            raise DatasetNotFoundError(
                f"{self.root}: no {MANIFEST}; build the cache with "
                "'resnet3d build-volumes ROOT OUT'",
                path=self.root,
            )
        if not manifest.get("complete"):
            raise CacheError(
                f"{self.root}: the cache build did not finish; rerun 'resnet3d build-volumes' "
                "with the same arguments to resume it",
                path=self.root,
            )
        self.manifest = manifest
        #: The settings the cache was built with (dtype ``uint8``).
        self.stacker = SliceStacker.from_dict(manifest["stacker"])
        self.classes: tuple[str, ...] = tuple(manifest.get("classes", ()))
        self.entries: dict[str, dict[str, Any]] = {e["key"]: e for e in manifest["scans"]}
        self.skipped: dict[str, str] = {s["key"]: s["error"] for s in manifest.get("skipped", [])}
        self._arrays: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __repr__(self) -> str:
        return f"VolumeCache({os.fspath(self.root)!r}, {len(self)} scans)"

    def keys(self) -> list[str]:
        """Scan keys (``label/patient/scan``) in build order."""
        return list(self.entries)

    def slices(self, key: str) -> np.ndarray:
        """The prepared uint8 slices of one scan, memory-mapped read-only.

        Args:
            key: A scan key (``ScanRecord.key``).

        Returns:
            A read-only memory map.

        Shape:
            ``(S, H, W)`` for gray scans, ``(S, H, W, C)`` otherwise.

        Raises:
            KeyError: If the scan is not in the cache (the message says if it was skipped).
            CacheError: If its file is missing or damaged.
        """
        array = self._arrays.get(key)
        if array is not None:
            return array
        entry = self.entries.get(key)
        if entry is None:
            why = f" (skipped at build: {self.skipped[key]})" if key in self.skipped else ""
            raise KeyError(f"scan {key!r} is not in the cache {os.fspath(self.root)}{why}")
        path = self.root / entry["file"]
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise CacheError(f"{path}: cannot read cached slices: {error}", path=path) from error
        if list(array.shape) != list(entry["shape"]):
            raise CacheError(
                f"{path}: shape {array.shape} differs from the manifest's {entry['shape']}",
                path=path,
            )
        self._arrays[key] = array
        return array

    def _stacker(self, stacker: SliceStacker | None) -> SliceStacker:
        if stacker is None:
            return self.stacker.replace(dtype="float32")
        if stacker.slice_spec() != self.stacker.slice_spec():
            raise CacheError(
                f"{self.root}: cache slices were prepared with {self.stacker.slice_spec()}, the "
                f"requested stacker needs {stacker.slice_spec()}; build a cache with these "
                "settings",
                path=self.root,
            )
        return stacker

    def check(self, index: Iterable[Any], stacker: SliceStacker | None = None) -> None:
        """Check that the cache serves an index with a stacker's slice settings.

        Args:
            index: Scan records (``key`` and ``n_slices`` are used).
            stacker: The stacker that will read it (default: the cache's own).

        Raises:
            CacheError: If the slice settings differ or scans are missing or have another
                slice count (the message names the first few).
        """
        self._stacker(stacker)
        missing, changed = [], []
        for row in index:
            entry = self.entries.get(row.key)
            if entry is None:
                missing.append(row.key)
            elif entry["n_slices"] != row.n_slices:
                changed.append(row.key)
        if missing or changed:
            raise CacheError(
                f"{self.root}: the cache does not match the index: {len(missing)} scan(s) "
                f"missing (e.g. {missing[:3]}), {len(changed)} with another slice count "
                f"(e.g. {changed[:3]}); rebuild the cache, or use cache.to_index()",
                path=self.root,
            )

    def load(
        self,
        key: str,
        volumes: Iterable[int] | None = None,
        stacker: SliceStacker | None = None,
        *,
        compact: bool = False,
    ) -> np.ndarray:
        """Volumes of one scan from the cached slices.

        Args:
            key: A scan key.
            volumes: Volume numbers (default all), as ``stacker.volume_indices`` counts.
            stacker: Depth, stride, remainder and output dtype to use; its slice settings must
                match the cache's. Default: the build's settings with float32 output.
            compact: Return uint8 volumes with gray scans as one channel, the cache's own
                form (see :meth:`~resnet3d.volumes.SliceStacker.stack_prepared`).

        Returns:
            The volumes, equal to ``stacker.load(scan)`` for 8-bit sources (deeper sources
            were rounded to 256 levels when cached).

        Shape:
            ``(N, C, D, H, W)``; with ``compact``, ``(N, 1, D, H, W)`` for gray scans.

        Raises:
            KeyError: If the scan is not cached.
            CacheError: If the stacker's slice settings differ from the cache's.
            IndexError: For a volume number out of range.
        """
        stk = self._stacker(stacker)
        array = self.slices(key)
        idx = stk.volume_indices(array.shape[0])
        if volumes is not None:
            wanted = list(volumes)
            for v in wanted:
                if not -len(idx) <= v < len(idx):
                    raise IndexError(f"volume {v} out of range: {key} has {len(idx)} volumes")
            idx = idx[np.asarray(wanted, dtype=np.int64)] if wanted else idx[:0]
        if len(idx) == 0:
            shape = (0, stk.channels, stk.depth, *array.shape[1:3])
            return np.zeros(shape, dtype=np.dtype(stk.dtype))
        # Indexing the memory map with the slice numbers reads the volumes in one copy.
        return stk.stack_prepared(array, idx, compact=compact)

    def to_index(self) -> ScanIndex:
        """The cached scans as a :class:`~resnet3d.data.ScanIndex` (paths are the sources).

        Lets a model train from the cache alone, without the source data on disk.
        """
        from .data import ScanIndex, ScanRecord

        rows = [
            ScanRecord(
                e["label"],
                e["label_index"],
                e["patient_id"],
                e["scan_id"],
                e["n_slices"],
                Path(e["source"]),
            )
            for e in self.entries.values()
        ]
        return ScanIndex(rows, self.classes)
