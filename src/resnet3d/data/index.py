"""``ScanIndex``: the scans of a data set, their classes and patients, from one of three layouts.

- ``ccii``: CC-CCII's ``class/patient/scan/`` folders and its ``unzip_filenames.csv``;
- ``tree``: ``class/<scan>`` folders (scans are slice folders, NIfTI files or videos), every
  scan its own patient, or a video's group (UCF101's ``gNN``, :func:`video_group`);
- ``csv``: a list of ``path,label[,patient_id|group]`` rows.

Indexing reads headers only; problems are collected in a :class:`ConsistencyReport`."""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, overload

from .._utils import atomic_write_text, check_choice
from ..constants import CCII_CLASSES, CCII_CSV_COLUMNS, LAYOUTS
from ..errors import DatasetLayoutError, DatasetNotFoundError
from .files import (
    NIFTI_SUFFIXES,
    VIDEO_SUFFIXES,
    is_junk_name,
    is_nifti_name,
    is_video_name,
    natural_key,
)

if TYPE_CHECKING:
    pass
from .consistency import Collector, ConsistencyReport, add_probe_issues, hint, probe_all

__all__ = [
    "CCII_CLASSES",
    "CCII_CSV_COLUMNS",
    "ScanIndex",
    "ScanRecord",
    "video_group",
]

logger = logging.getLogger(__name__)


_INDEX_CSV_COLUMNS = ("label", "label_index", "patient_id", "scan_id", "n_slices", "path")


#: UCF101's file names: ``v_<Action>_g<group>_c<clip>`` (HMDB51 and others do not have it).
UCF_NAME = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$", re.IGNORECASE)


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
    match = UCF_NAME.match(stem)
    if match is None:
        return stem
    return f"{label}_g{int(match['group']):02d}"


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


def _nifti_stem(name: str) -> str:
    # Longest suffix first: "x.nii.gz" is "x", not "x.nii".
    for suffix in sorted(NIFTI_SUFFIXES, key=len, reverse=True):
        if name.casefold().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _scan_stem(name: str) -> str:
    """A scan file's id: its name without a NIfTI or video extension."""
    for suffix in VIDEO_SUFFIXES:
        if name.casefold().endswith(suffix):
            return name[: -len(suffix)]
    return _nifti_stem(name)


def _resolve_classes(
    root: Path, classes: Sequence[str], found: Sequence[str], issues: Collector, lenient: bool
) -> list[str]:
    present = [c for c in classes if c in found]
    missing = [c for c in classes if c not in found]
    # Hint only with folders that are not classes themselves ('CP' missing: not 'NCP').
    spare = [f for f in found if f not in classes]
    for name in missing:
        message = f"{root / name}: class folder {name!r} is missing; found {sorted(found)}." + hint(
            name, spare
        )
        if not present or not lenient:
            raise DatasetLayoutError(
                f"{root}: expected class folders {list(classes)}, found {sorted(found)}; "
                f"{name!r} is missing." + hint(name, spare),
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
        issues = Collector()
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

        probes = probe_all([c[3] for c in candidates], check_duplicates, threads)
        rows: list[ScanRecord] = []
        on_disk: set[tuple[str, str, str]] = set()
        for (label, patient, scan, path), probe in zip(candidates, probes):
            on_disk.add((label, patient, scan))
            if not add_probe_issues(issues, path, probe):
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
        issues = Collector()
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
                elif (
                    entry.is_file() and is_nifti_name(entry.name) and not entry.name.startswith(".")
                ):
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
        probes = probe_all([c[3] for c in candidates], check_duplicates, threads)
        rows = []
        for (label, patient, scan, path), probe in zip(candidates, probes):
            if add_probe_issues(issues, path, probe):
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
        issues = Collector()
        if classes is None:
            classes = _classes_from_csv(csv_path, table)
        classes = tuple(classes)

        parsed: list[tuple[str, str, str, int | None, Path]] = []
        for line, rec in table:
            label = rec["label"]
            if label not in classes:
                raise DatasetLayoutError(
                    f"{csv_path}:{line}: label {label!r} is not one of {list(classes)}."
                    + hint(label, classes),
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
            zip((p[4] for p in need_probe), probe_all([p[4] for p in need_probe], False, None))
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
                if not add_probe_issues(issues, scan_path, probe):
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
        check_choice("layout", layout, LAYOUTS)
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
                hints = "".join(hint(c, header) for c in missing)
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


def _check_patients(rows: Sequence[ScanRecord], issues: Collector) -> None:
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
