"""A volume cache: every scan decoded once into memory-mappable uint8 slices.

Decoding PNG slices is the bottleneck of training on CT slices. ``build_cache`` (CLI:
``resnet3d build-volumes ROOT OUT``) decodes every scan of an index once, prepares its slices
(resize, window, channels) exactly as a :class:`~resnet3d.data.volumes.SliceStacker` does, and
stores them as one uint8 ``.npy`` file per scan; :class:`VolumeCache` memory-maps them and
builds volumes without decoding anything.

Layout of ``OUT``::

    manifest.json                     format, version, the stacker spec, every scan's entry
    slices/<label>/<patient>/<scan>.npy   uint8, (S, H, W) gray or (S, H, W, C)
    journal.jsonl                     only while a build runs: the scans it has finished

The files hold slices, not volumes, so one cache serves every ``depth``, ``stride`` and
``remainder`` (the paper's depth sweep): only the slice settings (``size``, ``channels``,
``window``, ``resample``) must match. Gray scans are stored once and repeated to 3 channels
when volumes are built, which keeps the cache at one byte per pixel.

Every scan's entry records a fingerprint of its sources (the names, sizes and modification
times of its slice files: ``stat`` only, nothing is read) and the size and sha256 of its
``.npy`` file. A rerun of the build rebuilds exactly the scans whose sources changed or whose
file is missing or no longer matches its checksum, and reuses the rest.
:meth:`VolumeCache.verify` (CLI: ``build-volumes --verify OUT``) re-hashes every file.

Every file is written to a temporary name, synced, and renamed into place, so a file either
exists complete or not at all; each finished scan is appended to ``journal.jsonl``. An
interrupted build (crash, Ctrl-C, kill) rerun with the same arguments keeps the scans the
journal lists (after checking their checksums), removes stale temporary files and ends with a
folder byte-identical to an uninterrupted build; ``manifest.json`` is marked complete last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .._utils import atomic_open, atomic_write_text, sha256_file
from ..errors import CacheError, DatasetLayoutError, DatasetNotFoundError, Resnet3DError
from .files import is_junk_name, is_nifti_name
from .index import ScanIndex, ScanRecord
from .volumes import SliceStacker

__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "CacheBuildResult",
    "CacheVerifyResult",
    "VolumeCache",
    "build_cache",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "resnet3d-volume-cache"
#: 2: every scan entry records ``sources`` (fingerprint), ``bytes`` and ``sha256``.
CACHE_VERSION = 2
MANIFEST = "manifest.json"
SLICES_DIR = "slices"
JOURNAL = "journal.jsonl"
# Marks temporary files: a prefix of _utils.TMP_MARK (".tmp-") and of the older ".tmp<pid>".
_TMP_MARK = ".tmp"
_REBUILD_HINT = "rebuild it with 'resnet3d build-volumes ROOT OUT --overwrite' (overwrite=True)"
# Fields a version-2 scan entry must have, with their types.
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "key": str,
    "file": str,
    "n_slices": int,
    "shape": list,
    "bytes": int,
    "sha256": str,
    "sources": dict,
    "source": str,
    "source_path": str,
}


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
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _save_npy_atomic(path: Path, array: np.ndarray) -> str:
    """Write ``array`` to ``path`` atomically; return the sha256 of the file's bytes."""
    data = np.ascontiguousarray(array)
    with atomic_open(path, "w+b") as fh:
        np.lib.format.write_array(fh, data, allow_pickle=False)
        fh.flush()
        # The file is the header then the array's bytes: hash the header read back and
        # the array from memory (no second read of the data, no copy).
        fh.seek(0)
        digest = hashlib.sha256(fh.read(os.fstat(fh.fileno()).st_size - data.nbytes))
        fh.seek(0, os.SEEK_END)
    digest.update(data.data)  # C-contiguous: hashed in place
    return digest.hexdigest()


def _is_source_name(name: str) -> bool:
    """The files a scan is read from, by name (the reader's own rules; no file is opened)."""
    if not is_junk_name(name):
        return True
    return is_nifti_name(name) and not name.startswith(".")


