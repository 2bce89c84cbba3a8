"""Data sets over CT scans: the CC-CCII index, patient-level splits and a volume data set.

* :class:`ScanIndex` lists scans (one :class:`ScanRecord` each: class, patient, scan, slice
  count, path) from the CC-CCII layout (:meth:`ScanIndex.from_ccii`), a plain
  ``class/scan`` tree (:meth:`ScanIndex.from_tree`) or a CSV (:meth:`ScanIndex.from_csv`),
  together with a :class:`ConsistencyReport`. A video file is a scan whose slices are its
  frames: a ``class/<video file>`` tree (UCF101, HMDB51) or a ``path,label[,group]`` CSV
  (Kinetics-style lists) indexes videos, with the video's group (:func:`video_group`, UCF101's
  ``gNN``) as its patient id.
* :func:`split_by_patient` splits an index into train/valid/test with no patient in two
  splits, stratified by class, identical for a seed on any machine, saved as JSON.
* :class:`VolumeDataset` serves every volume of every scan as one sample, as the paper does:
  ``(volume C x D x H x W, label, scan id, patient id)``, decoding on the fly or reading a
  :class:`resnet3d.data.cache.VolumeCache`.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .._utils import atomic_write_text, check_choice, did_you_mean
from ..errors import DatasetLayoutError, DatasetNotFoundError, Resnet3DError
from .readers import VIDEO_SUFFIXES, ScanFiles, is_junk_name, is_video_name, natural_key, scan_files
from .volumes import SliceStacker, convert_dtype, default_threads

if TYPE_CHECKING:
    from .cache import VolumeCache
    from .video import ClipSampler

__all__ = [
    "CCII_CLASSES",
    "CCII_CSV_COLUMNS",
    "CLIP_SAMPLING",
    "SPLIT_NAMES",
    "ConsistencyReport",
    "Issue",
    "ScanIndex",
    "ScanRecord",
    "Split",
    "VolumeDataset",
    "split_by_patient",
    "ucf101_split",
    "video_group",
]

logger = logging.getLogger(__name__)

#: How :class:`VolumeDataset` picks each sample's slices: fixed volumes or random starts.
CLIP_SAMPLING = ("uniform", "random")

#: CC-CCII class folders in label order: index 0 is COVID-19 (NCP), 1 common pneumonia (CP),
#: 2 normal controls.
CCII_CLASSES: tuple[str, ...] = ("NCP", "CP", "Normal")
#: Columns of CC-CCII's ``unzip_filenames.csv``; ``label`` is the class folder name.
CCII_CSV_COLUMNS: tuple[str, ...] = ("zip_file", "label", "patient_id", "scan_id", "n_slice")
#: Split names, in the order :func:`split_by_patient` fills them.
SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")

_INDEX_CSV_COLUMNS = ("label", "label_index", "patient_id", "scan_id", "n_slices", "path")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: UCF101's file names: ``v_<Action>_g<group>_c<clip>`` (HMDB51 and others do not have it).
_UCF_NAME = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$", re.IGNORECASE)


def video_group(path: str | os.PathLike[str], label: str) -> str:
    """The group of a video file: the patient id that keeps related clips in one split.

    UCF101 names its videos ``v_<Action>_g<NN>_c<MM>``; the clips of a group are cut from one
    longer recording (same actor, background, viewpoint), so they must never be on both sides
    of a split. Groups are numbered per class, so the group is ``<label>_g<NN>``. Any other
    name is its own group: the file name without its extension.

    Args:
        path: The video file (only its name is used).
        label: The video's class.

    Returns:
        ``"<label>_gNN"`` for a UCF101-style name, else the file stem.
    """
    stem = _scan_stem(os.path.basename(os.fspath(path)))
    match = _UCF_NAME.match(stem)
    if match is None:
        return stem
    return f"{label}_g{int(match['group']):02d}"


# ----------------------------------------------------------------------------------------
# records and reports


@dataclass(frozen=True)
class ScanRecord:
    """One scan of an index.

    Attributes:
        label: Class name (e.g. ``"NCP"``).
        label_index: Position of ``label`` in the index's classes.
        patient_id: Patient the scan belongs to (splits never separate a patient's scans).
        scan_id: Scan identifier, unique within the patient.
        n_slices: Slices in the scan.
        path: The scan folder, NIfTI file or video file.
    """

    label: str
    label_index: int
    patient_id: str
    scan_id: str
    n_slices: int
    path: Path

    @property
    def key(self) -> str:
        """``label/patient_id/scan_id``: unique within an index; names the scan's cache file."""
        return f"{self.label}/{self.patient_id}/{self.scan_id}"


#: Issue kinds a :class:`ConsistencyReport` can hold.
ISSUE_KINDS = (
    "missing_class",
    "unexpected_entry",
    "empty_scan",
    "bad_scan",
    "count_mismatch",
    "missing_in_csv",
    "missing_on_disk",
    "duplicate_slices",
    "patient_in_several_classes",
)


@dataclass(frozen=True)
class Issue:
    """One finding of a consistency check.

    Attributes:
        kind: One of :data:`ISSUE_KINDS`.
        severity: ``"error"`` (the scan is unusable: strict mode raises, lenient mode skips
            it) or ``"warning"`` (reported, the scan is kept).
        path: The file or folder concerned.
        message: What is wrong, in words.
    """

    kind: str
    severity: str
    path: str
    message: str


@dataclass(frozen=True)
class ConsistencyReport:
    """What an index build found wrong with a data set.

    Errors are scans that cannot be used (empty, unreadable, mixed): a strict build raises on
    them, a lenient one skips them and lists them here. Warnings never stop a build: slice
    counts that disagree with ``unzip_filenames.csv``, scans missing from one side, repeated
    byte-identical slices, a patient id under two classes, unexpected files.

    Attributes:
        issues: Every finding, in discovery order.
    """

    issues: tuple[Issue, ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        """Findings that made a scan unusable."""
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """Findings that did not stop the scan from being used."""
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.issues

    def by_kind(self) -> dict[str, list[Issue]]:
        """Issues grouped by kind."""
        groups: dict[str, list[Issue]] = defaultdict(list)
        for issue in self.issues:
            groups[issue.kind].append(issue)
        return dict(groups)

    def format(self, limit: int = 20) -> str:
        """A human-readable summary: counts per kind, then up to ``limit`` issues.

        Args:
            limit: Most issues listed in full.

        Returns:
            Text, one issue per line.
        """
        if self.ok:
            return "consistency: no issues"
        counts = Counter(i.kind for i in self.issues)
        lines = [
            f"consistency: {len(self.errors)} error(s), {len(self.warnings)} warning(s): "
            + ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items()))
        ]
        for issue in self.issues[:limit]:
            lines.append(f"  {issue.severity}: {issue.kind}: {issue.message}")
        if len(self.issues) > limit:
            lines.append(f"  ... and {len(self.issues) - limit} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"issues": [{kind, severity, path, message}, ...]}``."""
        return {"issues": [vars(i).copy() for i in self.issues]}


class _Collector:
    """Accumulates issues during an index build."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        self.issues.append(Issue(kind, "error", os.fspath(path), message))

    def warn(self, kind: str, path: str | os.PathLike[str], message: str) -> None:
        self.issues.append(Issue(kind, "warning", os.fspath(path), message))

    def report(self) -> ConsistencyReport:
        return ConsistencyReport(tuple(self.issues))

    def raise_if_errors(self, what: str) -> None:
        errors = [i for i in self.issues if i.severity == "error"]
        if not errors:
            return
        shown = "\n  ".join(i.message for i in errors[:5])
        more = f"\n  ... and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise DatasetLayoutError(
            f"{what}: {len(errors)} unusable scan(s):\n  {shown}{more}\n"
            "Fix them, or pass lenient=True (CLI: --lenient) to skip them and list them in "
            "the report.",
            path=errors[0].path,
        )


def _hint(name: str, options: Iterable[str]) -> str:
    """``did_you_mean``, trying a case-insensitive match first (``ncp`` -> ``NCP``)."""
    options = list(options)
    same = [o for o in options if o.casefold() == name.casefold() and o != name]
    if same:
        return " Did you mean " + " or ".join(repr(o) for o in same) + "?"
    return did_you_mean(name, options)


# ----------------------------------------------------------------------------------------
# scanning folders


@dataclass
class _ScanProbe:
    n_slices: int = 0
    error: Resnet3DError | None = None
    duplicates: list[list[str]] = field(default_factory=list)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _probe_scan(path: Path, check_duplicates: bool) -> _ScanProbe:
    """List and validate one scan (every slice's header) and look for repeated slices."""
    try:
        files = scan_files(path)
    except Resnet3DError as error:
        return _ScanProbe(error=error)
    probe = _ScanProbe(n_slices=files.n_slices)
    if check_duplicates and files.kind != "nifti" and len(files.slices) > 1:
        # Only files of equal size can be identical: hash just those (cheap on real data).
        by_size: dict[int, list[str]] = defaultdict(list)
        for slice_path in files.slices:
            by_size[os.path.getsize(slice_path)].append(os.fspath(slice_path))
        for group in by_size.values():
            if len(group) < 2:
                continue
            by_hash: dict[str, list[str]] = defaultdict(list)
            for name in group:
                by_hash[_file_digest(name)].append(name)
            probe.duplicates.extend(g for g in by_hash.values() if len(g) > 1)
    return probe


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (Path(e.path) for e in os.scandir(folder) if e.is_dir() and not is_junk_name(e.name)),
        key=lambda p: natural_key(p.name),
    )


def _check_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root)
    if not path.exists():
        raise DatasetNotFoundError(f"data set root {os.fspath(path)!r} does not exist", path=path)
    if not path.is_dir():
        raise DatasetLayoutError(
            f"data set root {os.fspath(path)!r} is a file, expected a folder", path=path
        )
    with os.scandir(path) as entries:
        empty = not any(not is_junk_name(e.name) for e in entries)
    if empty:
        raise DatasetLayoutError(f"data set root {os.fspath(path)!r} is empty", path=path)
    return path


