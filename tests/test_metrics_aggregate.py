"""Aggregation to scan/patient level and bootstrap intervals, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from resnet3d import metrics

# Five volumes from three scans; scan "s2" appears first, so it is group 0.
PROBS = np.array(
    [
        [0.6, 0.3, 0.1],  # s2
        [0.2, 0.7, 0.1],  # s1
        [0.4, 0.4, 0.2],  # s2
        [0.1, 0.1, 0.8],  # s3
        [0.2, 0.5, 0.3],  # s2
    ]
)
SCANS = ["s2", "s1", "s2", "s3", "s2"]
LABELS = [0, 1, 0, 2, 0]


def test_mean_by_hand() -> None:
    out = metrics.aggregate(PROBS, SCANS, "mean", labels=LABELS)
    assert out.groups == ["s2", "s1", "s3"]  # first-appearance order
    np.testing.assert_allclose(
        out.probs,
        [[(0.6 + 0.4 + 0.2) / 3, (0.3 + 0.4 + 0.5) / 3, (0.1 + 0.2 + 0.3) / 3],
         [0.2, 0.7, 0.1],
         [0.1, 0.1, 0.8]],
        atol=1e-15,
    )  # fmt: skip
    assert out.labels is not None and out.labels.tolist() == [0, 1, 2]
    assert out.first_index.tolist() == [0, 1, 3]
    assert out.counts.tolist() == [3, 1, 1]


def test_max_by_hand() -> None:
    out = metrics.aggregate(PROBS, SCANS, "max")
    # s2: per-class maxima (0.6, 0.5, 0.3), rescaled to sum to 1.
    np.testing.assert_allclose(out.probs[0], np.array([0.6, 0.5, 0.3]) / 1.4, atol=1e-15)
    np.testing.assert_allclose(out.probs[1:], PROBS[[1, 3]], atol=1e-15)
    assert out.labels is None


def test_vote_by_hand() -> None:
    out = metrics.aggregate(PROBS, SCANS, "vote")
    # s2 votes: argmax 0, 0 (a 0.4/0.4 tie goes to the lower index), 1.
    np.testing.assert_allclose(out.probs[0], [2 / 3, 1 / 3, 0.0], atol=1e-15)
    np.testing.assert_allclose(out.probs[1:], [[0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0)


def test_logits_are_softmaxed_before_pooling() -> None:
    logits = np.log(PROBS) - 7.0
    out = metrics.aggregate(logits, SCANS, "mean", input="logits")
    np.testing.assert_allclose(out.probs, metrics.aggregate(PROBS, SCANS).probs, atol=1e-12)


def test_two_levels_volume_to_scan_to_patient() -> None:
    torch = pytest.importorskip("torch")
    patients = np.array(["p1", "p2", "p1", "p1", "p1"])  # s2 and s3 belong to p1
    scans = metrics.aggregate(
        torch.tensor(PROBS), SCANS, "mean", labels=torch.tensor([0, 1, 0, 0, 0])
    )
    per_patient = metrics.aggregate(
        scans.probs, patients[scans.first_index], "mean", labels=scans.labels
    )
    assert per_patient.groups == ["p1", "p2"]
    # p1 is the mean of the scan means of s2 and s3 (scan-weighted, not volume-weighted).
    np.testing.assert_allclose(per_patient.probs[0], (scans.probs[0] + scans.probs[2]) / 2)
    assert per_patient.labels is not None and per_patient.labels.tolist() == [0, 1]


def test_group_ids_from_arrays_and_tensors() -> None:
    torch = pytest.importorskip("torch")
    ids = torch.tensor([7, 3, 7, 9, 7])
    out = metrics.aggregate(PROBS, ids)
    assert out.groups == [7, 3, 9] and all(type(g) is int for g in out.groups)
    assert metrics.aggregate(PROBS, np.array(SCANS)).groups == ["s2", "s1", "s3"]


def test_group_with_two_labels_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"group 's2' has samples with different labels \[0, 1\]"):
        metrics.aggregate(PROBS, SCANS, labels=[0, 1, 0, 2, 1])
    with pytest.raises(ValueError, match="one label per sample"):
        metrics.aggregate(PROBS, SCANS, labels=[0, 1])
    with pytest.raises(TypeError, match="not hashable"):
        metrics.aggregate(PROBS, [[1], [2], [1], [3], [1]])
    with pytest.raises(TypeError, match="single string"):
        metrics.aggregate(PROBS[:1], "s")


# --- bootstrap ---------------------------------------------------------------------------


def mean_metric(_t: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean(s))


def test_bootstrap_is_deterministic_per_seed() -> None:
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 50), rng.normal(size=50)
    a = metrics.bootstrap_ci(mean_metric, y, s, n=200, seed=3)
    b = metrics.bootstrap_ci(mean_metric, y, s, n=200, seed=3)
    c = metrics.bootstrap_ci(mean_metric, y, s, n=200, seed=4)
    assert a == b and a != c
    assert a.low < a.estimate < a.high and a.estimate == pytest.approx(s.mean())
    assert (a.n_resamples, a.n_skipped, a.alpha) == (200, 0, 0.05)


def test_bootstrap_matches_normal_theory() -> None:
    # For the mean of 400 standard normal draws the 95% interval is mean +- 1.96 sd / sqrt(n).
    s = np.random.default_rng(1).normal(size=400)
    ci = metrics.bootstrap_ci(mean_metric, np.zeros(400), s, n=2000, seed=0)
    half = 1.96 * s.std() / math.sqrt(400)
    assert ci.low == pytest.approx(s.mean() - half, abs=0.15 * half)
    assert ci.high == pytest.approx(s.mean() + half, abs=0.15 * half)


def test_bootstrap_percentiles_of_the_resampled_values() -> None:
    # A metric that records what it sees: the interval must be the 2.5/97.5 percentiles of it.
    seen: list[float] = []

    def recording(t: np.ndarray, s: np.ndarray) -> float:
        seen.append(float(np.mean(s)))
        return seen[-1]

    s = np.arange(30, dtype=float)
    ci = metrics.bootstrap_ci(recording, s, s, n=300, seed=0, alpha=0.1)
    values = np.array(seen[1:])  # the first call is the point estimate on the full data
    assert values.size == 300
    np.testing.assert_allclose([ci.low, ci.high], np.percentile(values, [5, 95]))


def test_bootstrap_resamples_whole_groups() -> None:
    groups = np.repeat(np.arange(10), 3)  # ten patients, three volumes each

    def whole_groups_only(_t: np.ndarray, g: np.ndarray) -> float:
        counts = np.bincount(g, minlength=10)
        return float(np.all(counts % 3 == 0))

    by_group = metrics.bootstrap_ci(whole_groups_only, groups, groups, n=200, groups=groups)
    assert by_group.low == by_group.high == 1.0
    by_sample = metrics.bootstrap_ci(whole_groups_only, groups, groups, n=200)
    assert by_sample.low == 0.0  # per-sample resampling splits patients


def test_bootstrap_skips_and_counts_undefined_resamples() -> None:
    y = np.array([1] + [0] * 9)
    s = np.linspace(0, 1, 10)
    failures = 0

    def needs_both_classes(t: np.ndarray, score: np.ndarray) -> float:
        nonlocal failures
        if t.min() == t.max():
            failures += 1
            raise ValueError("one class only")
        return metrics.roc_auc(t, score)

    ci = metrics.bootstrap_ci(needs_both_classes, y, s, n=400, seed=0)
    # The single positive is missing from a resample with probability 0.9**10 = 0.35.
    assert ci.n_skipped == failures and 0.25 * 400 < failures < 0.45 * 400
    assert 0.0 <= ci.low <= ci.high <= 1.0

    with pytest.warns(metrics.UndefinedMetricWarning, match="all 50"):
        nan_ci = metrics.bootstrap_ci(lambda t, p: float("nan"), y, s, n=50)
    assert math.isnan(nan_ci.low) and nan_ci.n_skipped == 50
    assert nan_ci.to_dict()["low"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n": 0}, "n "), ({"alpha": 1.0}, "alpha"), ({"alpha": 0}, "alpha")],
)
def test_bootstrap_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.bootstrap_ci(mean_metric, [0, 1], [0.2, 0.3], **kwargs)


def test_bootstrap_does_not_hide_a_broken_metric() -> None:
    with pytest.raises(KeyError):
        metrics.bootstrap_ci(lambda t, s: {}["x"], [0, 1], [0.2, 0.3])
