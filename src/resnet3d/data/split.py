"""Patient-level splits: no patient (or video group) on two sides.

:func:`split_by_patient` draws a stratified, seeded split; :class:`Split` saves and reloads it
as JSON and checks it against an index; :func:`ucf101_split` reads UCF101's official lists."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._utils import atomic_write_text, did_you_mean
from ..errors import DatasetLayoutError, DatasetNotFoundError
from .files import natural_key

if TYPE_CHECKING:
    pass
from .index import UCF_NAME, ScanIndex, ScanRecord

__all__ = [
    "SPLIT_NAMES",
    "Split",
    "split_by_patient",
    "ucf101_split",
]

logger = logging.getLogger(__name__)


#: Split names, in the order :func:`split_by_patient` fills them.
SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")


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
            match = UCF_NAME.match(row.path.stem)
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
