"""Parity with scikit-learn over many random cases: 2 to 5 classes, missing classes, ties.

Every comparison is to 1e-12 absolute (NaN where scikit-learn gives NaN).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from resnet3d import metrics  # noqa: E402

# The first 12 seeds cover every (class count, missing-class pattern) pair and run in the
# default quick suite; the long sweep is marked slow (CI runs it).
SEEDS = [*range(12), *(pytest.param(s, marks=pytest.mark.slow) for s in range(12, 240))]
ZERO_DIVISIONS = ("warn", 0.0, 1.0, np.nan)


def close(actual, expected) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=0,
        atol=1e-12,
        equal_nan=True,
    )


def random_case(seed: int):
    """Labels, predictions and tie-heavy probabilities; some classes absent on purpose."""
    rng = np.random.default_rng(seed)
    k = 2 + seed % 4
    pattern = (seed // 4) % 3
    if pattern == 0:  # every class present in y_true
        n = int(rng.integers(k, 40))
        y_true = np.r_[np.arange(k), rng.integers(0, k, size=n - k)]
        rng.shuffle(y_true)
    elif pattern == 1:  # some classes absent from y_true
        present = rng.choice(k, size=int(rng.integers(1, k)), replace=False)
        n = int(rng.integers(1, 40))
        y_true = rng.choice(present, size=n)
    else:  # a single class in y_true: every AUROC undefined
        n = int(rng.integers(1, 20))
        y_true = np.full(n, int(rng.integers(0, k)))
    pred_classes = rng.choice(k, size=int(rng.integers(1, k + 1)), replace=False)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(pred_classes, size=n))
    # Small integer weights normalised per row: many exactly tied scores within a column.
    weights = rng.integers(0, 3, size=(n, k)).astype(float)
    weights[weights.sum(axis=1) == 0, 0] = 1.0
    if n > 3:  # repeat some rows verbatim: ties across samples of different classes
        weights[rng.integers(0, n, size=n // 3)] = weights[0]
    probs = weights / weights.sum(axis=1, keepdims=True)
    return k, y_true, y_pred, probs


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_and_accuracy(seed: int) -> None:
    k, y_true, y_pred, _ = random_case(seed)
    labels = list(range(k))
    assert np.array_equal(
        metrics.confusion_matrix(y_true, y_pred, k),
        sk.confusion_matrix(y_true, y_pred, labels=labels),
    )
    for normalize in ("true", "pred", "all"):
        close(
            metrics.confusion_matrix(y_true, y_pred, k, normalize=normalize),
            sk.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
        )
    close(metrics.accuracy(y_true, y_pred), sk.accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_precision_recall_f1(seed: int) -> None:
    k, y_true, y_pred, _ = random_case(seed)
    for zero_division in ZERO_DIVISIONS:
        for average in (None, "macro", "micro", "weighted"):
            with warnings.catch_warnings(record=True) as ours_warned:
                warnings.simplefilter("always")
                ours = metrics.precision_recall_f1(
                    y_true, y_pred, k, average=average, zero_division=zero_division
                )
            with warnings.catch_warnings(record=True) as ref_warned:
                warnings.simplefilter("always")
                ref = sk.precision_recall_fscore_support(
                    y_true,
                    y_pred,
                    labels=list(range(k)),
                    average=average,
                    zero_division=zero_division,
                )
            close(ours.precision, ref[0])
            close(ours.recall, ref[1])
            close(ours.f1, ref[2])
            close(ours.support, np.bincount(y_true, minlength=k))
            if average is None:
                close(ours.support, ref[3])
            # Warn exactly when scikit-learn warns (only with zero_division="warn").
            assert bool(ours_warned) == any(
                w.category.__name__ == "UndefinedMetricWarning" for w in ref_warned
            )


@pytest.mark.parametrize("seed", SEEDS)
def test_specificity(seed: int) -> None:
    k, y_true, y_pred, _ = random_case(seed)
    for zero_division in ZERO_DIVISIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Specificity of class c is the recall of "not c".
            per_class = np.array(
                [
                    sk.recall_score(y_true != c, y_pred != c, zero_division=zero_division)
                    for c in range(k)
                ]
            )
            micro = sk.recall_score(
                np.concatenate([y_true != c for c in range(k)]),
                np.concatenate([y_pred != c for c in range(k)]),
                zero_division=zero_division,
            )
            close(metrics.specificity(y_true, y_pred, k, zero_division=zero_division), per_class)
            close(
                metrics.specificity(
                    y_true, y_pred, k, average="micro", zero_division=zero_division
                ),
                micro,
            )
            defined = ~np.isnan(per_class)
            macro = per_class[defined].mean() if defined.any() else np.nan
            close(
                metrics.specificity(
                    y_true, y_pred, k, average="macro", zero_division=zero_division
                ),
                macro,
            )
            support = np.bincount(y_true, minlength=k)[defined]
            weighted = (
                np.nan
                if not defined.any()
                else np.average(per_class[defined], weights=support)
                if support.sum()
                else per_class[defined].mean()
            )
            close(
                metrics.specificity(
                    y_true, y_pred, k, average="weighted", zero_division=zero_division
                ),
                weighted,
            )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("drop_intermediate", [True, False])
def test_roc_curve(seed: int, drop_intermediate: bool) -> None:
    k, y_true, _, probs = random_case(seed)
    for c in range(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one-class cases warn in both libraries
            ours = metrics.roc_curve(
                y_true, probs[:, c], pos_label=c, drop_intermediate=drop_intermediate
            )
            ref = sk.roc_curve(
                (y_true == c).astype(int), probs[:, c], drop_intermediate=drop_intermediate
            )
        for a, b in zip(ours, ref):
            assert a.shape == b.shape
            close(a, b)


def reference_auc(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class one-vs-rest AUROC from scikit-learn's binary roc_auc_score; NaN if undefined."""
    out = []
    for c in range(probs.shape[1]):
        positive = y_true == c
        if positive.all() or not positive.any():
            out.append(np.nan)
        else:
            out.append(sk.roc_auc_score(positive, probs[:, c]))
    return np.array(out)


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc(seed: int) -> None:
    k, y_true, _, probs = random_case(seed)
    per_class = reference_auc(y_true, probs)
    undefined = np.isnan(per_class)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = metrics.roc_auc(y_true, probs, average=None)
        macro = metrics.roc_auc(y_true, probs, average="macro")
        weighted = metrics.roc_auc(y_true, probs, average="weighted")
    close(ours, per_class)
    # A class absent from y_true (or alone in it): NaN and a warning, never an exception.
    assert any(issubclass(w.category, metrics.UndefinedMetricWarning) for w in caught) == bool(
        undefined.any()
    )
    support = np.bincount(y_true, minlength=k)
    if not undefined.any():
        close(macro, per_class.mean())
        close(weighted, np.average(per_class, weights=support))
        if k > 2:
            # All classes present: the multiclass scikit-learn call is defined; compare to it.
            for average in ("macro", "weighted"):
                close(
                    metrics.roc_auc(y_true, probs, average=average),
                    sk.roc_auc_score(y_true, probs, multi_class="ovr", average=average),
                )
            close(ours, sk.roc_auc_score(y_true, probs, multi_class="ovr", average=None))
        else:
            close(macro, sk.roc_auc_score(y_true, probs[:, 1]))
            close(metrics.roc_auc(y_true, probs[:, 1]), sk.roc_auc_score(y_true, probs[:, 1]))
    else:
        assert np.isnan(macro)
        defined = ~undefined & (support > 0)
        if defined.any():
            close(weighted, np.average(per_class[defined], weights=support[defined]))
    onehot = np.eye(k)[y_true]
    if 0 < onehot.sum() < onehot.size:
        close(
            metrics.roc_auc(y_true, probs, average="micro"),
            sk.roc_auc_score(onehot, probs, average="micro"),
        )