def _is_nifti(name: str) -> bool:
    return name.casefold().endswith(_NIFTI_SUFFIXES)


def _nifti_stem(name: str) -> str:
    for suffix in _NIFTI_SUFFIXES:
        if name.casefold().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _scan_stem(name: str) -> str:
    """A scan file's id: its name without a NIfTI or video extension."""
    for suffix in VIDEO_SUFFIXES:
        if name.casefold().endswith(suffix):
            return name[: -len(suffix)]
    return _nifti_stem(name)


def _probe_all(
    paths: Sequence[Path], check_duplicates: bool, threads: int | None
) -> list[_ScanProbe]:
    workers = default_threads() if threads is None else max(1, threads)
    # Listing and reading headers is mostly file-system bound: threads overlap the waits.
    if workers <= 1 or len(paths) <= 1:
        return [_probe_scan(p, check_duplicates) for p in paths]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(lambda p: _probe_scan(p, check_duplicates), paths))


def _resolve_classes(
    root: Path, classes: Sequence[str], found: Sequence[str], issues: _Collector, lenient: bool
) -> list[str]:
    present = [c for c in classes if c in found]
    missing = [c for c in classes if c not in found]
    # Hint only with folders that are not classes themselves ('CP' missing: not 'NCP').
    spare = [f for f in found if f not in classes]
    for name in missing:
        message = (
            f"{root / name}: class folder {name!r} is missing; found {sorted(found)}."
            + _hint(name, spare)
        )
        if not present or not lenient:
            raise DatasetLayoutError(
                f"{root}: expected class folders {list(classes)}, found {sorted(found)}; "
                f"{name!r} is missing." + _hint(name, spare),
                path=root / name,
            )
        issues.error("missing_class", root / name, message)
    for name in found:
        if name not in classes:
            issues.warn(
                "unexpected_entry",
                root / name,
                f"{root / name}: folder is not one of the classes {list(classes)}; ignored",
            )
    return present


def _add_probe_issues(issues: _Collector, path: Path, probe: _ScanProbe) -> bool:
    """Record a probe's findings; return True when the scan is usable."""
    if probe.error is not None:
        issues.error("bad_scan", path, str(probe.error))
        return False
    if probe.n_slices == 0:
        issues.error("empty_scan", path, f"{path}: scan folder holds no slices")
        return False
    for group in probe.duplicates:
        names = [os.path.basename(p) for p in group]
        issues.warn(
            "duplicate_slices",
            path,
            f"{path}: {len(group)} byte-identical slices {names[:6]}"
            + (" ..." if len(names) > 6 else ""),
        )
    return True


# ----------------------------------------------------------------------------------------
# the index


