"""ROC curves and the area under them, with exact tie handling (numpy only).

The computation mirrors scikit-learn's ``roc_curve``/``roc_auc_score``: samples are sorted
by score, tied scores are collapsed into one threshold (one ROC point, so ties contribute a
diagonal segment, i.e. half credit), and the area is the trapezoid rule over the points.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, NamedTuple

import numpy as np

from .._utils import check_choice
from ._inputs import (
    ScoreInput,
    UndefinedMetricWarning,
    as_probabilities,
    as_targets,
    check_same_length,
    to_numpy,
)

__all__ = ["RocCurve", "roc_auc", "roc_curve"]

AUC_AVERAGES = ("macro", "weighted", "micro")


class RocCurve(NamedTuple):
    """Points of a ROC curve, by decreasing threshold.

    Attributes:
        fpr: False positive rates, starting at 0.
        tpr: True positive rates, starting at 0.
        thresholds: Score thresholds; ``thresholds[i]`` gives ``(fpr[i], tpr[i])`` when
            predicting positive for ``score >= thresholds[i]``. The first is ``inf``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


def _read_scores_1d(y_score: Any, name: str = "y_score") -> np.ndarray:
    arr, _ = to_numpy(y_score, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one score per sample), got shape {arr.shape}; for several "
            "classes pass one column, e.g. y_score[:, k] with pos_label=k"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one sample is needed")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} holds a non-finite value: {name}[{i}] = {arr[i]}")
    return arr


