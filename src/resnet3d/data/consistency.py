"""Checks of a data set index: every problem found is an :class:`Issue` of a
:class:`ConsistencyReport` (missing, empty, unreadable or duplicated scans, a patient under
two classes, counts that disagree with the CSV), so that one pass reports them all."""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._utils import did_you_mean
from ..errors import DatasetLayoutError, Resnet3DError
from .readers import scan_files
from .volumes import default_threads

if TYPE_CHECKING:
    pass

__all__ = [
    "ISSUE_KINDS",
    "ConsistencyReport",
    "Issue",
]


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


class Collector:
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


def hint(name: str, options: Iterable[str]) -> str:
    """``did_you_mean``, trying a case-insensitive match first (``ncp`` -> ``NCP``)."""
    options = list(options)
    same = [o for o in options if o.casefold() == name.casefold() and o != name]
    if same:
        return " Did you mean " + " or ".join(repr(o) for o in same) + "?"
    return did_you_mean(name, options)


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


def probe_all(
    paths: Sequence[Path], check_duplicates: bool, threads: int | None
) -> list[_ScanProbe]:
    workers = default_threads() if threads is None else max(1, threads)
    # Listing and reading headers is mostly file-system bound: threads overlap the waits.
    if workers <= 1 or len(paths) <= 1:
        return [_probe_scan(p, check_duplicates) for p in paths]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(lambda p: _probe_scan(p, check_duplicates), paths))


def add_probe_issues(issues: Collector, path: Path, probe: _ScanProbe) -> bool:
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
