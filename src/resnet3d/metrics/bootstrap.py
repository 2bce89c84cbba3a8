"""Percentile bootstrap confidence intervals, resampling samples or whole groups (numpy)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._inputs import UndefinedMetricWarning, as_list, to_numpy
from .aggregation import group_codes

__all__ = ["ConfidenceInterval", "bootstrap_ci"]

logger = logging.getLogger(__name__)

# A resample where the metric cannot be computed (a class missing from it, say) raises one
# of these or returns NaN; it is skipped and counted rather than failing the whole run.
UNDEFINED_ERRORS = (ValueError, ZeroDivisionError, FloatingPointError)


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval.

    Attributes:
        estimate: The metric on the full data.
        low: Lower bound, the ``alpha / 2`` percentile of the resampled values.
        high: Upper bound, the ``1 - alpha / 2`` percentile.
        alpha: One minus the coverage (0.05 for a 95% interval).
        n_resamples: Resamples drawn.
        n_skipped: Resamples where the metric was undefined (left out of the percentiles).
    """

    estimate: float
    low: float
    high: float
    alpha: float
    n_resamples: int
    n_skipped: int

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain-Python dict (JSON-able: NaN becomes ``None``)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def check_bootstrap_args(n: Any, alpha: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of resamples) must be an int >= 1, got {n!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (0.05 for a 95% interval), got {alpha!r}")


def resample_indices(
    n_samples: int, groups: Any, n: int, seed: int | np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Yield ``n`` bootstrap index arrays over ``n_samples`` samples.

    With ``groups`` (one id per sample), whole groups are drawn with replacement and all
    of a drawn group's samples are taken, so correlated samples (volumes of one patient)
    stay together.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        for _ in range(n):
            yield rng.integers(0, n_samples, size=n_samples)
        return
    ids = as_list(groups, "groups")
    if len(ids) != n_samples:
        raise ValueError(f"groups has {len(ids)} ids but there are {n_samples} samples")
    _, codes, _ = group_codes(ids)
    n_groups = int(codes.max()) + 1
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=n_groups))]
    members = [order[starts[g] : starts[g + 1]] for g in range(n_groups)]
    for _ in range(n):
        drawn = rng.integers(0, n_groups, size=n_groups)
        yield np.concatenate([members[g] for g in drawn])


def percentile_interval(
    values: np.ndarray, estimate: float, alpha: float, n: int
) -> ConfidenceInterval:
    """Summarize resampled values (NaN = undefined) into a :class:`ConfidenceInterval`."""
    finite = values[np.isfinite(values)]
    skipped = int(n - finite.size)
    if finite.size == 0:
        low = high = math.nan
    else:
        low, high = (float(v) for v in np.percentile(finite, [50 * alpha, 100 - 50 * alpha]))
    return ConfidenceInterval(float(estimate), low, high, float(alpha), int(n), skipped)


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: Any,
    y_score: Any,
    *,
    n: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    groups: Any = None,
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of any metric.

    ``metric(y_true[idx], y_score[idx])`` is evaluated on ``n`` resamples drawn with
    replacement; the interval is the ``alpha/2`` and ``1 - alpha/2`` percentiles of the
    values. Resamples where the metric is undefined (it returns NaN or raises
    ``ValueError``/``ZeroDivisionError``) are skipped and counted in ``n_skipped``;
    warnings raised inside resamples are silenced.

    Args:
        metric: A function of ``(y_true, y_score)`` numpy arrays returning a float, e.g.
            ``lambda t, p: roc_auc(t, p)`` or ``lambda t, p: accuracy(t, p.argmax(1))``.
        y_true: Labels, indexed along the first axis (list, array or tensor).
        y_score: Scores or predictions, indexed along the first axis.
        n: Number of resamples.
        alpha: One minus the coverage (0.05 gives a 95% interval).
        seed: Seed of the resampling; the same seed gives the same interval.
        groups: Optional group id per sample (e.g. patient ids). Whole groups are resampled
            so the interval reflects between-patient variation.

    Returns:
        A :class:`ConfidenceInterval`. If every resample is undefined, ``low`` and ``high``
        are NaN and an :class:`UndefinedMetricWarning` is issued.

    Raises:
        ValueError: Empty or mismatched inputs, ``n < 1``, ``alpha`` outside ``(0, 1)``.
        Exception: Whatever ``metric`` raises on the full data (a bug there is not hidden).
    """
    check_bootstrap_args(n, alpha)
    t, _ = to_numpy(y_true, "y_true")
    s, _ = to_numpy(y_score, "y_score")
    if t.ndim == 0 or t.shape[0] == 0:
        raise ValueError("y_true is empty; at least one sample is needed")
    if s.ndim == 0 or s.shape[0] != t.shape[0]:
        raise ValueError(
            f"y_true and y_score have different lengths: {t.shape[0]} and "
            f"{s.shape[0] if s.ndim else 'a scalar'}"
        )
    estimate = float(metric(t, s))
    values = np.full(int(n), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, idx in enumerate(resample_indices(t.shape[0], groups, int(n), seed)):
            try:
                values[i] = float(metric(t[idx], s[idx]))
            except UNDEFINED_ERRORS as error:
                logger.debug("bootstrap resample %d undefined: %s", i, error)
    ci = percentile_interval(values, estimate, float(alpha), int(n))
    if ci.n_skipped == n:
        warnings.warn(
            f"the metric was undefined on all {n} bootstrap resamples; the interval is NaN",
            UndefinedMetricWarning,
            stacklevel=2,
        )
    elif ci.n_skipped:
        logger.info("bootstrap: %d of %d resamples undefined and skipped", ci.n_skipped, n)
    return ci
