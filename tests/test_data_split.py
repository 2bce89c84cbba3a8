"""split_by_patient: no leakage, stratified, deterministic, JSON round trip."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from resnet3d.data.index import CCII_CLASSES, ScanIndex, ScanRecord
from resnet3d.data.split import Split, split_by_patient
from resnet3d.errors import DatasetLayoutError, DatasetNotFoundError

PATIENTS_PER_CLASS = {"NCP": 10, "CP": 7, "Normal": 20}


def _index(shuffle: int | None = None) -> ScanIndex:
    """An in-memory index: several scans per patient, patient ids unique across classes."""
    rows = []
    for c, label in enumerate(CCII_CLASSES):
        for p in range(PATIENTS_PER_CLASS[label]):
            patient = f"{label}{p}"
            for s in range(1 + p % 3):
                rows.append(ScanRecord(label, c, patient, f"{patient}-{s}", 10 + s, Path("x")))
    if shuffle is not None:
        random.Random(shuffle).shuffle(rows)
    return ScanIndex(rows, CCII_CLASSES)


def _patients(index: ScanIndex) -> set[str]:
    return {r.patient_id for r in index}


def test_no_patient_in_two_splits_and_every_scan_kept() -> None:
    index = _index()
    split = split_by_patient(index, (0.7, 0.15, 0.15), seed=3)
    train, valid, test = _patients(split.train), _patients(split.valid), _patients(split.test)
    assert not (train & valid or train & test or valid & test)
    assert train | valid | test == _patients(index)
    keys = [r.key for part in (split.train, split.valid, split.test) for r in part]
    assert sorted(keys) == sorted(r.key for r in index)


def test_stratified_by_class_hand_checked() -> None:
    split = split_by_patient(_index(), (0.7, 0.15, 0.15), seed=0)
    # largest remainder per class: 10 -> 7/1.5/1.5 -> 7/2/1; 7 -> 4.9/1.05/1.05 -> 5/1/1;
    # 20 -> 14/3/3 exactly
    expected = {"NCP": (7, 2, 1), "CP": (5, 1, 1), "Normal": (14, 3, 3)}
    for label, counts in expected.items():
        got = tuple(split[name].counts()[label]["patients"] for name in ("train", "valid", "test"))
        assert got == counts, label


def test_tiny_classes_reach_every_split() -> None:
    rows = [ScanRecord("CP", 1, f"p{i}", "s", 4, Path("x")) for i in range(3)]
    split = split_by_patient(ScanIndex(rows, CCII_CLASSES), (0.7, 0.15, 0.15), seed=0)
    assert [len(split[n]) for n in ("train", "valid", "test")] == [1, 1, 1]
    one = split_by_patient(ScanIndex(rows[:1], CCII_CLASSES), seed=0)
    assert [len(one[n]) for n in ("train", "valid", "test")] == [1, 0, 0]


def test_deterministic_and_order_independent() -> None:
    a = split_by_patient(_index(), seed=5)
    b = split_by_patient(_index(shuffle=1), seed=5)
    assert a.assignment == b.assignment and a.hash == b.hash
    assert split_by_patient(_index(), seed=6).hash != a.hash


def test_assignment_is_the_documented_sha256_order() -> None:
    """An independent restatement of the rule: same split on any machine."""
    index, seed = _index(), 11
    split = split_by_patient(index, (0.5, 0.25, 0.25), seed=seed)
    for label, n in PATIENTS_PER_CLASS.items():
        ids = sorted({r.patient_id for r in index if r.label == label})
        ids.sort(key=lambda p: (hashlib.sha256(f"{seed}:{p}".encode()).hexdigest(), p))
        exact = [0.5 * n, 0.25 * n, 0.25 * n]
        counts = [int(x) for x in exact]
        rest = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in rest[: n - sum(counts)]:
            counts[i] += 1
        expected = ["train"] * counts[0] + ["valid"] * counts[1] + ["test"] * counts[2]
        assert [split.assignment[p] for p in ids] == expected, label


def test_patient_under_two_classes_stays_together() -> None:
    rows = [
        ScanRecord("NCP", 0, "p1", "a", 4, Path("x")),
        ScanRecord("NCP", 0, "p1", "b", 4, Path("x")),
        ScanRecord("CP", 1, "p1", "c", 4, Path("x")),
        *(ScanRecord("CP", 1, f"q{i}", "s", 4, Path("x")) for i in range(6)),
    ]
    split = split_by_patient(ScanIndex(rows, CCII_CLASSES), seed=0)
    where = {n for n in ("train", "valid", "test") for r in split[n] if r.patient_id == "p1"}
    assert len(where) == 1


def test_json_round_trip(tmp_path: Path) -> None:
    index = _index()
    split = split_by_patient(index, (0.6, 0.2, 0.2), seed=9)
    path = tmp_path / "split.json"
    text = split.to_json(path)
    assert path.read_text() == text
    for source in (path, text):
        again = Split.from_json(source, _index(shuffle=4))
        assert again.hash == split.hash
        assert again.assignment == split.assignment
        assert again.seed == 9 and again.fractions == (0.6, 0.2, 0.2)
    doc = json.loads(text)
    assert doc["hash"] == split.hash
    assert set(doc["patients"]["test"]) == _patients(split.test)


def test_from_json_refuses_a_different_index(tmp_path: Path) -> None:
    split = split_by_patient(_index(), seed=0)
    text = split.to_json()
    rows = list(_index())
    extra = ScanRecord("CP", 1, "new", "n", 3, Path("x"))
    with pytest.raises(DatasetLayoutError, match="not in the split"):
        Split.from_json(text, ScanIndex([*rows, extra], CCII_CLASSES))
    fewer = ScanIndex(rows[1:], CCII_CLASSES)
    with pytest.raises(DatasetLayoutError, match="1 missing"):
        Split.from_json(text, fewer)
    assert Split.from_json(text, fewer, strict=False).hash != split.hash
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetLayoutError) as info:
        Split.from_json(bad, fewer)
    assert str(bad) in str(info.value)
    with pytest.raises(DatasetNotFoundError):
        Split.from_json(tmp_path / "none.json", fewer)
    with pytest.raises(DatasetLayoutError, match="not a resnet3d split"):
        Split.from_json('{"format": "other"}', fewer)


@pytest.mark.parametrize(
    "fractions", [(0.5, 0.5), (0.8, 0.1, 0.2), (1.2, -0.1, -0.1), (float("nan"), 0.5, 0.5)]
)
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_by_patient(_index(), fractions)


def test_split_names() -> None:
    split = split_by_patient(_index(), seed=0)
    assert split["valid"] is split.valid
    with pytest.raises(KeyError, match="Did you mean 'valid'"):
        split["val"]
    with pytest.raises(TypeError):
        split_by_patient(_index(), seed=1.5)  # type: ignore[arg-type]
