"""Count-based classification metrics: confusion matrix, accuracy, precision, recall, F1,
specificity, and the paper's binary one-vs-rest view (numpy only).

Every function takes class indices (lists, numpy arrays or torch tensors on any device)
and equals the scikit-learn function it is named after, zero-division rules included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from .._utils import check_choice, did_you_mean
from ._inputs import (
    ScoreInput,
    ZeroDivision,
    as_probabilities,
    as_targets,
    check_num_classes,
    check_same_length,
    check_zero_division,
    divide,
    nan_average,
    pair_targets,
)
from .ranking import _binary_auc, _warn_undefined_auc

__all__ = [
    "BinaryMetrics",
    "PrecisionRecallF1",
    "accuracy",
    "confusion_matrix",
    "one_vs_rest",
    "precision_recall_f1",
    "specificity",
]

Average = Literal["macro", "micro", "weighted"]
AVERAGES = ("macro", "micro", "weighted")
NORMALIZE = ("true", "pred", "all")


def _counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    num_classes: int | None = None,
    normalize: Literal["true", "pred", "all"] | None = None,
) -> np.ndarray:
    """Confusion matrix: rows are true classes, columns predicted classes.

    Equals ``sklearn.metrics.confusion_matrix(y_true, y_pred, labels=range(num_classes),
    normalize=normalize)``.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_pred: Predicted class indices, shape ``(N,)``.
        num_classes: Number of classes ``C``; inferred as ``max(y_true, y_pred) + 1`` when
            ``None``. Pass it so a class nobody used still gets a row and a column.
        normalize: ``None`` (counts), ``"true"`` (rows sum to 1: recall on the diagonal),
            ``"pred"`` (columns sum to 1: precision on the diagonal) or ``"all"``. An
            all-zero row or column stays 0.

    Returns:
        ``(C, C)`` int64 counts, or float64 fractions when normalized.

    Raises:
        ValueError: Empty or mismatched inputs, labels outside ``[0, num_classes)``, an
            unknown ``normalize``.

    Shape:
        ``(N,), (N,) -> (C, C)``.
    """
    if normalize is not None:
        check_choice("normalize", normalize, NORMALIZE)
    t, p, k = pair_targets(y_true, y_pred, num_classes)
    cm = _counts(t, p, k)
    if normalize is None:
        return cm
    return normalize_confusion(cm, normalize)


def normalize_confusion(cm: np.ndarray, normalize: str) -> np.ndarray:
    """Normalize counts as scikit-learn does (0/0 becomes 0)."""
    with np.errstate(all="ignore"):
        if normalize == "true":
            out = cm / cm.sum(axis=1, keepdims=True)
        elif normalize == "pred":
            out = cm / cm.sum(axis=0, keepdims=True)
        else:
            out = cm / cm.sum()
    return np.nan_to_num(out)


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of samples whose predicted class equals the true class.

    Equals ``sklearn.metrics.accuracy_score``.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_pred: Predicted class indices, shape ``(N,)``.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ValueError: Empty or mismatched inputs, negative or non-integer labels.
    """
    t, p, _ = pair_targets(y_true, y_pred, None)
    return float(np.average(t == p))


class PrecisionRecallF1(NamedTuple):
    """Precision, recall and F1, per class (arrays) or averaged (floats).

    Attributes:
        precision: ``TP / (TP + FP)``.
        recall: ``TP / (TP + FN)`` (sensitivity).
        f1: ``2 TP / (2 TP + FP + FN)``, which equals ``2 P R / (P + R)``.
        support: Samples per true class, always per class, shape ``(C,)``.
    """

    precision: Any
    recall: Any
    f1: Any
    support: np.ndarray


def _check_average(average: Any) -> None:
    if average is not None and (not isinstance(average, str) or average not in AVERAGES):
        hint = did_you_mean(average, AVERAGES) if isinstance(average, str) else ""
        raise ValueError(
            f"average={average!r} is not supported; choose one of {[None, *AVERAGES]}.{hint}"
        )