def source_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A fingerprint of a scan's source files from ``stat`` alone (nothing is read).

    It covers the sorted names, sizes and ``st_mtime_ns`` of the files the reader would
    consider (a folder's slice candidates, or the NIfTI file itself). Copying a data set
    without keeping modification times (``cp -r``, ``rsync`` without ``-t``) changes it.

    Args:
        path: A scan folder or NIfTI file.

    Returns:
        ``{"files", "bytes", "newest_mtime_ns", "digest"}``, or ``None`` if ``path`` cannot
        be listed (missing, unreadable).
    """
    root = Path(path)
    try:
        if root.is_file():
            stats = [(root.name, root.stat())]
        else:
            with os.scandir(root) as entries:
                stats = [
                    (e.name, e.stat()) for e in entries if _is_source_name(e.name) and e.is_file()
                ]
    except OSError:
        return None
    listing = sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats)
    return {
        "files": len(listing),
        "bytes": sum(size for _, size, _ in listing),
        "newest_mtime_ns": max((mtime for _, _, mtime in listing), default=0),
        "digest": hashlib.sha256(json.dumps(listing).encode("utf-8")).hexdigest(),
    }


def _fingerprint_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """``None`` if two fingerprints match, else what changed, in a few words."""
    if old.get("digest") == new["digest"]:
        return None
    parts = [
        f"{what} {old.get(field)} -> {new[field]}"
        for field, what in (("files", "files"), ("bytes", "bytes"))
        if old.get(field) != new[field]
    ]
    if not parts:
        parts = ["file names or modification times differ"]
    return "sources changed since the cache was built (" + ", ".join(parts) + ")"


def _file_problem(root: Path, entry: Mapping[str, Any], *, rehash: bool) -> str | None:
    """What is wrong with a scan's cached file (``None``: nothing found).

    The size is checked with ``stat``; ``rehash`` also reads the file and compares its sha256.
    """
    path = root / entry["file"]
    what = f"cached file {entry['file']}"
    try:
        size = path.stat().st_size
        if size != entry["bytes"]:
            return f"{what} has {size} bytes, the manifest says {entry['bytes']}"
        if rehash and sha256_file(path) != entry["sha256"]:
            return f"{what} is damaged (its sha256 differs from the manifest's)"
    except FileNotFoundError:
        return f"{what} is missing"
    except OSError as error:
        return f"{what} cannot be read ({error})"
    return None


def _valid_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(name), kind) for name, kind in _ENTRY_FIELDS.items()
    )


def _inspect_manifest(root: Path) -> tuple[str, dict[str, Any] | None, str]:
    """``(state, document, why)``; state is ``absent``, ``damaged``, ``foreign``, ``old``, ``ok``.

    ``damaged``: not a readable JSON object (garbage, truncated, a folder); ``foreign``: a JSON
    object that is not a resnet3d cache manifest; ``old``: another format version.
    """
    path = root / MANIFEST
    if not os.path.lexists(path):
        return "absent", None, ""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return "damaged", None, f"unreadable ({error})"
    if not isinstance(doc, dict):
        return "damaged", None, f"holds a JSON {type(doc).__name__}, not an object"
    if doc.get("format") != CACHE_FORMAT:
        return "foreign", doc, "not a resnet3d volume cache manifest"
    if doc.get("version") != CACHE_VERSION:
        return (
            "old",
            doc,
            f"cache format version {doc.get('version')!r}; this resnet3d reads version "
            f"{CACHE_VERSION} (with source fingerprints and checksums)",
        )
    if not isinstance(doc.get("scans", []), list) or not all(
        _valid_entry(e) for e in doc.get("scans", [])
    ):
        return "damaged", None, "has a malformed scan entry"
    return "ok", doc, ""


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a usable cache, ``None`` if there is none.

    Raises:
        CacheError: If it is damaged, not a cache manifest, or of another version.
    """
    state, doc, why = _inspect_manifest(root)
    if state == "absent":
        return None
    path = root / MANIFEST
    if state == "foreign":
        raise CacheError(f"{path}: {why}", path=path)
    if state != "ok":
        raise CacheError(f"{path}: {why}; {_REBUILD_HINT}", path=path)
    return doc


def _slice_differences(manifest: Mapping[str, Any], stacker: SliceStacker) -> list[str]:
    """``field: cached -> requested`` for every slice setting that differs."""
    try:
        cached = SliceStacker.from_dict(manifest.get("stacker") or {}).slice_spec()
    except (TypeError, ValueError) as error:
        return [f"unreadable settings: {error}"]
    wanted = stacker.slice_spec()
    return [f"{k}: {cached[k]!r} -> {wanted[k]!r}" for k in wanted if cached[k] != wanted[k]]


def _is_owned(name: str) -> bool:
    """Whether a top-level name belongs to the cache layout (what ``overwrite`` may remove)."""
    # Temporary files: ".manifest.json.tmp-<pid>" (atomic_open) and, from older versions,
    # "manifest.json.tmp<pid>"; _TMP_MARK (".tmp") is a prefix of both marks.
    temporary = tuple(
        f"{dot}{name}{_TMP_MARK}" for name in (MANIFEST, JOURNAL) for dot in ("", ".")
    )
    return name in (MANIFEST, SLICES_DIR, JOURNAL) or name.startswith(temporary)


def _foreign_entries(root: Path) -> list[str]:
    """Top-level entries that no cache writes (a non-directory ``slices`` included)."""
    foreign = []
    for entry in os.scandir(root):
        if not _is_owned(entry.name) or (entry.name == SLICES_DIR and not entry.is_dir()):
            foreign.append(entry.name)
        elif entry.name == MANIFEST and entry.is_dir() and any(os.scandir(entry.path)):
            foreign.append(f"{MANIFEST}/ (a non-empty folder)")
    return sorted(foreign)


def _remove_cache_files(root: Path) -> None:
    """Delete what the cache layout owns, and nothing else.

    Top level: ``manifest.json`` (an empty folder of that name too), the journal and
    temporary files. Under ``slices/``: ``.npy`` files, their temporary files and the folders
    that are empty afterwards; anything else there is kept (and logged).
    """
    for entry in os.scandir(root):
        if not _is_owned(entry.name) or entry.name == SLICES_DIR:
            continue
        if entry.is_dir(follow_symlinks=False):
            os.rmdir(entry.path)  # only an empty one: _foreign_entries refused the others
        else:
            os.unlink(entry.path)
    slices = root / SLICES_DIR
    kept = 0
    if slices.is_dir() and not slices.is_symlink():
        for folder, dirs, files in os.walk(slices, topdown=False):
            for name in files:
                if name.endswith(".npy") or f".npy{_TMP_MARK}" in name:
                    os.unlink(os.path.join(folder, name))
                else:
                    kept += 1
            for name in dirs:
                sub = os.path.join(folder, name)
                if not os.path.islink(sub) and not any(os.scandir(sub)):
                    os.rmdir(sub)
                elif os.path.islink(sub):
                    kept += 1
        if not any(os.scandir(slices)):
            slices.rmdir()
    if kept:
        logger.warning("%s: kept %d file(s) the cache does not own", slices, kept)


def _read_journal(root: Path) -> dict[str, dict[str, Any]]:
    """Entries of scans an unfinished build finished (a torn last line is ignored)."""
    try:
        lines = (root / JOURNAL).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if _valid_entry(entry):
            entries[entry["key"]] = entry
    return entries


def _append_journal(root: Path, entry: Mapping[str, Any]) -> None:
    # Written after the scan's file is renamed into place: a scan in the journal has its file.
    with open(root / JOURNAL, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def _open_for_build(root: Path, spec_stacker: SliceStacker, overwrite: bool) -> dict[str, Any]:
    """Check ``root`` can hold this build; return the scan entries earlier runs left.

    Raises:
        CacheError: As :func:`build_cache` documents.
    """
    if root.exists() and not root.is_dir():
        raise CacheError(f"{root}: exists and is not a folder", path=root)
    if not root.exists():
        return {}
    state, manifest, why = _inspect_manifest(root)
    path = root / MANIFEST
    if state == "foreign":
        raise CacheError(
            f"{path}: {why}; the folder is not a volume cache: choose an empty or new folder",
            path=root,
        )
    if state in ("absent", "damaged"):
        foreign = _foreign_entries(root)
        if foreign:
            raise CacheError(
                f"{root}: folder exists and is not a volume cache (holds {foreign[:5]}); "
                "choose an empty or new folder",
                path=root,
            )
    if state == "absent":
        return {}
    if state == "ok" and manifest is not None:
        differences = _slice_differences(manifest, spec_stacker)
        if not differences:
            known = {e["key"]: e for e in manifest.get("scans", [])}
            known.update(_read_journal(root))
            return known
        why = (
            "holds a cache whose slices were prepared with other settings ("
            + ", ".join(differences)
            + ")"
        )
    if not overwrite:
        where = path if state != "ok" else root
        raise CacheError(
            f"{where}: {why}; use another folder or overwrite=True (CLI: --overwrite)",
            path=root,
        )
    logger.info("%s: removing the cache's files (%s)", root, why)
    _remove_cache_files(root)
    return {}


def _rebuild_reason(
    root: Path,
    old: Mapping[str, Any] | None,
    rel: str,
    n_slices: int,
    sources: Mapping[str, Any] | None,
) -> tuple[str, str] | None:
    """``None`` if a scan's cached file can be kept, else ``(reason, details)``.

    Reasons: ``new``, ``sources changed``, ``file missing``, ``file damaged``. A kept file has
    been re-hashed: damaged bytes never survive a rebuild.
    """
    if old is None or old["file"] != rel:
        return "new", "not in the cache"
    if sources is None:
        return "sources changed", "sources cannot be listed"
    change = _fingerprint_change(old["sources"], sources)
    if change is None and old["n_slices"] != n_slices:
        change = f"slice count {old['n_slices']} -> {n_slices}"
    if change is not None:
        return "sources changed", change
    problem = _file_problem(root, old, rehash=True)
    if problem is not None:
        return ("file missing" if problem.endswith("is missing") else "file damaged"), problem
    return None


@dataclass(frozen=True)
class CacheBuildResult:
    """What :func:`build_cache` did.

    Attributes:
        root: The cache folder.
        written: Scans decoded and written by this run (new and rebuilt).
        reused: Scans kept from an earlier run (sources unchanged, checksum verified).
        skipped: ``(key, error message)`` of scans skipped in lenient mode.
        n_slices: Slices stored in the cache.
        n_bytes: Size of the stored slice files.
        rebuilt: ``(key, reason)`` of scans that were cached but written again; reason is
            ``"sources changed"``, ``"file missing"`` or ``"file damaged"`` (details are
            logged). They are counted in ``written`` too.
    """

    root: Path
    written: int
    reused: int
    skipped: tuple[tuple[str, str], ...]
    n_slices: int
    n_bytes: int
    rebuilt: tuple[tuple[str, str], ...] = ()


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
    """Decode every scan of an index once into a uint8 slice cache (resumable, incremental).

    A rerun keeps each cached scan whose source fingerprint (slice names, sizes, modification
    times) is unchanged and whose file still has its recorded sha256, and rebuilds the others.

    Args:
        index: The scans (e.g. :meth:`resnet3d.data.index.ScanIndex.from_ccii`).
        out: The cache folder; created if needed. An existing cache with the same settings is
            resumed or updated; with other settings, an older format or a damaged manifest it
            is an error unless ``overwrite``.
        stacker: Slice settings (``size``, ``channels``, ``window``, ``resample``; the volume
            fields are stored as the cache's default). Default: ``SliceStacker()``.
        lenient: Skip scans that cannot be decoded and list them in the manifest instead of
            stopping. A strict build stops at the first bad scan; rerunning resumes.
        overwrite: Remove an existing cache in ``out`` built with other settings, in an older
            format or with a damaged manifest. Only the files the cache layout owns are
            removed (``manifest.json``, the journal, ``slices/**/*.npy``); a folder holding
            anything else is refused.
        progress: Show a tqdm progress bar (on stderr).
        on_scan: Called as ``on_scan(key, status)`` after each scan, status ``"written"``
            (new), ``"rebuilt"``, ``"reused"`` or ``"skipped"``.

    Returns:
        Counts of what was done.

    Raises:
        CacheError: If ``out`` holds a cache with other settings, an older format or a
            damaged manifest (and not ``overwrite``), or something that is not a cache.
        DatasetLayoutError: If a scan no longer has the slice count the index says.
        CorruptSliceError, InconsistentScanError: For a bad scan in strict mode.
    """
    from tqdm.auto import tqdm

    base = stacker if stacker is not None else SliceStacker()
    spec_stacker = base.replace(dtype="uint8")
    spec = spec_stacker.to_dict()
    root = Path(out)
    known = _open_for_build(root, spec_stacker, overwrite)
    root.mkdir(parents=True, exist_ok=True)
    # The earlier runs' entries move into the unfinished manifest; the journal starts over.
    _write_json_atomic(
        root / MANIFEST,
        {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "complete": False,
            "stacker": spec,
            "scans": list(known.values()),
        },
    )
    (root / JOURNAL).unlink(missing_ok=True)
    slices_root = root / SLICES_DIR
    if slices_root.exists():  # leftovers of a killed run: never renamed, never valid
        for stale in slices_root.rglob(f"*.npy{_TMP_MARK}*"):
            stale.unlink(missing_ok=True)

    entries: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    rebuilt: list[tuple[str, str]] = []
    written = reused = 0
    n_slices = n_bytes = 0
    bar = tqdm(total=len(index), unit="scan", desc="build-volumes", disable=not progress)
    try:
        for row in index:
            rel = cache_file(row.key)
            old = known.get(row.key)
            # Taken before decoding: a change made while the scan is read shows next time.
            sources = source_fingerprint(row.path)
            reason = _rebuild_reason(root, old, rel, row.n_slices, sources)
            if reason is None and old is not None:
                status = "reused"
                reused += 1
                shape, size, digest = old["shape"], old["bytes"], old["sha256"]
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
                digest = _save_npy_atomic(root / rel, prepared)
                shape, size = list(prepared.shape), (root / rel).stat().st_size
                written += 1
                status = "written"
                if reason is not None and reason[0] != "new":
                    logger.info("%s: rebuilt: %s", row.key, reason[1])
                    rebuilt.append((row.key, reason[0]))
                    status = "rebuilt"
            entry = {
                "key": row.key,
                "label": row.label,
                "label_index": row.label_index,
                "patient_id": row.patient_id,
                "scan_id": row.scan_id,
                "n_slices": row.n_slices,
                "shape": shape,
                "file": rel,
                "bytes": size,
                "sha256": digest,
                "source": os.fspath(row.path),
                "source_path": os.path.abspath(row.path),
                "sources": sources if sources is not None else {},
            }
            if status != "reused":
                _append_journal(root, entry)
            entries.append(entry)
            n_slices += row.n_slices
            n_bytes += size
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
    (root / JOURNAL).unlink(missing_ok=True)
    return CacheBuildResult(
        root, written, reused, tuple(skipped), n_slices, n_bytes, tuple(rebuilt)
    )


@dataclass(frozen=True)
class CacheVerifyResult:
    """What :meth:`VolumeCache.verify` found.

    Attributes:
        root: The cache folder.
        n_scans: Scans checked.
        n_bytes: Bytes re-hashed.
        problems: ``(key, what is wrong)`` for every damaged or stale scan.
        unreachable: Keys of scans whose sources could not be listed (not compared).
        seconds: Time taken.
    """

    root: Path
    n_scans: int
    n_bytes: int
    problems: tuple[tuple[str, str], ...]
    unreachable: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether no scan is damaged or stale."""
        return not self.problems


class VolumeCache:
    """Read a cache written by :func:`build_cache`; slices are memory-mapped, not decoded.

    The first time a scan is opened its file size is compared with the manifest and, when
    its sources can be listed, their fingerprint too (``stat`` only): a scan whose sources
    changed since the build is refused, not served. Full checksums are compared only with
    ``verify=True`` or :meth:`verify` (the cost is measured in ``benchmarks/bench_volumes.py``).

    Args:
        root: The cache folder.
        check_sources: Compare each scan's source fingerprint when it is first opened, if its
            sources are reachable (unreachable sources, e.g. a cache copied without its data,
            are not an error).
        verify: Also re-hash each scan's file when it is first opened (reads the whole file
            once per scan and process).

    Raises:
        DatasetNotFoundError: If ``root`` has no ``manifest.json``.
        CacheError: If the build did not finish (rerun it to resume), the manifest is damaged
            or from another format version.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, check_sources: bool = True, verify: bool = False
    ) -> None:
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
        self.check_sources = check_sources
        self.verify_reads = verify
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
            CacheError: If its file is missing or has another size (or checksum, with
                ``verify=True``), or its sources changed since the build.
        """
        array = self._arrays.get(key)
        if array is not None:
            return array
        entry = self.entries.get(key)
        if entry is None:
            why = f" (skipped at build: {self.skipped[key]})" if key in self.skipped else ""
            raise KeyError(f"scan {key!r} is not in the cache {os.fspath(self.root)}{why}")
        path = self.root / entry["file"]
        problem = _file_problem(self.root, entry, rehash=self.verify_reads)
        if problem is None and self.check_sources:
            problem = self._source_problem(entry)[0]
        if problem is not None:
            raise CacheError(
                f"{self.root}: scan {key}: {problem}; rerun 'resnet3d build-volumes' to rebuild it",
                path=path,
            )
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

    @staticmethod
    def _source_problem(entry: Mapping[str, Any]) -> tuple[str | None, bool]:
        """``(what changed or None, whether the sources could be listed)`` (``stat`` only)."""
        now = source_fingerprint(entry["source_path"])
        if now is None:
            return None, False
        return _fingerprint_change(entry["sources"], now), True

    def verify(
        self, *, sources: bool = True, on_scan: Callable[[str, str | None], None] | None = None
    ) -> CacheVerifyResult:
        """Re-hash every cached file and compare every scan's source fingerprint.

        Needs only the cache: the sources are found at the absolute paths the manifest
        records; scans whose sources cannot be listed are reported as unreachable, not as
        damaged.

        Args:
            sources: Also compare source fingerprints.
            on_scan: Called as ``on_scan(key, problem)`` after each scan (``None``: fine).

        Returns:
            What was found; nothing is changed.
        """
        start = time.perf_counter()
        problems: list[tuple[str, str]] = []
        unreachable: list[str] = []
        n_bytes = 0
        for key, entry in self.entries.items():
            problem = _file_problem(self.root, entry, rehash=True)
            if problem is None:
                n_bytes += entry["bytes"]
            if sources:
                change, reachable = self._source_problem(entry)
                if not reachable:
                    unreachable.append(key)
                problem = problem or change
            if problem is not None:
                problems.append((key, problem))
            if on_scan is not None:
                on_scan(key, problem)
        seconds = time.perf_counter() - start
        return CacheVerifyResult(
            self.root, len(self.entries), n_bytes, tuple(problems), tuple(unreachable), seconds
        )

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
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Volumes of one scan from the cached slices.

        Args:
            key: A scan key.
            volumes: Volume numbers (default all), as ``stacker.volume_indices`` counts.
            stacker: Depth, stride, remainder and output dtype to use; its slice settings must
                match the cache's. Default: the build's settings with float32 output.
            compact: Return uint8 volumes with gray scans as one channel, the cache's own
                form (see :meth:`~resnet3d.data.volumes.SliceStacker.stack_prepared`).
            rows: Slice numbers of each volume, one row of ``depth`` per volume, instead of
                ``stacker.volume_indices`` (e.g. random clips: the cache holds every slice,
                so any clip can be built from it); ``volumes`` then numbers these rows.

        Returns:
            The volumes, equal to ``stacker.load(scan)`` for 8-bit sources (deeper sources
            were rounded to 256 levels when cached).

        Shape:
            ``(N, C, D, H, W)``; with ``compact``, ``(N, 1, D, H, W)`` for gray scans.

        Raises:
            KeyError: If the scan is not cached.
            CacheError: If the stacker's slice settings differ from the cache's.
            IndexError: For a volume number, or a slice number in ``rows``, out of range.
            ValueError: If ``rows`` is not ``(volumes, depth)``.
        """
        stk = self._stacker(stacker)
        array = self.slices(key)
        if rows is None:
            idx = stk.volume_indices(array.shape[0])
        else:
            idx = np.asarray(rows, dtype=np.int64)
            if idx.ndim != 2 or idx.shape[1] != stk.depth:
                raise ValueError(
                    f"rows must be (volumes, {stk.depth}) slice numbers, got shape {idx.shape}"
                )
            if len(idx) and (idx.max() >= array.shape[0] or idx.min() < -1):
                raise IndexError(
                    f"slice numbers {int(idx.min())}..{int(idx.max())} out of range: {key} has "
                    f"{array.shape[0]} cached slices"
                )
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
        """The cached scans as a :class:`~resnet3d.data.index.ScanIndex` (paths are the sources).

        Lets a model train from the cache alone, without the source data on disk.
        """
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