class ScanIndex:
    """An ordered list of scans with their class, patient and slice count.

    Build one with :meth:`from_ccii`, :meth:`from_tree` or :meth:`from_csv`; iterate it,
    index it (``index[0]`` is a :class:`ScanRecord`), take subsets, save it with
    :meth:`to_csv`.

    Args:
        rows: The scans.
        classes: Class names in label order (``rows[i].label_index`` indexes it).
        report: What the build found wrong (empty when built by hand).
        root: The data set root it was built from, if any.

    Raises:
        DatasetLayoutError: If two rows share a key or a label does not match its index.
    """

    def __init__(
        self,
        rows: Iterable[ScanRecord],
        classes: Sequence[str],
        report: ConsistencyReport | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.rows: tuple[ScanRecord, ...] = tuple(rows)
        self.classes: tuple[str, ...] = tuple(classes)
        self.report = report if report is not None else ConsistencyReport()
        self.root = None if root is None else Path(root)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"class names must be unique, got {list(self.classes)}")
        seen: dict[str, ScanRecord] = {}
        for row in self.rows:
            if not (0 <= row.label_index < len(self.classes)) or (
                self.classes[row.label_index] != row.label
            ):
                raise DatasetLayoutError(
                    f"{row.path}: label {row.label!r} with label_index {row.label_index} does "
                    f"not match the classes {list(self.classes)}",
                    path=row.path,
                )
            if row.key in seen:
                raise DatasetLayoutError(
                    f"scan key {row.key!r} appears twice: {seen[row.key].path} and {row.path}",
                    path=row.path,
                )
            seen[row.key] = row

    # -- container protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ScanRecord]:
        return iter(self.rows)

    @overload
    def __getitem__(self, item: int) -> ScanRecord: ...

    @overload
    def __getitem__(self, item: slice) -> ScanIndex: ...

    def __getitem__(self, item: int | slice) -> ScanRecord | ScanIndex:
        if isinstance(item, slice):
            return self.subset(self.rows[item])
        return self.rows[item]

    def __repr__(self) -> str:
        return (
            f"ScanIndex({len(self.rows)} scans, {len(self.patients())} patients, "
            f"classes={list(self.classes)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScanIndex):
            return NotImplemented
        return self.rows == other.rows and self.classes == other.classes

    __hash__ = None  # type: ignore[assignment]

    # -- views ----------------------------------------------------------------------------

    def subset(self, rows: Iterable[ScanRecord] | Callable[[ScanRecord], bool]) -> ScanIndex:
        """A new index with some rows (same classes, root and report).

        Args:
            rows: The rows to keep, or a predicate on a row.

        Returns:
            The subset, in this index's order for a predicate.
        """
        kept = [r for r in self.rows if rows(r)] if callable(rows) else list(rows)
        return ScanIndex(kept, self.classes, self.report, self.root)

    def patients(self) -> dict[str, list[ScanRecord]]:
        """Scans per patient id, in index order."""
        groups: dict[str, list[ScanRecord]] = defaultdict(list)
        for row in self.rows:
            groups[row.patient_id].append(row)
        return dict(groups)

    @property
    def labels(self) -> list[int]:
        """Label index of every row."""
        return [r.label_index for r in self.rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Patients, scans and slices per class (the paper's data table).

        Returns:
            ``{class: {"patients": p, "scans": s, "slices": n}}`` for every class.
        """
        out = {c: {"patients": 0, "scans": 0, "slices": 0} for c in self.classes}
        patients: dict[str, set[str]] = defaultdict(set)
        for row in self.rows:
            out[row.label]["scans"] += 1
            out[row.label]["slices"] += row.n_slices
            patients[row.label].add(row.patient_id)
        for label, ids in patients.items():
            out[label]["patients"] = len(ids)
        return out

    def summary(self) -> str:
        """A text table of :meth:`counts` with a total row."""
        counts = self.counts()
        rows = [("class", "patients", "scans", "slices")]
        for label in self.classes:
            c = counts[label]
            rows.append((label, str(c["patients"]), str(c["scans"]), str(c["slices"])))
        rows.append(
            (
                "total",
                str(len(self.patients())),
                str(len(self.rows)),
                str(sum(r.n_slices for r in self.rows)),
            )
        )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))
            )
            for r in rows
        )

    # -- builders -------------------------------------------------------------------------

    @classmethod
    def from_ccii(
        cls,
        root: str | os.PathLike[str],
        classes: Sequence[str] = CCII_CLASSES,
        csv_file: str | os.PathLike[str] | bool = True,
        lenient: bool = False,
        check_duplicates: bool = True,
        threads: int | None = None,
    ) -> ScanIndex:
        """Index a data set in the CC-CCII layout ``ROOT/<class>/<patient>/<scan>/<slices>``.

        Every scan folder is listed (slices recognised by content, see
        :func:`resnet3d.data.volumes.list_slices`) and counted. When ``ROOT/unzip_filenames.csv``
        exists (columns ``zip_file,label,patient_id,scan_id,n_slice``), each scan's slice
        count is checked against it.

        Args:
            root: The data set root.
            classes: Class folder names in label order.
            csv_file: ``True`` to use ``ROOT/unzip_filenames.csv`` when present, ``False`` to
                ignore it, or the path of the CSV.
            lenient: Skip unusable scans (and missing class folders) and list them in
                :attr:`report` instead of raising.
            check_duplicates: Look for byte-identical slices within each scan (only files of
                equal size are hashed).
            threads: Threads listing scans in parallel (default: CPUs, at most 16).

        Returns:
            The index, rows in class, patient, scan order (natural order of ids).

        Raises:
            DatasetNotFoundError: If the root (or a given CSV) does not exist.
            DatasetLayoutError: If the root is empty or has none of the class folders, the
                CSV has the wrong columns, or (strict mode) a class folder is missing or a
                scan is unusable; the message names the paths.
        """
        root_path = _check_root(root)
        issues = _Collector()
        found = [p.name for p in _subdirs(root_path)]
        present = _resolve_classes(root_path, classes, found, issues, lenient)
        expected = _read_ccii_csv(root_path, csv_file)

        candidates: list[tuple[str, str, str, Path]] = []
        for label in present:
            class_dir = root_path / label
            for entry in sorted(os.scandir(class_dir), key=lambda e: natural_key(e.name)):
                if is_junk_name(entry.name):
                    continue
                if not entry.is_dir():
                    issues.warn(
                        "unexpected_entry",
                        entry.path,
                        f"{entry.path}: a file where patient folders are expected "
                        "(ROOT/<class>/<patient>/<scan>/<slices>); ignored",
                    )
                    continue
                patient_dir = Path(entry.path)
                scans = _subdirs(patient_dir)
                loose = [
                    e.name
                    for e in os.scandir(patient_dir)
                    if e.is_file() and not is_junk_name(e.name)
                ]
                if loose and not scans:
                    issues.error(
                        "bad_scan",
                        patient_dir,
                        f"{patient_dir}: holds {len(loose)} files but no scan folders; the "
                        "CC-CCII layout is ROOT/<class>/<patient>/<scan>/<slices> (for "
                        "ROOT/<class>/<scan>/<slices> use ScanIndex.from_tree)",
                    )
                    continue
                if not scans:
                    issues.error(
                        "empty_scan", patient_dir, f"{patient_dir}: patient folder is empty"
                    )
                    continue
                for scan_dir in scans:
                    candidates.append((label, entry.name, scan_dir.name, scan_dir))

        probes = _probe_all([c[3] for c in candidates], check_duplicates, threads)
        rows: list[ScanRecord] = []
        on_disk: set[tuple[str, str, str]] = set()
        for (label, patient, scan, path), probe in zip(candidates, probes):
            on_disk.add((label, patient, scan))
            if not _add_probe_issues(issues, path, probe):
                continue
            if expected is not None:
                want = expected.get((label, patient, scan))
                if want is None:
                    issues.warn(
                        "missing_in_csv",
                        path,
                        f"{path}: scan is on disk but not in unzip_filenames.csv",
                    )
                elif want != probe.n_slices:
                    issues.warn(
                        "count_mismatch",
                        path,
                        f"{path}: {probe.n_slices} slices on disk, unzip_filenames.csv says {want}",
                    )
            rows.append(
                ScanRecord(label, classes.index(label), patient, scan, probe.n_slices, path)
            )
        if expected is not None:
            for key in expected:
                if key not in on_disk and key[0] in present:
                    path = root_path.joinpath(*key)
                    issues.warn(
                        "missing_on_disk",
                        path,
                        f"{path}: listed in unzip_filenames.csv ({expected[key]} slices) but "
                        "not on disk",
                    )
        _check_patients(rows, issues)
        if not lenient:
            issues.raise_if_errors(os.fspath(root_path))
        index = cls(rows, classes, issues.report(), root_path)
        logger.debug("indexed %s: %d scans, %d issues", root_path, len(rows), len(issues.issues))
        return index

    @classmethod
    def from_tree(
        cls,
        root: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        lenient: bool = False,
        check_duplicates: bool = True,
        threads: int | None = None,
    ) -> ScanIndex:
        """Index a plain ``ROOT/<class>/<scan>`` tree (your own data, no patient level).

        A scan is a folder of slices, a NIfTI file (``.nii``/``.nii.gz``) or a video file
        (:data:`~resnet3d.data.readers.VIDEO_SUFFIXES`, needs PyAV); a file's scan id is its name
        without extension. Without a patient level every scan counts as its own patient
        (``patient_id == scan_id``); use :meth:`from_csv` to give patient ids when one
        patient has several scans, or patient-level splits will not be patient-level. A
        video's patient id is its group (:func:`video_group`): ``<class>_gNN`` for UCF101
        names ``v_<Action>_gNN_cMM``, so a UCF101 or HMDB51 class folder tree is a data set
        as it is.

        Args:
            root: The data set root.
            classes: Class folder names in label order; default: every folder, natural order.
            lenient: Skip unusable scans and list them in :attr:`report` instead of raising.
            check_duplicates: Look for byte-identical slices within each scan.
            threads: Threads listing scans in parallel.

        Returns:
            The index.

        Raises:
            DatasetNotFoundError: If the root does not exist.
            DatasetLayoutError: If it is empty, lacks a class folder or (strict mode) has an
                unusable scan.
        """
        root_path = _check_root(root)
        issues = _Collector()
        found = [p.name for p in _subdirs(root_path)]
        if classes is None:
            if not found:
                raise DatasetLayoutError(
                    f"{root_path}: no class folders; expected ROOT/<class>/<scan>",
                    path=root_path,
                )
            classes = found
        classes = tuple(classes)
        present = _resolve_classes(root_path, classes, found, issues, lenient)
        candidates: list[tuple[str, str, str, Path]] = []
        for label in present:
            class_dir = root_path / label
            entries = sorted(os.scandir(class_dir), key=lambda e: natural_key(e.name))
            loose = []
            for entry in entries:
                if entry.is_dir() and not is_junk_name(entry.name):
                    candidates.append((label, entry.name, entry.name, Path(entry.path)))
                elif entry.is_file() and _is_nifti(entry.name) and not entry.name.startswith("."):
                    stem = _nifti_stem(entry.name)
                    candidates.append((label, stem, stem, Path(entry.path)))
                elif (
                    entry.is_file() and is_video_name(entry.name) and not entry.name.startswith(".")
                ):
                    group = video_group(entry.name, label)
                    candidates.append((label, group, _scan_stem(entry.name), Path(entry.path)))
                elif entry.is_file() and not is_junk_name(entry.name):
                    loose.append(entry.name)
            if loose:
                issues.error(
                    "bad_scan",
                    class_dir,
                    f"{class_dir}: holds {len(loose)} slice-like files (e.g. {loose[0]!r}) "
                    "directly; expected one folder per scan: ROOT/<class>/<scan>/<slices>",
                )
        probes = _probe_all([c[3] for c in candidates], check_duplicates, threads)
        rows = []
        for (label, patient, scan, path), probe in zip(candidates, probes):
            if _add_probe_issues(issues, path, probe):
                rows.append(
                    ScanRecord(label, classes.index(label), patient, scan, probe.n_slices, path)
                )
        if not lenient:
            issues.raise_if_errors(os.fspath(root_path))
        return cls(rows, classes, issues.report(), root_path)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        classes: Sequence[str] | None = None,
        lenient: bool = False,
    ) -> ScanIndex:
        """Index scans listed in a CSV file (e.g. one written by :meth:`to_csv`).

        Required columns: ``path`` (scan folder, NIfTI file or video file; relative paths are
        relative to the CSV's folder) and ``label``. Optional: ``patient_id`` (default: the
        scan id, i.e. every scan its own patient; for a video, :func:`video_group`), or
        ``group``, its name for videos (the clips of one source video, UCF101's ``gNN``);
        ``scan_id`` (default: the path's last name, without a NIfTI or video extension),
        ``n_slices`` (default: counted on disk; a video's frames), ``label_index`` (fixes the
        class order). A Kinetics-style list is ``path,label`` (every video its own group).

        Args:
            path: The CSV file.
            classes: Class names in label order. Default: from ``label_index`` when present,
                else the labels in sorted order.
            lenient: Skip rows whose scan is missing or unusable and list them in the report.

        Returns:
            The index, in CSV row order.

        Raises:
            DatasetNotFoundError: If the CSV does not exist.
            DatasetLayoutError: For missing columns, bad values (naming the line), labels not
                in ``classes``, or (strict mode) missing or unusable scans.
        """
        csv_path = Path(path)
        if not csv_path.is_file():
            raise DatasetNotFoundError(
                f"index CSV {os.fspath(csv_path)!r} does not exist", path=csv_path
            )
        table = _read_csv(csv_path, required=("path", "label"))
        base = csv_path.parent
        issues = _Collector()
        if classes is None:
            classes = _classes_from_csv(csv_path, table)
        classes = tuple(classes)

        parsed: list[tuple[str, str, str, int | None, Path]] = []
        for line, rec in table:
            label = rec["label"]
            if label not in classes:
                raise DatasetLayoutError(
                    f"{csv_path}:{line}: label {label!r} is not one of {list(classes)}."
                    + _hint(label, classes),
                    path=csv_path,
                )
            raw_path = rec["path"]
            if not raw_path:
                raise DatasetLayoutError(f"{csv_path}:{line}: empty path", path=csv_path)
            scan_path = Path(raw_path)
            if not scan_path.is_absolute():
                scan_path = base / scan_path
            scan_id = rec.get("scan_id") or _scan_stem(scan_path.name)
            given, group = rec.get("patient_id"), rec.get("group")
            if given and group and given != group:
                raise DatasetLayoutError(
                    f"{csv_path}:{line}: patient_id {given!r} and group {group!r} differ; they "
                    "name the same thing (the unit a split keeps together): give one",
                    path=csv_path,
                )
            patient = given or group
            if not patient:
                patient = (
                    video_group(scan_path, label) if is_video_name(scan_path.name) else scan_id
                )
            n_text = rec.get("n_slices")
            n_slices = _parse_int(n_text, csv_path, line, "n_slices") if n_text else None
            parsed.append((label, patient, scan_id, n_slices, scan_path))

        need_probe = [p for p in parsed if p[3] is None and p[4].exists()]
        probes = dict(
            zip((p[4] for p in need_probe), _probe_all([p[4] for p in need_probe], False, None))
        )
        rows = []
        for label, patient, scan_id, n_slices, scan_path in parsed:
            if not scan_path.exists():
                issues.error(
                    "missing_on_disk",
                    scan_path,
                    f"{scan_path}: listed in {csv_path} but does not exist",
                )
                continue
            if n_slices is None:
                probe = probes[scan_path]
                if not _add_probe_issues(issues, scan_path, probe):
                    continue
                n_slices = probe.n_slices
            rows.append(
                ScanRecord(label, classes.index(label), patient, scan_id, n_slices, scan_path)
            )
        _check_patients(rows, issues)
        if not lenient:
            issues.raise_if_errors(os.fspath(csv_path))
        return cls(rows, classes, issues.report(), base)

    @classmethod
    def from_path(
        cls,
        source: str | os.PathLike[str],
        layout: str = "auto",
        lenient: bool = False,
        check_duplicates: bool = True,
    ) -> ScanIndex:
        """Index a data set, choosing the builder from ``layout`` or from what is on disk.

        ``"auto"``: a ``.csv`` file is read with :meth:`from_csv`; a folder with
        ``unzip_filenames.csv`` or a CC-CCII class folder (``NCP``, ``CP``, ``Normal``) with
        :meth:`from_ccii`; any other folder with :meth:`from_tree` (class folders of scan
        folders, NIfTI files or video files).

        Args:
            source: A data set folder or an index CSV.
            layout: ``"auto"``, ``"ccii"``, ``"tree"`` or ``"csv"``.
            lenient: Skip unusable scans and report them instead of raising.
            check_duplicates: Look for byte-identical slices (folder layouts).

        Returns:
            The index.

        Raises:
            ValueError: For an unknown layout.
            DatasetNotFoundError, DatasetLayoutError: As the chosen builder raises.
        """
        check_choice("layout", layout, ("auto", "ccii", "tree", "csv"))
        path = Path(source)
        if layout == "auto":
            if path.is_file() and path.suffix.casefold() == ".csv":
                layout = "csv"
            elif path.is_dir() and (
                (path / "unzip_filenames.csv").exists()
                or any((path / c).is_dir() for c in CCII_CLASSES)
            ):
                layout = "ccii"
            else:
                layout = "tree"
        if layout == "csv":
            return cls.from_csv(path, lenient=lenient)
        if layout == "ccii":
            return cls.from_ccii(path, lenient=lenient, check_duplicates=check_duplicates)
        return cls.from_tree(path, lenient=lenient, check_duplicates=check_duplicates)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the index as CSV (readable by :meth:`from_csv`), atomically.

        Columns: ``label,label_index,patient_id,scan_id,n_slices,path``; paths are written
        relative to the CSV's folder when they are inside it.

        Args:
            path: Where to write.

        Returns:
            The path written.
        """
        out = Path(path)
        base = out.parent.resolve()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_INDEX_CSV_COLUMNS)
        for r in self.rows:
            resolved = r.path.resolve()
            try:
                shown = resolved.relative_to(base).as_posix()
            except ValueError:
                shown = os.fspath(resolved)
            writer.writerow([r.label, r.label_index, r.patient_id, r.scan_id, r.n_slices, shown])
        atomic_write_text(out, buffer.getvalue())
        return out


def _parse_int(text: str, path: Path, line: int, column: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise DatasetLayoutError(
            f"{path}:{line}: column {column!r} must be an integer, got {text!r}", path=path
        ) from None
    if value < 0:
        raise DatasetLayoutError(f"{path}:{line}: {column} must be >= 0, got {value}", path=path)
    return value


def _read_csv(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV with a header; check ``required`` columns; return (line number, row) pairs."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                hints = "".join(_hint(c, header) for c in missing)
                raise DatasetLayoutError(
                    f"{path}: missing column(s) {missing}; expected columns {list(required)}, "
                    f"found {header}.{hints}",
                    path=path,
                )
            rows = []
            for rec in reader:
                cleaned = {
                    (k or "").strip(): (v or "").strip() for k, v in rec.items() if k is not None
                }
                if not any(cleaned.values()):
                    continue
                rows.append((reader.line_num, cleaned))
            return rows
    except UnicodeDecodeError as error:
        raise DatasetLayoutError(f"{path}: not a UTF-8 text CSV: {error}", path=path) from error
    except csv.Error as error:
        raise DatasetLayoutError(f"{path}: malformed CSV: {error}", path=path) from error


def _read_ccii_csv(
    root: Path, csv_file: str | os.PathLike[str] | bool
) -> dict[tuple[str, str, str], int] | None:
    if csv_file is False:
        return None
    if csv_file is True:
        path = root / "unzip_filenames.csv"
        if not path.exists():
            return None
    else:
        path = Path(csv_file)
        if not path.is_file():
            raise DatasetNotFoundError(f"CC-CCII CSV {os.fspath(path)!r} does not exist", path=path)
    table = _read_csv(path, CCII_CSV_COLUMNS)
    expected: dict[tuple[str, str, str], int] = {}
    for line, rec in table:
        key = (rec["label"], rec["patient_id"], rec["scan_id"])
        expected[key] = _parse_int(rec["n_slice"], path, line, "n_slice")
    return expected


def _classes_from_csv(path: Path, table: list[tuple[int, dict[str, str]]]) -> tuple[str, ...]:
    labels = sorted({rec["label"] for _, rec in table}, key=natural_key)
    if not table or "label_index" not in table[0][1]:
        return tuple(labels)
    mapping: dict[int, str] = {}
    for line, rec in table:
        i = _parse_int(rec["label_index"], path, line, "label_index")
        if mapping.setdefault(i, rec["label"]) != rec["label"]:
            raise DatasetLayoutError(
                f"{path}:{line}: label_index {i} is {rec['label']!r} here but "
                f"{mapping[i]!r} earlier",
                path=path,
            )
    if sorted(mapping) != list(range(len(mapping))) or len(set(mapping.values())) != len(mapping):
        raise DatasetLayoutError(
            f"{path}: label_index values must be 0..K-1, one per label; got "
            f"{dict(sorted(mapping.items()))}",
            path=path,
        )
    return tuple(mapping[i] for i in range(len(mapping)))


def _check_patients(rows: Sequence[ScanRecord], issues: _Collector) -> None:
    labels: dict[str, set[str]] = defaultdict(set)
    first: dict[str, Path] = {}
    for row in rows:
        labels[row.patient_id].add(row.label)
        first.setdefault(row.patient_id, row.path)
    for patient, names in labels.items():
        if len(names) > 1:
            issues.warn(
                "patient_in_several_classes",
                first[patient],
                f"patient {patient!r} has scans under {len(names)} classes {sorted(names)} "
                f"(e.g. {first[patient]}); split_by_patient keeps them together under the "
                "majority class",
            )


# ----------------------------------------------------------------------------------------
# patient-level split


def _patient_label(rows: Sequence[ScanRecord]) -> int:
    counts = Counter(r.label_index for r in rows)
    return min(counts, key=lambda label: (-counts[label], label))


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n`` items by ``fractions``: largest remainder, then at least one per positive
    fraction when there are enough items (so tiny classes still reach every split)."""
    exact = [round(f * n, 9) for f in fractions]  # 0.29 * 100 is 28.999...: not a 28
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    positive = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(positive):
        for i in positive:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise ValueError(
            f"fractions must be (train, valid, test), three numbers, got {tuple(fractions)!r}"
        )
    if any(not math.isfinite(f) or f < 0 for f in values) or not math.isclose(
        sum(values), 1.0, abs_tol=1e-6
    ):
        raise ValueError(f"fractions must be >= 0 and sum to 1, got {values} (sum {sum(values)})")
    return values[0], values[1], values[2]


class Split:
    """A train/valid/test split of an index by patient.

    Use :func:`split_by_patient` to make one, :meth:`to_json` / :meth:`from_json` to keep
    it, ``split.train`` (or ``split["train"]``) for a subset, and :attr:`hash` to identify
    it (training stores it in checkpoints).

    Args:
        index: The index that was split.
        assignment: Split name (``"train"``, ``"valid"``, ``"test"``) of every patient id.
        seed: The seed it was made with (``None`` when unknown).
        fractions: The requested fractions.

    Raises:
        ValueError: If a patient of the index has no valid split name.
    """

    def __init__(
        self,
        index: ScanIndex,
        assignment: Mapping[str, str],
        seed: int | None = None,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
    ) -> None:
        self.index = index
        self.assignment = dict(assignment)
        self.seed = seed
        self.fractions = tuple(float(f) for f in fractions)
        for patient in index.patients():
            name = self.assignment.get(patient)
            if name not in SPLIT_NAMES:
                raise ValueError(
                    f"patient {patient!r} is assigned to {name!r}; expected one of {SPLIT_NAMES}"
                )
        members: dict[str, list[ScanRecord]] = {name: [] for name in SPLIT_NAMES}
        for row in index:
            members[self.assignment[row.patient_id]].append(row)
        self._subsets = {name: index.subset(rows) for name, rows in members.items()}

    @property
    def train(self) -> ScanIndex:
        """The training scans."""
        return self._subsets["train"]

    @property
    def valid(self) -> ScanIndex:
        """The validation scans."""
        return self._subsets["valid"]

    @property
    def test(self) -> ScanIndex:
        """The test scans."""
        return self._subsets["test"]

    def __getitem__(self, name: str) -> ScanIndex:
        if name not in self._subsets:
            raise KeyError(
                f"no split {name!r}; splits are {list(SPLIT_NAMES)}"
                + did_you_mean(name, SPLIT_NAMES)
            )
        return self._subsets[name]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(self._subsets[n])}" for n in SPLIT_NAMES)
        return f"Split({sizes} scans, seed={self.seed}, hash={self.hash[:12]})"

    def _canonical(self) -> dict[str, Any]:
        return {
            "classes": list(self.index.classes),
            "splits": {n: sorted(r.key for r in self._subsets[n]) for n in SPLIT_NAMES},
        }

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the classes and the sorted scan keys of each split.

        It depends only on which scan is in which split, not on paths, order or seed, so
        the same split hashes the same on every machine.
        """
        text = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def summary(self) -> str:
        """A text table: patients / scans / slices per class and split, as in the paper."""
        header = ["class", *SPLIT_NAMES]
        rows = [header]
        for label in self.index.classes:
            cells = [label]
            for name in SPLIT_NAMES:
                c = self._subsets[name].counts()[label]
                cells.append(f"{c['patients']} / {c['scans']} / {c['slices']}")
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        return "patients / scans / slices\n" + "\n".join(lines)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The split as JSON (patients and scan keys per split, seed, fractions, hash).

        Args:
            path: If given, also write it there atomically.

        Returns:
            The JSON text.
        """
        canonical = self._canonical()
        present = set(self.index.patients())
        doc = {
            "format": "resnet3d-split",
            "version": 1,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "classes": canonical["classes"],
            "hash": self.hash,
            "patients": {
                n: sorted(
                    (p for p, s in self.assignment.items() if s == n and p in present),
                    key=natural_key,
                )
                for n in SPLIT_NAMES
            },
            "scans": canonical["splits"],
        }
        text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_json(
        cls, source: str | os.PathLike[str], index: ScanIndex, strict: bool = True
    ) -> Split:
        """Load a split saved by :meth:`to_json` and apply it to an index.

        Args:
            source: A JSON file path, or the JSON text itself.
            index: The index to split (usually rebuilt from the same data).
            strict: Require the index to hold exactly the scans the split was made from (same
                hash); otherwise only every patient must be assigned.

        Returns:
            The split.

        Raises:
            DatasetNotFoundError: If ``source`` is a path that does not exist.
            DatasetLayoutError: If the JSON is not a split, a patient of the index is not in
                it, or (``strict``) the scans differ (the message counts what differs).
        """
        text, where = _read_json_source(source)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetLayoutError(f"{where}: not valid JSON: {error}", path=where) from error
        if not isinstance(doc, dict) or doc.get("format") != "resnet3d-split":
            raise DatasetLayoutError(f"{where}: not a resnet3d split file", path=where)
        if list(doc.get("classes", [])) != list(index.classes):
            raise DatasetLayoutError(
                f"{where}: split classes {doc.get('classes')} differ from the index's "
                f"{list(index.classes)}",
                path=where,
            )
        assignment: dict[str, str] = {}
        for name in SPLIT_NAMES:
            for patient in doc.get("patients", {}).get(name, []):
                if assignment.setdefault(str(patient), name) != name:
                    raise DatasetLayoutError(
                        f"{where}: patient {patient!r} is in both {assignment[patient]!r} and "
                        f"{name!r}",
                        path=where,
                    )
        unknown = [p for p in index.patients() if p not in assignment]
        if unknown:
            raise DatasetLayoutError(
                f"{where}: {len(unknown)} patient(s) of the index are not in the split, e.g. "
                f"{sorted(unknown, key=natural_key)[:5]}; make a new split for this data",
                path=where,
            )
        split = cls(index, assignment, doc.get("seed"), doc.get("fractions", (0.7, 0.15, 0.15)))
        if strict and split.hash != doc.get("hash"):
            saved = {k for n in SPLIT_NAMES for k in doc.get("scans", {}).get(n, [])}
            now = {r.key for r in index}
            raise DatasetLayoutError(
                f"{where}: the index does not hold the scans the split was made from "
                f"({len(now - saved)} new, {len(saved - now)} missing, e.g. "
                f"{sorted((now - saved) or (saved - now))[:3]}); pass strict=False to apply it "
                "anyway",
                path=where,
            )
        return split


def _read_json_source(source: str | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return source, "<split JSON>"
    path = Path(source)
    if not path.is_file():
        raise DatasetNotFoundError(f"split file {os.fspath(path)!r} does not exist", path=path)
    return path.read_text(encoding="utf-8"), os.fspath(path)


def split_by_patient(
    index: ScanIndex,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Split:
    """Split an index into train/valid/test by patient, stratified by class.

    Each patient goes to exactly one split with all their scans. Patients are grouped by
    class (a patient with scans under several classes counts under the class most of their
    scans have; ties go to the lower label index); within a class they are ordered by
    ``sha256(f"{seed}:{patient_id}")`` and cut by ``fractions`` (largest-remainder rounding;
    every split with a positive fraction gets at least one patient of a class when the class
    has enough patients). Only stdlib hashing is involved, so a seed gives the same split on
    every machine and Python/numpy version.

    Args:
        index: The scans.
        fractions: ``(train, valid, test)`` shares of each class's patients; sum to 1.
        seed: Any int; different seeds give different splits.

    Returns:
        The split.

    Raises:
        ValueError: For fractions that are not three non-negative numbers summing to 1.
        TypeError: For a seed that is not an int.
    """
    shares = _check_fractions(fractions)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    by_class: dict[int, list[str]] = defaultdict(list)
    for patient, rows in index.patients().items():
        by_class[_patient_label(rows)].append(patient)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        patients = sorted(
            by_class[label],
            key=lambda p: (hashlib.sha256(f"{seed}:{p}".encode()).hexdigest(), p),
        )
        start = 0
        for name, count in zip(SPLIT_NAMES, _allocate(len(patients), shares)):
            for patient in patients[start : start + count]:
                assignment[patient] = name
            start += count
    return Split(index, assignment, seed, shares)


def _list_stems(path: Path, test: bool) -> dict[str, int]:
    """``stem (lower case) -> line`` of a UCF101 list: ``Action/v_..._cMM.avi[ LABEL]``."""
    if not path.is_file():
        raise DatasetNotFoundError(f"split list {os.fspath(path)!r} does not exist", path=path)
    stems: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and (test or not words[1].isdigit())):
            expected = "Action/v_Action_gNN_cMM.avi" + ("" if test else " LABEL")
            raise DatasetLayoutError(
                f"{path}:{number}: expected '{expected}', got {line.strip()!r}", path=path
            )
        # By stem, case-insensitively: UCF101's own names differ in case from their folders
        # (HandstandPushups/v_HandStandPushups_...), and a re-encoded copy has another suffix.
        stems[Path(words[0].replace("\\", "/")).stem.lower()] = number
    return stems


def ucf101_split(
    index: ScanIndex,
    trainlist: str | os.PathLike[str],
    testlist: str | os.PathLike[str],
    *,
    valid_groups: Iterable[int] = (),
    strict: bool = True,
) -> Split:
    """A fixed split from UCF101's official lists (``trainlist01.txt``, ``testlist01.txt``).

    Lines are ``Action/v_Action_g08_c01.avi 1`` (train) and ``Action/v_Action_g01_c01.avi``
    (test); videos are matched to the index by file stem, ignoring case and suffix. UCF101
    has no validation set: ``valid_groups`` moves the training videos of those group numbers
    (e.g. ``(8, 9)``: every class's ``g08`` and ``g09``) to ``valid``. The split keeps groups
    whole, as the lists do; it has no seed, and its ``fractions`` are the video shares it
    holds. Save it as ``split.json`` in a run folder (:meth:`Split.to_json`) before
    ``resnet3d train --out-dir`` that folder, or pass it to ``resnet3d sweep --split``.

    Args:
        index: Videos of a UCF101-style tree (patients are ``<class>_gNN`` groups).
        trainlist: The training list.
        testlist: The test list.
        valid_groups: Group numbers taken from the training videos for validation.
        strict: Refuse a video of the index that no list names, and a listed video the index
            lacks; with ``False`` the first are left out of the split's index and the second
            are logged.

    Returns:
        The :class:`Split`.

    Raises:
        DatasetNotFoundError: If a list does not exist.
        DatasetLayoutError: For a malformed line, a video in both lists, a group on both
            sides, or (``strict``) a video named by no list or missing from the index.
    """
    train_path, test_path = Path(trainlist), Path(testlist)
    train, test = _list_stems(train_path, False), _list_stems(test_path, True)
    both = sorted(set(train) & set(test))
    if both:
        raise DatasetLayoutError(
            f"{len(both)} video(s) are in both {train_path} and {test_path}, e.g. {both[:3]}",
            path=test_path,
        )
    wanted = {int(g) for g in valid_groups}
    side: dict[str, str] = {}
    rows, unlisted = [], []
    for row in index:
        stem = row.path.stem.lower()
        if stem in test:
            name = "test"
        elif stem in train:
            match = _UCF_NAME.match(row.path.stem)
            name = "valid" if match and int(match["group"]) in wanted else "train"
        else:
            unlisted.append(row)
            continue
        if side.setdefault(row.patient_id, name) != name:
            raise DatasetLayoutError(
                f"{row.path}: group {row.patient_id!r} is in {side[row.patient_id]!r} and "
                f"{name!r}; the lists must keep a group on one side",
                path=row.path,
            )
        rows.append(row)
    found = {r.path.stem.lower() for r in rows}
    missing = sorted((set(train) | set(test)) - found)
    problems = []
    if unlisted:
        problems.append(
            f"{len(unlisted)} video(s) of the data set are in neither list, e.g. "
            f"{[os.fspath(r.path) for r in unlisted[:3]]}"
        )
    if missing:
        problems.append(
            f"{len(missing)} listed video(s) are not in the data set, e.g. {missing[:3]}"
        )
    if problems and strict:
        raise DatasetLayoutError(
            "; ".join(problems) + " (strict=False leaves them out)", path=train_path
        )
    for problem in problems:
        logger.warning("UCF101 split: %s; left out", problem)
    subset = index.subset(rows)
    counts = Counter(side[r.patient_id] for r in rows)
    shares = [round(counts[name] / max(len(rows), 1), 4) for name in SPLIT_NAMES]
    return Split(subset, side, None, shares)


# ----------------------------------------------------------------------------------------
# the data set


class VolumeDataset(Dataset):
    """Every volume of every scan as one sample, as the paper trains and evaluates.

    Items are ``(volume, label, scan_id, patient_id)`` with ``volume`` a tensor of shape
    ``(C, D, H, W)`` in the stacker's dtype (float32 in ``[0, 1]`` by default). Slices are
    decoded on the fly (only the ``D`` slices of the requested volume) or, with ``cache``,
    read from a :class:`resnet3d.data.cache.VolumeCache` built with the same slice settings.
    :meth:`load_batch` reads a whole batch at once, optionally compact (gray as one channel,
    8-bit data as uint8): the library's trainer and evaluation move batches that way and
    restore the full volumes on the device.

    Without a cache, the first item of a scan validates the whole scan from its headers
    (:func:`resnet3d.data.readers.validate_scan`: one size, one bit depth, one frame per file,
    each slice number once, within the size limits), once per process, so a scan the cache
    build refuses is refused here with the same error, even when the item's own slices are
    fine.

    Args:
        index: A :class:`ScanIndex`, or a :class:`Split` together with ``split``.
        stacker: How scans become volumes (depth, size, channels, window, ...).
        split: With a :class:`Split`: which part, ``"train"``, ``"valid"`` or ``"test"``.
        cache: A :class:`~resnet3d.data.cache.VolumeCache` (or its folder) to read instead of
            decoding; it must hold every scan of the index.
        transform: Optional callable applied to each volume tensor.
        clip_sampling: Where each sample's ``depth`` slices (frames) start:
            ``"uniform"`` (default) takes :meth:`SliceStacker.volume_indices`, the same
            volumes every time; ``"random"`` draws new starts at every epoch
            (:meth:`set_epoch`), as pytorchvideo's random clip sampler does for training:
            a scan keeps its number of samples, and sample ``k`` of it starts at a random
            slice of the ``k``-th of that many equal segments of the possible starts
            (:func:`resnet3d.data.video.sample_clips` with ``start="random"``), so the samples
            stay spread over the video. A scan with one possible start (no longer than
            ``depth``) keeps its fixed volume. Works with a cache: it holds every frame.
        seed: With ``clip_sampling="random"``: the draws of an epoch are a pure function of
            ``(seed, epoch, scan position in the index)``, on any process and worker, so a
            resumed run sees exactly the clips an uninterrupted one would.

    Raises:
        ValueError: For a ``split`` without a :class:`Split`, an unknown split name, an
            unknown ``clip_sampling`` or a negative ``seed``.
        CacheError: If the cache was built with other slice settings or lacks a scan.

    Shape:
        Each item's volume: ``(C, D, H, W)``.
    """

    def __init__(
        self,
        index: ScanIndex | Split,
        stacker: SliceStacker | None = None,
        split: str | None = None,
        cache: VolumeCache | str | os.PathLike[str] | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        clip_sampling: str = "uniform",
        seed: int = 0,
    ) -> None:
        check_choice("clip_sampling", clip_sampling, CLIP_SAMPLING)
        _check_seed(seed)
        self.clip_sampling = clip_sampling
        self.seed = seed
        self._epoch = _epoch_cell(clip_sampling)
        if isinstance(index, Split):
            if split is None:
                raise ValueError(f"index is a Split: pass split= one of {list(SPLIT_NAMES)}")
            index = index[split]
        elif split is not None:
            raise ValueError(
                "split= needs a Split as first argument (see split_by_patient), got a "
                f"{type(index).__name__}"
            )
        self.index: ScanIndex = index
        self.stacker = stacker if stacker is not None else SliceStacker()
        self.transform = transform
        if cache is not None and not hasattr(cache, "load"):
            from .cache import VolumeCache

            cache = VolumeCache(cache)
        self.cache: VolumeCache | None = cache  # type: ignore[assignment]
        if self.cache is not None:
            self.cache.check(self.index, self.stacker)
        counts = [self.stacker.num_volumes(r.n_slices) for r in self.index]
        self._offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self._files: dict[int, ScanFiles] = {}
        empty = [r for r, c in zip(self.index, counts) if c == 0]
        if empty:
            logger.warning(
                "%d scan(s) give no volume with depth=%d, remainder=%r (e.g. %s, %d slices)",
                len(empty),
                self.stacker.depth,
                self.stacker.remainder,
                empty[0].path,
                empty[0].n_slices,
            )

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def epoch(self) -> int:
        """The epoch whose random clips the data set serves (see :meth:`set_epoch`)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Serve the clips of ``epoch`` (with ``clip_sampling="random"``; else a no-op).

        Call it before iterating, as ``DistributedSampler.set_epoch``; DataLoader workers
        see the new value (it is kept in shared memory).

        Raises:
            ValueError: If ``epoch`` is not an int >= 0.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._epoch[0] = int(epoch)

    def with_clip_sampling(self, clip_sampling: str, seed: int = 0) -> VolumeDataset:
        """A copy of this data set that samples clips as given; this one is left as it is.

        The copy shares the index, stacker and cache (nothing is read again) and starts at
        epoch 0.

        Raises:
            ValueError: For an unknown ``clip_sampling`` or a negative ``seed``.
        """
        check_choice("clip_sampling", clip_sampling, CLIP_SAMPLING)
        _check_seed(seed)
        other = copy.copy(self)
        other.clip_sampling = clip_sampling
        other.seed = seed
        other._epoch = _epoch_cell(clip_sampling)
        return other

    def _random_seed(self, position: int) -> int | None:
        """Seed of the random starts of the scan at ``position`` this epoch (``None``: fixed)."""
        if self.clip_sampling == "uniform":
            return None
        # A pure function of (seed, epoch, scan position): not of the process, the worker or
        # the order items are asked in, so every rank, worker and resumed run agrees.
        entropy = np.random.SeedSequence([self.seed, self.epoch, position])
        return int(entropy.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))

    def _sampler(self, position: int, n_slices: int) -> ClipSampler | None:
        """The :class:`~resnet3d.data.video.ClipSampler` of a scan's samples (``None``: fixed)."""
        seed = self._random_seed(position)
        count = self.stacker.num_volumes(n_slices)
        if seed is None or n_slices <= self.stacker.depth or not count:
            return None  # one possible start (or none): nothing to draw
        from .video import ClipSampler

        return ClipSampler(clips=count, start="random", seed=seed)

    def _rows(self, position: int, n_slices: int) -> np.ndarray:
        """Slice numbers of every sample of the scan at ``position``, at the current epoch.

        Shape:
            ``(samples of the scan, depth)``.
        """
        sampler = self._sampler(position, n_slices)
        if sampler is None:
            return self.stacker.volume_indices(n_slices)
        return sampler.indices(n_slices, self.stacker.depth)

    @property
    def targets(self) -> np.ndarray:
        """Label of every sample (for weighted samplers and class counts)."""
        counts = np.diff(self._offsets)
        return np.repeat(np.asarray(self.index.labels, dtype=np.int64), counts)

    def _position(self, item: int) -> tuple[int, int]:
        """(row position in the index, volume number within the scan) of a sample."""
        n = len(self)
        if not isinstance(item, (int, np.integer)) or not -n <= item < n:
            raise IndexError(f"sample {item!r} out of range for {n} samples")
        item = int(item) % n
        scan = int(np.searchsorted(self._offsets, item, side="right") - 1)
        return scan, item - int(self._offsets[scan])

    def locate(self, item: int) -> tuple[ScanRecord, int, np.ndarray]:
        """Which scan and slices a sample comes from (to map predictions back to slices).

        Args:
            item: Sample number.

        Returns:
            ``(scan record, volume number within the scan, slice numbers of the volume)``;
            slice numbers index the scan's slices in order (``-1``: zero padding).

        Raises:
            IndexError: If ``item`` is out of range.
        """
        scan, volume = self._position(item)
        row = self.index[scan]
        return row, volume, self._rows(scan, row.n_slices)[volume]

    def slice_paths(self, item: int) -> list[Path | None]:
        """The slice files of a sample in depth order (``None`` for zero padding).

        For a NIfTI scan every entry is the volume file; for a video, the video file (the
        frame numbers are :meth:`locate`'s).
        """
        scan, volume = self._position(item)
        row = self.index[scan]
        files = self._scan_files(scan, row)
        indices = self._rows(scan, row.n_slices)[volume]
        if files.kind in ("nifti", "video"):
            return [files.path if i >= 0 else None for i in indices]
        return [files.slices[i] if i >= 0 else None for i in indices]

    def _scan_files(self, position: int, row: ScanRecord) -> ScanFiles:
        # scan_files validates the scan from its headers (the rules the cache build applies);
        # keeping its result validates each scan once per process, not once per item.
        files = self._files.get(position)
        if files is None:
            files = scan_files(row.path)
            if files.n_slices != row.n_slices:
                raise DatasetLayoutError(
                    f"{row.path}: the index says {row.n_slices} slices, the folder now has "
                    f"{files.n_slices}; rebuild the index",
                    path=row.path,
                )
            self._files[position] = files
        return files

    @property
    def channels(self) -> int:
        """Channels of every volume (the stacker's ``channels``): what the model takes."""
        return self.stacker.channels

    def _volume(self, item: int, compact: bool) -> tuple[np.ndarray, ScanRecord]:
        scan, volume = self._position(item)
        row = self.index[scan]
        sampler = self._sampler(scan, row.n_slices)
        if self.cache is not None:
            # The cache holds every frame: random clips are taken from it as they are.
            rows = None if sampler is None else self._rows(scan, row.n_slices)
            array = self.cache.load(row.key, [volume], self.stacker, compact=compact, rows=rows)[0]
        else:
            # Errors name the slice file; DataLoader workers re-raise them with the message.
            files = self._scan_files(scan, row)
            array = self.stacker.load(files, [volume], compact=compact, sampler=sampler)[0]
        return array, row

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, str, str]:
        array, row = self._volume(item, compact=False)
        tensor = torch.from_numpy(array)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return tensor, row.label_index, row.scan_id, row.patient_id

    def load_batch(
        self, items: Sequence[int], *, compact: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], tuple[str, ...]]:
        """Several samples at once, collated: what a DataLoader batch of them holds.

        The volumes are read straight into one batch tensor (in shared memory inside a
        DataLoader worker), so a batch is copied once instead of once per item and again to
        collate. :func:`resnet3d.engine.loader.make_loader` reads batches this way.

        Args:
            items: Sample numbers.
            compact: Send the volumes in their smallest exact form: gray scans as one
                channel, 8-bit data as uint8 (the cache always; decoded PNG/JPEG slices).
                :func:`resnet3d.engine.loader.prepare_batch` with ``channels=self.channels``
                restores exactly the ``compact=False`` batch on the device (repeated
                channels, ``x / 255``). A batch that mixes gray and colour scans, or 8-bit
                and deeper data, is widened to the common form on the host. Ignored when
                the data set has a ``transform`` (it sees the items as ``self[i]`` gives them).

        Returns:
            ``(volumes, labels, scan_ids, patient_ids)``, as ``default_collate`` would give
            for ``[self[i] for i in items]`` (with ``compact``: the compact volumes);
            labels are int64.

        Raises:
            IndexError: For a sample number out of range.

        Shape:
            volumes: ``(B, C, D, H, W)``; with ``compact``, ``C`` is 1 when every volume
            of the batch is gray.
        """
        if self.transform is not None:
            from torch.utils.data import default_collate

            volumes, labels, scans, patients = default_collate([self[i] for i in items])
            return volumes, labels, tuple(scans), tuple(patients)
        rows = [self.index[self._position(item)[0]] for item in items]
        volumes = None
        if compact and self.cache is not None:
            volumes = self._gray_from_cache(self.cache, items)
        if volumes is None:
            volumes = _stack_volumes([self._volume(item, compact)[0] for item in items])
        labels = torch.tensor([r.label_index for r in rows], dtype=torch.int64)
        return (
            volumes,
            labels,
            tuple(r.scan_id for r in rows),
            tuple(r.patient_id for r in rows),
        )

    def _gray_from_cache(self, cache: VolumeCache, items: Sequence[int]) -> torch.Tensor | None:
        """Compact gray volumes copied from the cache's memory maps into the batch, once.

        ``None`` when a scan is colour or sizes differ: the general path handles (or
        reports) those.
        """
        sources = []
        for item in items:
            scan, volume = self._position(item)
            slices = cache.slices(self.index[scan].key)
            if slices.ndim != 3:
                return None
            sources.append((slices, self._rows(scan, len(slices))[volume]))
        if not sources or len({s.shape[1:] for s, _ in sources}) != 1:
            return None
        depth = self.stacker.depth
        out = _empty_batch((len(sources), 1, depth, *sources[0][0].shape[1:]), torch.uint8)
        target = out.numpy()
        for k, (slices, idx) in enumerate(sources):
            # Indices are valid (the cache was checked against the index): no bounds buffer.
            np.take(slices, np.maximum(idx, 0), axis=0, out=target[k, 0], mode="clip")
            target[k, 0, idx < 0] = 0  # pad_mode="zero"
        return out


def _epoch_cell(clip_sampling: str) -> torch.Tensor:
    """Where a data set keeps its epoch: for random clips, in shared memory, because
    DataLoader workers (persistent ones too) hold a copy of the data set made once and must
    still see :meth:`VolumeDataset.set_epoch`'s value; uniform clips never read it."""
    cell = torch.zeros(1, dtype=torch.int64)
    return cell.share_memory_() if clip_sampling == "random" else cell


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")


def _stack_volumes(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """One ``(B, C, D, H, W)`` tensor from ``(C, D, H, W)`` volumes, copied once.

    Compact volumes of one batch may differ in channels (gray 1, colour C) and dtype (uint8,
    float32): they are widened to the batch's largest channel count (repeating gray) and, if
    any is float, to float32 (``x / 255``, exactly as the stacker converts).
    """
    if not arrays:
        raise ValueError("a batch needs at least one volume")
    channels = max(a.shape[0] for a in arrays)
    rest = arrays[0].shape[1:]
    for a in arrays:
        if a.ndim != 4 or a.shape[1:] != rest or a.shape[0] not in (1, channels):
            raise ValueError(
                "volumes of one batch must share (D, H, W) and have 1 or "
                f"{channels} channels; got shapes {sorted({tuple(v.shape) for v in arrays})}"
            )
    wide = any(a.dtype != np.uint8 for a in arrays)
    out = _empty_batch((len(arrays), channels, *rest), torch.float32 if wide else torch.uint8)
    target = out.numpy()
    for k, a in enumerate(arrays):
        # numpy copies on one thread: torch's parallel copy stalls on a busy CPU, and
        # DataLoader workers run single-threaded anyway.
        np.copyto(target[k], convert_dtype(a, "float32") if wide else a)
    return out


def _empty_batch(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor; in a DataLoader worker, in shared memory.

    Sending a tensor to the main process moves it to shared memory first (a copy) unless it
    already lives there; ``default_collate`` allocates its batches this way too.
    """
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    proto = torch.empty(0, dtype=dtype)
    storage = proto._typed_storage()._new_shared(math.prod(shape), device="cpu")
    return proto.new(storage).resize_(shape)