def prf_from_counts(
    cm: np.ndarray, average: Average | None, zero_division: ZeroDivision, warn: bool = True
) -> PrecisionRecallF1:
    """Precision, recall and F1 from a confusion matrix (scikit-learn's arithmetic)."""
    tp = np.diag(cm).astype(np.float64)
    pred_sum = cm.sum(axis=0).astype(np.float64)
    true_sum = cm.sum(axis=1).astype(np.float64)
    support = cm.sum(axis=1)
    if average == "micro":
        tp, pred_sum, true_sum = (np.array([a.sum()]) for a in (tp, pred_sum, true_sum))
    precision = divide(tp, pred_sum, zero_division, "Precision", "predicted", warn)
    recall = divide(tp, true_sum, zero_division, "Recall", "true", warn)
    f1 = divide(2.0 * tp, true_sum + pred_sum, zero_division, "F1", "true nor predicted", warn)
    if average is None:
        return PrecisionRecallF1(precision, recall, f1, support)
    weights = true_sum if average == "weighted" else None
    return PrecisionRecallF1(
        nan_average(precision, weights),
        nan_average(recall, weights),
        nan_average(f1, weights),
        support,
    )


def precision_recall_f1(
    y_true: Any,
    y_pred: Any,
    num_classes: int | None = None,
    *,
    average: Average | None = None,
    zero_division: ZeroDivision = "warn",
) -> PrecisionRecallF1:
    """Precision, recall and F1 per class or averaged.

    Equals ``sklearn.metrics.precision_recall_fscore_support(y_true, y_pred,
    labels=range(num_classes), average=average, zero_division=zero_division)``.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_pred: Predicted class indices, shape ``(N,)``.
        num_classes: Number of classes ``C`` (inferred when ``None``).
        average: ``None`` (per class), ``"macro"`` (unweighted mean over classes),
            ``"micro"`` (from global counts; equals accuracy for single-label data) or
            ``"weighted"`` (mean weighted by support). NaN per-class values (from
            ``zero_division=nan``) are left out of the averages.
        zero_division: Value for a ratio with a zero denominator (a class never predicted
            has no precision, a class absent from ``y_true`` no recall): ``"warn"`` gives
            0.0 and an :class:`UndefinedMetricWarning` (scikit-learn's default), or
            ``0.0``, ``1.0``, ``nan`` silently.

    Returns:
        A :class:`PrecisionRecallF1` ``(precision, recall, f1, support)``: arrays of
        shape ``(C,)`` when ``average`` is ``None``, else floats; ``support`` is always
        the per-class count.

    Raises:
        ValueError: Empty or mismatched inputs, labels outside ``[0, num_classes)``, an
            unknown ``average`` or ``zero_division``.
    """
    _check_average(average)
    check_zero_division(zero_division)
    t, p, k = pair_targets(y_true, y_pred, num_classes)
    return prf_from_counts(_counts(t, p, k), average, zero_division)


def specificity_from_counts(
    cm: np.ndarray, average: Average | None, zero_division: ZeroDivision, warn: bool = True
) -> Any:
    """True negative rate ``TN / (TN + FP)`` from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    true_sum = cm.sum(axis=1).astype(np.float64)
    den = tn + fp
    if average == "micro":
        tn, den = np.array([tn.sum()]), np.array([den.sum()])
    spec = divide(tn, den, zero_division, "Specificity", "negative (true)", warn)
    if average is None:
        return spec
    return nan_average(spec, true_sum if average == "weighted" else None)


def specificity(
    y_true: Any,
    y_pred: Any,
    num_classes: int | None = None,
    *,
    average: Average | None = None,
    zero_division: ZeroDivision = "warn",
) -> float | np.ndarray:
    """Specificity (true negative rate) ``TN / (TN + FP)``, one class against the rest.

    For class ``k`` this is the recall of "not k"; it equals
    ``sklearn.metrics.recall_score(y_true != k, y_pred != k)``.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_pred: Predicted class indices, shape ``(N,)``.
        num_classes: Number of classes ``C`` (inferred when ``None``).
        average: ``None`` (per class), ``"macro"``, ``"micro"`` (global TN and FP) or
            ``"weighted"`` (weighted by each class's support, as for recall).
        zero_division: As in :func:`precision_recall_f1`; a class is undefined when every
            sample belongs to it (no negatives).

    Returns:
        Array of shape ``(C,)``, or a float when averaged.

    Raises:
        ValueError: As :func:`precision_recall_f1`.
    """
    _check_average(average)
    check_zero_division(zero_division)
    t, p, k = pair_targets(y_true, y_pred, num_classes)
    return specificity_from_counts(_counts(t, p, k), average, zero_division)


@dataclass(frozen=True)
class BinaryMetrics:
    """The paper's binary view: one class (COVID-19) against the rest.

    Attributes:
        positive: Index of the positive class.
        tp: True positives. fp, tn, fn likewise.
        accuracy: ``(TP + TN) / (TP + FP + TN + FN)``.
        precision: ``TP / (TP + FP)``.
        recall: ``TP / (TP + FN)`` (sensitivity).
        specificity: ``TN / (TN + FP)``.
        f1: ``2 P R / (P + R)``, computed as ``2 TP / (2 TP + FP + FN)`` (the same value,
            and still defined when only one of P and R is).
        auroc: Area under the ROC of the positive-class probability (NaN when ``y_true``
            lacks positives or negatives).
    """

    positive: int
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    auroc: float

    def to_dict(self) -> dict[str, int | float | None]:
        """Plain-Python dict (JSON-able: NaN becomes ``None``)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def binary_from_counts(
    tp: int, fp: int, tn: int, fn: int, zero_division: ZeroDivision, warn: bool = True
) -> dict[str, float]:
    """The paper's formulas, with zero denominators handled as in scikit-learn."""

    def ratio(num: float, den: float, what: str, reason: str) -> float:
        return float(divide(np.array([num]), np.array([den]), zero_division, what, reason, warn)[0])

    precision = ratio(tp, tp + fp, "Precision", "predicted positive")
    recall = ratio(tp, tp + fn, "Recall", "true positive")
    spec = ratio(tn, tn + fp, "Specificity", "true negative")
    # 2 TP / (2 TP + FP + FN) is the paper's 2 P R / (P + R) wherever P and R are defined,
    # and stays defined when only one of them is (as scikit-learn computes it).
    f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn, "F1", "true nor predicted positive")
    return {
        "accuracy": (tp + tn) / (tp + fp + tn + fn),
        "precision": precision,
        "recall": recall,
        "specificity": spec,
        "f1": f1,
    }