@pytest.mark.parametrize("seed", SEEDS)
def test_one_vs_rest(seed: int) -> None:
    k, y_true, _, probs = random_case(seed)
    positive = seed % k
    truth = y_true == positive
    pred = probs.argmax(axis=1) == positive
    for zero_division in ZERO_DIVISIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = metrics.one_vs_rest(y_true, probs, positive, zero_division=zero_division)
            p, r, f, _ = sk.precision_recall_fscore_support(
                truth, pred, average="binary", zero_division=zero_division
            )
            spec = sk.recall_score(~truth, ~pred, zero_division=zero_division)
        close(ours.accuracy, sk.accuracy_score(truth, pred))
        close([ours.precision, ours.recall, ours.f1, ours.specificity], [p, r, f, spec])
        tn, fp, fn, tp = sk.confusion_matrix(truth, pred, labels=[False, True]).ravel()
        assert (ours.tp, ours.fp, ours.tn, ours.fn) == (tp, fp, tn, fn)
        close(ours.auroc, reference_auc(y_true, probs)[positive])


@pytest.mark.parametrize("seed", range(40))
def test_logits_match_softmax_then_sklearn(seed: int) -> None:
    scipy_special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    y_true = np.r_[np.arange(k), rng.integers(0, k, size=30)]
    logits = rng.normal(scale=5.0, size=(y_true.size, k)).round(1)  # rounding makes ties
    logits[0] += 800.0  # would overflow exp() without max-subtraction
    probs = scipy_special.softmax(logits, axis=1)
    close(metrics.softmax(logits), probs)
    close(
        metrics.roc_auc(y_true, logits, input="logits", average=None), reference_auc(y_true, probs)
    )
