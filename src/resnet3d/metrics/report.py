"""One object with everything a reader of a CT classification paper asks for."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from .._utils import check_choice
from ._inputs import (
    ScoreInput,
    ZeroDivision,
    as_list,
    as_probabilities,
    as_targets,
    check_same_length,
    check_zero_division,
)
from .aggregation import HOWS, aggregate, group_codes
from .bootstrap import (
    ConfidenceInterval,
    check_bootstrap_args,
    percentile_interval,
    resample_indices,
)
from .classification import _counts, normalize_confusion, prf_from_counts, specificity_from_counts
from .ranking import RocCurve, _binary_auc, _curve, _warn_undefined_auc, average_auc, per_class_auc

__all__ = ["ClassificationReport", "classification_report"]

AVERAGED = ("precision", "recall", "f1", "specificity", "auroc")
PER_CLASS = ("precision", "recall", "f1", "specificity", "auroc")


def _py(value: Any) -> Any:
    """Numpy scalars/arrays to plain Python; NaN to None (strict JSON has no NaN)."""
    if isinstance(value, np.ndarray):
        return [_py(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_py(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _py(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, ConfidenceInterval):
        return value.to_dict()
    return value


@dataclass(frozen=True, eq=False)
class ClassificationReport:
    """Per-class and averaged metrics, the confusion matrix and optional intervals.

    Build it with :func:`classification_report` (or :class:`MetricAccumulator.compute`).
    ``print(report)`` shows the markdown table.

    Attributes:
        labels: Class names in index order.
        level: ``"sample"``, or ``"group"`` when predictions were pooled per group.
        n_samples: Rows the metrics were computed on (groups when ``level="group"``).
        n_inputs: Rows given (before pooling).
        accuracy: Fraction of correct argmax predictions.
        precision: Per-class precision, shape ``(C,)``; likewise ``recall``, ``f1``,
            ``specificity`` and ``auroc`` (one-vs-rest, NaN for a class absent from
            ``y_true``).
        support: True samples per class, shape ``(C,)``.
        macro: Unweighted means over classes: ``precision``, ``recall``, ``f1``,
            ``specificity``, ``auroc`` (NaN if some class's AUROC is undefined).
        micro: From global counts (precision = recall = F1 = accuracy for single-label
            data) and the micro-averaged AUROC.
        weighted: Means weighted by support.
        confusion_matrix: Counts, shape ``(C, C)``, rows true, columns predicted.
        intervals: With ``ci=True``: :class:`ConfidenceInterval` for ``accuracy``,
            ``macro_precision``, ``macro_recall``, ``macro_f1``, ``macro_specificity``,
            ``macro_auroc``; else ``None``.
        class_intervals: With ``ci=True``: ``{class name: {metric: ConfidenceInterval}}``.
        roc_curves: One-vs-rest :class:`RocCurve` per class (for plotting).
    """

    labels: list[str]
    level: str
    n_samples: int
    n_inputs: int
    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    specificity: np.ndarray
    auroc: np.ndarray
    support: np.ndarray
    macro: dict[str, float]
    micro: dict[str, float]
    weighted: dict[str, float]
    confusion_matrix: np.ndarray
    intervals: dict[str, ConfidenceInterval] | None = None
    class_intervals: dict[str, dict[str, ConfidenceInterval]] | None = None
    roc_curves: tuple[RocCurve, ...] = field(default=(), repr=False)

    def normalized_confusion_matrix(
        self, normalize: Literal["true", "pred", "all"] = "true"
    ) -> np.ndarray:
        """The confusion matrix as fractions (``"true"``: each row sums to 1, the paper's
        normalized confusion matrix)."""
        check_choice("normalize", normalize, ("true", "pred", "all"))
        return normalize_confusion(self.confusion_matrix, normalize)

    def to_dict(self, include_curves: bool = False) -> dict[str, Any]:
        """Everything as plain Python (floats, ints, strings, lists, dicts).

        Undefined values (NaN) become ``None``, so ``json.dumps(report.to_dict(),
        allow_nan=False)`` works.

        Args:
            include_curves: Also include the ROC points per class (can be long).

        Returns:
            A JSON-able dict.
        """
        per_class = {
            name: {
                "precision": self.precision[i],
                "recall": self.recall[i],
                "f1": self.f1[i],
                "specificity": self.specificity[i],
                "auroc": self.auroc[i],
                "support": self.support[i],
            }
            for i, name in enumerate(self.labels)
        }
        out: dict[str, Any] = {
            "labels": list(self.labels),
            "level": self.level,
            "n_samples": self.n_samples,
            "n_inputs": self.n_inputs,
            "accuracy": self.accuracy,
            "per_class": per_class,
            "macro": self.macro,
            "micro": self.micro,
            "weighted": self.weighted,
            "confusion_matrix": self.confusion_matrix,
            "normalized_confusion_matrix": self.normalized_confusion_matrix("true"),
            "intervals": self.intervals,
            "class_intervals": self.class_intervals,
        }
        if include_curves:
            out["roc_curves"] = {
                name: {"fpr": c.fpr, "tpr": c.tpr, "thresholds": c.thresholds}
                for name, c in zip(self.labels, self.roc_curves)
            }
        return cast(dict[str, Any], _py(out))

    def to_markdown(self, digits: int = 4) -> str:
        """The report as markdown tables (per class, averages, confusion matrix).

        Args:
            digits: Decimals shown.

        Returns:
            Markdown text; undefined values show as ``n/a``, intervals as ``[low, high]``.
        """

        def fmt(value: float, ci: ConfidenceInterval | None = None) -> str:
            text = "n/a" if not math.isfinite(float(value)) else f"{float(value):.{digits}f}"
            if ci is not None and math.isfinite(ci.low):
                text += f" [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"
            return text

        def cci(name: str, metric: str) -> ConfidenceInterval | None:
            return self.class_intervals[name][metric] if self.class_intervals else None

        def oci(key: str) -> ConfidenceInterval | None:
            return self.intervals.get(key) if self.intervals else None

        unit = "groups" if self.level == "group" else "samples"
        lines = [
            f"Classification report: {self.n_samples} {unit}"
            + (f" (pooled from {self.n_inputs} inputs)" if self.level == "group" else "")
            + f", {len(self.labels)} classes",
            "",
            "| class | precision | recall | F1 | specificity | AUROC | support |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, name in enumerate(self.labels):
            cells = [fmt(getattr(self, m)[i], cci(name, m)) for m in PER_CLASS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {int(self.support[i])} |")
        total = int(self.support.sum())
        macro = [fmt(self.macro[m], oci(f"macro_{m}")) for m in AVERAGED]
        lines.append("| macro avg | " + " | ".join(macro) + f" | {total} |")
        lines.append(
            "| weighted avg | "
            + " | ".join(fmt(self.weighted[m]) for m in AVERAGED)
            + f" | {total} |"
        )
        lines.append(
            "| micro avg | " + " | ".join(fmt(self.micro[m]) for m in AVERAGED) + f" | {total} |"
        )
        lines += ["", f"Accuracy: {fmt(self.accuracy, oci('accuracy'))}"]
        if self.intervals:
            any_ci = next(iter(self.intervals.values()))
            lines.append(
                f"Intervals: {100 * (1 - any_ci.alpha):g}% percentile bootstrap, "
                f"{any_ci.n_resamples} resamples."
            )
        lines += [
            "",
            "Confusion matrix (rows: true class, columns: predicted class):",
            "",
            "| true \\ predicted | " + " | ".join(self.labels) + " |",
            "|---" * (len(self.labels) + 1) + "|",
        ]
        for i, name in enumerate(self.labels):
            row = " | ".join(str(int(v)) for v in self.confusion_matrix[i])
            lines.append(f"| {name} | {row} |")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def plot_confusion_matrix(
        self,
        path: str | Path,
        normalize: Literal["true", "pred", "all"] | None = "true",
        dpi: int = 150,
    ) -> Path:
        """Write the confusion matrix as a heat map (PNG unless the suffix says otherwise).

        Draws with matplotlib (a resnet3d dependency).

        Args:
            path: Output file; parent folders are created.
            normalize: Colour by row fractions (``"true"``, the paper's normalized matrix),
                ``"pred"``, ``"all"``, or ``None`` for counts. Counts are always printed.
            dpi: Resolution.

        Returns:
            The path written.

        Raises:
            ImportError: If matplotlib is not installed.
        """
        from ._plot import plot_confusion

        fractions = None if normalize is None else self.normalized_confusion_matrix(normalize)
        title = "Confusion matrix" + (f" (normalized over {normalize})" if normalize else "")
        return plot_confusion(self.confusion_matrix, self.labels, path, fractions, title, dpi)

    def plot_roc(self, path: str | Path, dpi: int = 150) -> Path:
        """Write the one-vs-rest ROC curves, one per class with its AUROC, as an image.

        Draws with matplotlib (a resnet3d dependency). Classes whose AUROC is
        undefined are left out of the plot.

        Args:
            path: Output file (PNG unless the suffix says otherwise); parents are created.
            dpi: Resolution.

        Returns:
            The path written.

        Raises:
            ImportError: If matplotlib is not installed.
        """
        from ._plot import plot_roc_curves

        macro = self.macro["auroc"]
        title = "ROC, one class vs rest" + (
            f" (macro AUROC {macro:.3f})" if math.isfinite(macro) else ""
        )
        return plot_roc_curves(self.roc_curves, self.auroc, self.labels, path, title, dpi)


class _ResampleMetrics:
    """Every bootstrapped metric of a resample, from the resample's per-sample counts.

    A resample is summarised by how often each original sample was drawn (``w``), so
    nothing is re-sorted per resample: the confusion matrix is a weighted bincount, and
    each class's AUROC is the Mann-Whitney statistic over tie groups of the scores sorted
    once up front (equal to the trapezoid ROC area, ties counting one half).

    Output layout: accuracy, macro precision/recall/f1/specificity/auroc, then per class
    precision, recall, f1, specificity, auroc (C values each); NaN where undefined.
    """

    def __init__(
        self, t: np.ndarray, probs: np.ndarray, num_classes: int, zero_division: ZeroDivision
    ) -> None:
        self.k = num_classes
        self.zero_division = zero_division
        self.cells = t * num_classes + probs.argmax(axis=1)
        self.sorted: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        for c in range(num_classes):
            order = np.argsort(probs[:, c], kind="stable")
            score = probs[order, c]
            tie_group = np.r_[0, np.cumsum(np.diff(score) != 0)]
            self.sorted.append((order, tie_group, t[order] == c, int(tie_group[-1]) + 1))

    def auc(self, w: np.ndarray) -> np.ndarray:
        out = np.full(self.k, np.nan)
        for c, (order, tie_group, positive, n_groups) in enumerate(self.sorted):
            ws = w[order]
            pos = np.bincount(tie_group, ws * positive, minlength=n_groups)
            neg = np.bincount(tie_group, ws * ~positive, minlength=n_groups)
            n_pos, n_neg = pos.sum(), neg.sum()
            if n_pos > 0 and n_neg > 0:
                below = np.cumsum(neg) - neg  # negatives scored strictly lower
                out[c] = float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))
        return out

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        w = np.bincount(idx, minlength=self.cells.size).astype(np.float64)
        cm = np.bincount(self.cells, weights=w, minlength=self.k * self.k).reshape(self.k, -1)
        acc = np.trace(cm) / cm.sum()
        macro = prf_from_counts(cm, "macro", self.zero_division, warn=False)
        macro_spec = specificity_from_counts(cm, "macro", self.zero_division, warn=False)
        # Per class, a zero denominator means the class is absent from (or never
        # predicted in) this resample: undefined there, so skipped rather than counted 0.
        per = prf_from_counts(cm, None, np.nan, warn=False)
        spec = specificity_from_counts(cm, None, np.nan, warn=False)
        auc = self.auc(w)
        return np.concatenate(
            [
                [acc, macro.precision, macro.recall, macro.f1, macro_spec, np.mean(auc)],
                per.precision,
                per.recall,
                per.f1,
                spec,
                auc,
            ]
        )


def _bootstrap(
    t: np.ndarray,
    probs: np.ndarray,
    num_classes: int,
    zero_division: ZeroDivision,
    units: list[Any] | None,
    n: int,
    alpha: float,
    seed: int | None,
    estimates: np.ndarray,
    labels: list[str],
) -> tuple[dict[str, ConfidenceInterval], dict[str, dict[str, ConfidenceInterval]]]:
    values = np.full((n, estimates.size), np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        evaluate = _ResampleMetrics(t, probs, num_classes, zero_division)
        for i, idx in enumerate(resample_indices(t.shape[0], units, n, seed)):
            values[i] = evaluate(idx)

    def interval(col: int) -> ConfidenceInterval:
        return percentile_interval(values[:, col], float(estimates[col]), alpha, n)

    overall_keys = ["accuracy", *(f"macro_{m}" for m in AVERAGED)]
    intervals = {key: interval(col) for col, key in enumerate(overall_keys)}
    class_intervals: dict[str, dict[str, ConfidenceInterval]] = {name: {} for name in labels}
    base = len(overall_keys)
    for m_index, metric in enumerate(PER_CLASS):
        for k, name in enumerate(labels):
            class_intervals[name][metric] = interval(base + m_index * num_classes + k)
    return intervals, class_intervals


def classification_report(
    y_true: Any,
    y_prob: Any,
    labels: Sequence[str] | None = None,
    *,
    groups: Any = None,
    how: Literal["mean", "max", "vote"] = "mean",
    input: ScoreInput = "probs",
    ci: bool = False,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    ci_groups: Any = None,
    zero_division: ZeroDivision = "warn",
) -> ClassificationReport:
    """Per-class precision/recall/F1/specificity/AUROC, averages, accuracy, the confusion
    matrix and (optionally) bootstrap intervals, in one object.

    Predictions are the argmax of the probabilities. With ``groups`` the predictions are
    first pooled per group (see :func:`aggregate`), giving a scan- or patient-level report.

    Args:
        y_true: True class indices, shape ``(N,)``.
        y_prob: Class scores, shape ``(N, C)``.
        labels: Class names in index order (default ``"0"``, ``"1"``, ...).
        groups: Optional group id per sample (scan or patient ids): report per group.
        how: Pooling for ``groups``: ``"mean"``, ``"max"`` or ``"vote"``.
        input: ``"probs"`` (validated) or ``"logits"`` (softmax in float64).
        ci: Add percentile bootstrap intervals for accuracy, the macro averages and every
            per-class metric.
        n_bootstrap: Resamples for the intervals.
        alpha: One minus the coverage.
        seed: Resampling seed (same seed, same intervals).
        ci_groups: Optional id per input sample (e.g. patient ids) to resample whole
            groups; must be constant within each of ``groups``. Without it, the reported
            rows (samples, or groups when pooled) are resampled.
        zero_division: As in :func:`precision_recall_f1`. In resamples, per-class values
            with a zero denominator are skipped rather than set.

    Returns:
        A :class:`ClassificationReport`.

    Raises:
        ValueError: Bad labels or scores (see :func:`roc_auc`), a ``labels`` list of the
            wrong length, a group with two labels, a ``ci_groups`` id that changes within
            one of ``groups``, bad bootstrap settings.
    """
    check_zero_division(zero_division)
    check_choice("how", how, HOWS)
    if ci:
        check_bootstrap_args(n_bootstrap, alpha)
    probs = as_probabilities(y_prob, input, "y_prob")
    num_classes = probs.shape[1]
    if labels is None:
        names = [str(k) for k in range(num_classes)]
    else:
        if isinstance(labels, str):
            raise TypeError(f"labels must be a list of class names, got the string {labels!r}")
        names = [str(name) for name in labels]
        if len(names) != num_classes:
            raise ValueError(
                f"labels has {len(names)} names {names} but y_prob has {num_classes} columns"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"labels must be distinct, got {names}")
    t = as_targets(y_true, "y_true", num_classes)
    check_same_length(t, probs, "y_true", "y_prob")
    n_inputs = t.shape[0]
    units = None if ci_groups is None else as_list(ci_groups, "ci_groups")
    if units is not None and len(units) != n_inputs:
        raise ValueError(f"ci_groups has {len(units)} ids but there are {n_inputs} samples")
    level = "sample"
    if groups is not None:
        pooled = aggregate(probs, groups, how, labels=t)
        # labels were passed, so pooled.labels is set
        probs, t, level = pooled.probs, cast(np.ndarray, pooled.labels).astype(np.int64), "group"
        if units is not None:
            _, codes, _ = group_codes(as_list(groups, "groups"))
            unit_of_group = [units[i] for i in pooled.first_index]
            for i, u in enumerate(units):
                if u != unit_of_group[codes[i]]:
                    group = pooled.groups[codes[i]]
                    raise ValueError(
                        f"ci_groups must be constant within each group: group {group!r} has "
                        f"ci_groups ids {unit_of_group[codes[i]]!r} and {u!r}"
                    )
            units = unit_of_group

    pred = probs.argmax(axis=1)
    cm = _counts(t, pred, num_classes)
    support = cm.sum(axis=1)
    per = prf_from_counts(cm, None, zero_division)
    spec = specificity_from_counts(cm, None, zero_division)
    auc = per_class_auc(t, probs)
    undefined = np.flatnonzero(np.isnan(auc)).tolist()
    if undefined:
        _warn_undefined_auc(undefined)
    weights = support.astype(np.float64)

    def averaged(average: Literal["macro", "micro", "weighted"]) -> dict[str, float]:
        with warnings.catch_warnings():
            # The per-class pass above already warned about any zero division.
            warnings.simplefilter("ignore")
            prf = prf_from_counts(cm, average, zero_division)
            sp = specificity_from_counts(cm, average, zero_division)
        if average == "micro":
            onehot = t[:, None] == np.arange(num_classes)
            auroc = _binary_auc(onehot.ravel(), probs.ravel())
        else:
            auroc = average_auc(auc, weights, average)
        return {
            "precision": float(prf.precision),
            "recall": float(prf.recall),
            "f1": float(prf.f1),
            "specificity": float(sp),
            "auroc": float(auroc),
        }

    macro = averaged("macro")
    acc = float(np.trace(cm) / cm.sum())
    curves = tuple(
        _curve(t == k, probs[:, k], drop_intermediate=True, warn=False) for k in range(num_classes)
    )
    intervals = class_intervals = None
    if ci:
        estimates = np.concatenate(
            [
                [acc, *(macro[m] for m in AVERAGED)],
                per.precision,
                per.recall,
                per.f1,
                spec,
                auc,
            ]
        )
        intervals, class_intervals = _bootstrap(
            t,
            probs,
            num_classes,
            zero_division,
            units,
            int(n_bootstrap),
            float(alpha),
            seed,
            estimates,
            names,
        )
    return ClassificationReport(
        labels=names,
        level=level,
        n_samples=int(t.shape[0]),
        n_inputs=int(n_inputs),
        accuracy=acc,
        precision=per.precision,
        recall=per.recall,
        f1=per.f1,
        specificity=spec,
        auroc=auc,
        support=support,
        macro=macro,
        micro=averaged("micro"),
        weighted=averaged("weighted"),
        confusion_matrix=cm,
        intervals=intervals,
        class_intervals=class_intervals,
        roc_curves=curves,
    )