def _resolve_positive(positive: int | str, labels: Sequence[str] | None, num_classes: int) -> int:
    if isinstance(positive, str):
        if labels is None:
            raise ValueError(
                f"positive={positive!r} is a class name; pass labels=[...] to name the classes "
                "or give the class index"
            )
        names = [str(name) for name in labels]
        if positive not in names:
            raise ValueError(
                f"positive={positive!r} is not one of the labels {names}."
                + did_you_mean(positive, names)
            )
        return names.index(positive)
    if isinstance(positive, bool) or not isinstance(positive, (int, np.integer)):
        raise TypeError(f"positive must be a class index or name, got {positive!r}")
    if not 0 <= int(positive) < num_classes:
        raise ValueError(f"positive={positive} is outside [0, {num_classes})")
    return int(positive)


def one_vs_rest(
    y_true: Any,
    y_prob: Any,
    positive: int | str,
    *,
    labels: Sequence[str] | None = None,
    input: ScoreInput = "probs",
    threshold: float | None = None,
    zero_division: ZeroDivision = "warn",
) -> BinaryMetrics:
    """Binary metrics of one class against all others (the paper's COVID-19 vs rest view).

    A sample is predicted positive when the positive class has the highest probability
    (the three-way prediction, collapsed), or when ``threshold`` is given, when its
    probability is ``>= threshold``.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_prob: Class scores, shape ``(N, C)``.
        positive: The positive class: an index, or a name from ``labels``.
        labels: Class names in index order, needed when ``positive`` is a name.
        input: ``"probs"`` or ``"logits"``.
        threshold: Optional probability threshold for the positive class.
        zero_division: As in :func:`precision_recall_f1`.

    Returns:
        A :class:`BinaryMetrics` with the counts and the paper's formulas.

    Raises:
        ValueError: Bad scores or labels (see :func:`roc_auc`), an unknown class name, a
            threshold outside ``[0, 1]``.
    """
    check_zero_division(zero_division)
    probs = as_probabilities(y_prob, input, "y_prob")
    num_classes = check_num_classes(probs.shape[1])
    if labels is not None and len(labels) != num_classes:
        raise ValueError(f"labels has {len(labels)} names but y_prob has {num_classes} columns")
    t = as_targets(y_true, "y_true", num_classes)
    check_same_length(t, probs, "y_true", "y_prob")
    k = _resolve_positive(positive, labels, num_classes)
    truth = t == k
    if threshold is None:
        pred = probs.argmax(axis=1) == k
    else:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        pred = probs[:, k] >= float(threshold)
    tp = int(np.sum(truth & pred))
    fp = int(np.sum(~truth & pred))
    tn = int(np.sum(~truth & ~pred))
    fn = int(np.sum(truth & ~pred))
    values = binary_from_counts(tp, fp, tn, fn, zero_division)
    auroc = _binary_auc(truth, probs[:, k])
    if math.isnan(auroc):
        _warn_undefined_auc([k])
    return BinaryMetrics(positive=k, tp=tp, fp=fp, tn=tn, fn=fn, auroc=auroc, **values)
