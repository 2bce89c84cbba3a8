"""Classification metrics at volume, scan and patient level (numpy only).

Inputs are lists, numpy arrays or torch tensors on any device; torch is never imported
here and the model code never is. Scores are declared as probabilities or logits with
``input="probs" | "logits"``. Every count and ranking metric equals its scikit-learn
counterpart (checked to 1e-12 in the test suite), including tied scores and missing classes.

- :func:`confusion_matrix`, :func:`accuracy`, :func:`precision_recall_f1`,
  :func:`specificity`: from class indices.
- :func:`roc_curve`, :func:`roc_auc`: one-vs-rest, exact tie handling.
- :func:`one_vs_rest`: the paper's binary view (COVID-19 against the rest).
- :func:`aggregate`: volumes to scans to patients.
- :func:`bootstrap_ci`: percentile intervals, resampling patients if asked.
- :func:`classification_report` and :class:`MetricAccumulator`: everything at once.
- :func:`require_matplotlib`: check before a long run that the report figures can be drawn.
"""

from __future__ import annotations

from ._inputs import ScoreInput, UndefinedMetricWarning, ZeroDivision, softmax
from ._plot import require_matplotlib
from .accumulator import MetricAccumulator
from .aggregation import Aggregated, aggregate
from .bootstrap import ConfidenceInterval, bootstrap_ci
from .classification import (
    BinaryMetrics,
    PrecisionRecallF1,
    accuracy,
    confusion_matrix,
    one_vs_rest,
    precision_recall_f1,
    specificity,
)
from .ranking import RocCurve, roc_auc, roc_curve
from .report import ClassificationReport, classification_report

__all__ = [
    "Aggregated",
    "BinaryMetrics",
    "ClassificationReport",
    "ConfidenceInterval",
    "MetricAccumulator",
    "PrecisionRecallF1",
    "RocCurve",
    "ScoreInput",
    "UndefinedMetricWarning",
    "ZeroDivision",
    "accuracy",
    "aggregate",
    "bootstrap_ci",
    "classification_report",
    "confusion_matrix",
    "one_vs_rest",
    "precision_recall_f1",
    "require_matplotlib",
    "roc_auc",
    "roc_curve",
    "softmax",
    "specificity",
]