def _binary_counts(
    positive: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false/true positive counts at each distinct threshold (descending)."""
    order = np.argsort(score, kind="stable")[::-1]
    score = score[order]
    positive = positive[order]
    # The last index of every run of equal scores: all tied samples switch together.
    distinct = np.flatnonzero(np.diff(score))
    idx = np.r_[distinct, score.size - 1]
    tps = np.cumsum(positive, dtype=np.float64)[idx]
    fps = 1.0 + idx - tps
    return fps, tps, score[idx]


def _curve(
    positive: np.ndarray, score: np.ndarray, drop_intermediate: bool, warn: bool = True
) -> RocCurve:
    fps, tps, thresholds = _binary_counts(positive, score)
    if drop_intermediate and fps.shape[0] > 2:
        # Keep only corners: a point collinear with its neighbours changes neither the
        # plotted curve nor the area.
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps = np.r_[0.0, fps]
    tps = np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    if fps[-1] <= 0:
        if warn:
            warnings.warn(
                "No negative samples in y_true: the false positive rate is undefined (NaN).",
                UndefinedMetricWarning,
                stacklevel=3,
            )
        fpr = np.full(fps.shape, np.nan)
    else:
        fpr = fps / fps[-1]
    if tps[-1] <= 0:
        if warn:
            warnings.warn(
                "No positive samples in y_true: the true positive rate is undefined (NaN).",
                UndefinedMetricWarning,
                stacklevel=3,
            )
        tpr = np.full(tps.shape, np.nan)
    else:
        tpr = tps / tps[-1]
    return RocCurve(fpr, tpr, thresholds)


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float((np.diff(x) * (y[1:] + y[:-1]) / 2.0).sum())


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """AUROC of one binary problem; NaN (no warning) when one side is empty."""
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == positive.size:
        return math.nan
    curve = _curve(positive, score, drop_intermediate=True, warn=False)
    return _trapezoid(curve.fpr, curve.tpr)


def roc_curve(
    y_true: Any,
    y_score: Any,
    *,
    pos_label: int | None = None,
    drop_intermediate: bool = True,
) -> RocCurve:
    """ROC curve of a binary problem (equal to ``sklearn.metrics.roc_curve``).

    Args:
        y_true: Labels, shape ``(N,)``. With ``pos_label=None`` they must be 0/1 (or bool);
            otherwise any class indices, read as ``y_true == pos_label`` (one-vs-rest).
        y_score: Scores for the positive class, shape ``(N,)``: probabilities, logits or
            any real score (only the order matters).
        pos_label: The class index counted as positive; ``None`` means binary 0/1 labels.
        drop_intermediate: Drop points collinear with their neighbours (they change
            neither the plot nor the area), as scikit-learn's default does.

    Returns:
        A :class:`RocCurve` ``(fpr, tpr, thresholds)``. If ``y_true`` has no negatives
        (positives), ``fpr`` (``tpr``) is all NaN and an
        :class:`UndefinedMetricWarning` is issued.

    Raises:
        ValueError: Empty or mismatched inputs, non-finite scores, or labels other than
            0/1 when ``pos_label`` is ``None``.

    Shape:
        ``y_true (N,)``, ``y_score (N,)`` -> three arrays of equal length ``<= N + 1``.
    """
    labels = as_targets(y_true, "y_true")
    score = _read_scores_1d(y_score)
    check_same_length(labels, score, "y_true", "y_score")
    if pos_label is None:
        if labels.max() > 1:
            i = int(np.flatnonzero(labels > 1)[0])
            raise ValueError(
                f"y_true must be binary (0/1) when pos_label is None; y_true[{i}] = "
                f"{int(labels[i])}. Pass pos_label=k for class k against the rest."
            )
        positive = labels == 1
    else:
        positive = labels == int(pos_label)
    return _curve(positive, score, bool(drop_intermediate))


def _warn_undefined_auc(classes: list[int]) -> None:
    warnings.warn(
        f"ROC AUC is undefined for class(es) {classes}: y_true has no sample of the class "
        "(or only samples of it), so there is nothing to rank against. Reported as NaN.",
        UndefinedMetricWarning,
        stacklevel=3,
    )


def per_class_auc(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest AUROC per class, NaN (without warning) where undefined."""
    return np.array(
        [_binary_auc(y_true == k, probs[:, k]) for k in range(probs.shape[1])],
        dtype=np.float64,
    )


def average_auc(
    scores: np.ndarray, support: np.ndarray, average: Literal["macro", "weighted"]
) -> float:
    """Average per-class AUROCs the way scikit-learn does.

    ``macro``: the plain mean, NaN if any class is undefined. ``weighted``: weights are the
    class supports, so a class absent from ``y_true`` (weight 0) does not count.
    """
    if average == "macro":
        return float(np.mean(scores))
    values = np.where(support == 0, 0.0, scores)
    return float(np.average(values, weights=support))


def roc_auc(
    y_true: Any,
    y_score: Any,
    *,
    average: Literal["macro", "weighted", "micro"] | None = "macro",
    input: ScoreInput = "probs",
) -> float | np.ndarray:
    """Area under the ROC curve; one-vs-rest for several classes.

    Equals ``sklearn.metrics.roc_auc_score(y_true, y_score, multi_class="ovr",
    labels=range(C), average=average)`` (and the binary ``roc_auc_score`` for 1-D scores),
    ties included.

    Args:
        y_true: Class indices, shape ``(N,)``, in ``[0, C)``.
        y_score: Either ``(N, C)`` class scores (probabilities or logits, see ``input``),
            or ``(N,)`` scores of class 1 for a binary problem (any real score; ``input``
            and ``average`` are then not used).
        average: ``"macro"`` (mean over classes), ``"weighted"`` (weighted by class
            support), ``"micro"`` (one curve over all class/sample pairs) or ``None``
            (per-class array).
        input: ``"probs"`` (validated: in [0, 1], rows sum to 1) or ``"logits"``
            (softmax in float64 first).

    Returns:
        A float, or with ``average=None`` an array of ``C`` per-class AUROCs. A class
        absent from ``y_true`` (or the only class present) has no AUROC: its entry is NaN,
        an :class:`UndefinedMetricWarning` names it, and the macro average is NaN (as in
        scikit-learn) while the weighted average leaves it out.

    Raises:
        ValueError: Empty or mismatched inputs, labels outside ``[0, C)``, non-finite
            scores, rows that are not probabilities with ``input="probs"``, an unknown
            ``average``.

    Shape:
        ``y_true (N,)``, ``y_score (N, C)`` or ``(N,)``.
    """
    if average is not None:
        check_choice("average", average, AUC_AVERAGES)
    score_arr, _ = to_numpy(y_score, "y_score")
    if score_arr.ndim == 1:
        labels = as_targets(y_true, "y_true", 2)
        score = _read_scores_1d(score_arr)
        check_same_length(labels, score, "y_true", "y_score")
        value = _binary_auc(labels == 1, score)
        if math.isnan(value):
            _warn_undefined_auc([int(labels[0])])
        return value
    probs = as_probabilities(y_score, input, "y_score")
    num_classes = probs.shape[1]
    labels = as_targets(y_true, "y_true", num_classes)
    check_same_length(labels, probs, "y_true", "y_score")
    if average == "micro":
        onehot = labels[:, None] == np.arange(num_classes)
        return _binary_auc(onehot.ravel(), probs.ravel())
    scores = per_class_auc(labels, probs)
    undefined = np.flatnonzero(np.isnan(scores)).tolist()
    if undefined:
        _warn_undefined_auc(undefined)
    if average is None:
        return scores
    support = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return average_auc(scores, support, average)
