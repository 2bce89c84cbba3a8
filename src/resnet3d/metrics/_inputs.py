"""Input conversion and validation shared by every metric (numpy only).

Torch tensors are accepted everywhere but torch is never imported here: a tensor is
recognised through ``sys.modules`` (if the caller holds a tensor, torch is already
imported), then detached and copied to host memory.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Hashable
from typing import Any, Literal

import numpy as np

from .._utils import check_choice

ScoreInput = Literal["probs", "logits"]
"""How 2-D scores are to be read: class probabilities or raw logits."""

ZeroDivision = Literal["warn"] | float
"""What a ratio with a zero denominator becomes: ``"warn"`` (0.0 and a warning), 0.0, 1.0 or NaN."""

SCORE_INPUTS = ("probs", "logits")

# Row sums of declared probabilities may be off by this much (float32 softmax output is
# within ~1e-7 of 1; 1e-4 also admits probabilities rounded to 4 decimals). For half
# precision inputs the tolerance grows with the dtype's epsilon (see _prob_tolerance).
PROB_ATOL = 1e-4


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for some class (a zero denominator or a class absent from
    ``y_true``); the value reported instead is stated in the message."""


def _torch_tensor_type() -> Any:
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


def is_tensor(x: Any) -> bool:
    """True if ``x`` is a ``torch.Tensor`` (without importing torch)."""
    tensor_type = _torch_tensor_type()
    return tensor_type is not None and isinstance(x, tensor_type)


def to_numpy(x: Any, name: str) -> tuple[np.ndarray, float]:
    """Convert a list, numpy array or torch tensor (any device, any dtype) to numpy.

    Returns:
        The array and the machine epsilon of the *source* floating dtype (float64's for
        non-float inputs), so that tolerances can follow the precision the user had.
    """
    eps = float(np.finfo(np.float64).eps)
    if is_tensor(x):
        torch = sys.modules["torch"]
        if x.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor ({x.dtype})")
        # Copy to the host in the source dtype (the smallest transfer), then widen floats:
        # numpy has no bfloat16, and float64 holds every float16/bfloat16/float32 exactly.
        tensor = x.detach().cpu()
        if tensor.is_floating_point():
            eps = float(torch.finfo(tensor.dtype).eps)
            tensor = tensor.to(torch.float64)
        return tensor.numpy(), eps
    try:
        arr = np.asarray(x)
    except ValueError as error:  # ragged nested lists
        raise ValueError(f"{name} could not be read as an array: {error}") from None
    if arr.dtype.kind == "f":
        eps = float(np.finfo(arr.dtype).eps)
    return arr, eps


def _nonempty(arr: np.ndarray, name: str) -> None:
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; at least one sample is needed")


def as_targets(y: Any, name: str = "y_true", num_classes: int | None = None) -> np.ndarray:
    """Read class indices: a non-empty 1-D array of integers in ``[0, num_classes)``.

    Booleans are read as 0/1 and floats with integral values are accepted (labels often
    arrive as float tensors); anything else is a ``ValueError`` naming the first bad entry.
    """
    arr, _ = to_numpy(y, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class index per sample), got shape {arr.shape}")
    _nonempty(arr, name)
    kind = arr.dtype.kind
    if kind == "b":
        arr = arr.astype(np.int64)
    elif kind in "iu":
        arr = arr.astype(np.int64, copy=False)
    elif kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must hold integer class indices; {name}[{i}] = {arr[i]!r}")
        arr = arr.astype(np.int64)
    else:
        raise ValueError(
            f"{name} must hold integer class indices, got dtype {arr.dtype}"
            + (
                " (map class names to indices first, e.g. labels.index(name))"
                if kind in "USO"
                else ""
            )
        )
    if num_classes is not None:
        bad = (arr < 0) | (arr >= num_classes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name}[{i}] = {int(arr[i])} is outside [0, {num_classes}) "
                f"for num_classes={num_classes}"
            )
    elif (arr < 0).any():
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name}[{i}] = {int(arr[i])} is negative; class indices start at 0")
    return arr


def check_num_classes(num_classes: Any) -> int:
    """Validate an explicit class count."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return int(num_classes)


def check_same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} have different lengths: {a.shape[0]} and {b.shape[0]}"
        )


def pair_targets(
    y_true: Any, y_pred: Any, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Read ``y_true``/``y_pred`` class indices and settle the class count."""
    if num_classes is not None:
        num_classes = check_num_classes(num_classes)
    t = as_targets(y_true, "y_true", num_classes)
    p = as_targets(y_pred, "y_pred", num_classes)
    check_same_length(t, p, "y_true", "y_pred")
    if num_classes is None:
        # Inferred like scikit-learn's labels=None, but as a range: classes 0..max are
        # all counted, so a class nobody used still gets a row.
        num_classes = max(int(t.max()), int(p.max())) + 1
    return t, p, num_classes


def softmax(logits: Any) -> np.ndarray:
    """Numerically stable softmax over the last axis, in float64.

    Args:
        logits: Scores of shape ``(N, C)`` (list, numpy array or torch tensor).

    Returns:
        Probabilities of shape ``(N, C)``, float64, rows summing to 1.

    Raises:
        ValueError: If the input is empty, not 2-D, or holds NaN or infinite values.

    Shape:
        ``(N, C) -> (N, C)``.
    """
    arr = check_finite_2d(logits, "logits")
    return _softmax(arr)


def _softmax(arr: np.ndarray) -> np.ndarray:
    z = arr - arr.max(axis=1, keepdims=True)  # max-subtraction: exp never overflows
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def check_finite_2d(x: Any, name: str) -> np.ndarray:
    arr, _ = _read_2d(x, name)
    return arr


def _read_2d(x: Any, name: str) -> tuple[np.ndarray, float]:
    arr, eps = to_numpy(x, name)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (N, C), got shape {arr.shape}")
    _nonempty(arr, name)
    if arr.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 class columns, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} holds a non-finite value: {name}[{i}, {j}] = {arr[i, j]} "
            f"({int(bad.sum())} non-finite value(s) in all)"
        )
    return arr, eps


def _prob_tolerance(eps: float, num_classes: int) -> float:
    # A row of C float16 probabilities can be off by about C * eps after rounding.
    return max(PROB_ATOL, 4.0 * num_classes * eps)


def check_probabilities(arr: np.ndarray, eps: float, name: str) -> None:
    """Raise a ``ValueError`` naming the first row that is not a probability vector."""
    tol = _prob_tolerance(eps, arr.shape[1])
    out = (arr < -tol) | (arr > 1.0 + tol)
    hint = " (if these are logits or raw scores, pass input='logits')"
    if out.any():
        i, j = (int(v) for v in np.argwhere(out)[0])
        raise ValueError(
            f"{name} was declared as probabilities (input='probs') but {name}[{i}, {j}] = "
            f"{arr[i, j]:.6g} is outside [0, 1]" + hint
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > tol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{name} was declared as probabilities (input='probs') but row {i} sums to "
            f"{sums[i]:.6g}, not 1 (tolerance {tol:.1e}; {int(off.sum())} bad row(s))" + hint
        )


def as_probabilities(
    y_score: Any, input: ScoreInput, name: str = "y_prob", num_classes: int | None = None
) -> np.ndarray:
    """Read ``(N, C)`` scores as float64 probabilities.

    ``input="probs"`` validates (values in [0, 1], rows summing to 1); ``input="logits"``
    applies a float64 softmax.
    """
    check_choice("input", input, SCORE_INPUTS)
    arr, eps = _read_2d(y_score, name)
    if num_classes is not None and arr.shape[1] != num_classes:
        raise ValueError(f"{name} has {arr.shape[1]} class columns but num_classes={num_classes}")
    if input == "logits":
        return _softmax(arr)
    check_probabilities(arr, eps, name)
    return arr


def check_zero_division(zero_division: Any) -> float:
    """Validate ``zero_division`` and return the value that replaces an undefined ratio."""
    if isinstance(zero_division, str):
        if zero_division == "warn":
            return 0.0
        if zero_division.lower() == "nan":
            return math.nan
    elif isinstance(zero_division, (int, float, np.floating, np.integer)) and not isinstance(
        zero_division, bool
    ):
        value = float(zero_division)
        if value in (0.0, 1.0) or math.isnan(value):
            return value
    raise ValueError(f"zero_division must be 'warn', 0.0, 1.0 or nan, got {zero_division!r}")


def divide(
    num: np.ndarray,
    den: np.ndarray,
    zero_division: ZeroDivision,
    what: str,
    reason: str,
    warn: bool = True,
) -> np.ndarray:
    """``num / den`` elementwise, with zero denominators replaced as scikit-learn does.

    With ``zero_division="warn"`` the value is 0.0 and an :class:`UndefinedMetricWarning`
    names the affected classes (``what`` is the metric, ``reason`` what is missing).
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    mask = den == 0
    safe = np.where(mask, 1.0, den)
    result = num / safe
    if not mask.any():
        return result
    result[mask] = check_zero_division(zero_division)
    if warn and isinstance(zero_division, str) and zero_division == "warn":
        where = f"for class(es) {np.flatnonzero(mask).tolist()}" if mask.size > 1 else "overall"
        warnings.warn(
            f"{what} is ill-defined and set to 0.0 {where} with no {reason} samples. "
            "Pass zero_division=0.0, 1.0 or nan to choose the value and silence this warning.",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return result


def nan_average(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Weighted mean ignoring NaN entries, as scikit-learn averages per-class scores.

    All-NaN gives NaN; all-zero weights fall back to the plain mean.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.isnan(values)
    if values.size == 0 or mask.all():
        return math.nan
    if weights is None:
        return float(np.nanmean(values))
    w = np.asarray(weights, dtype=np.float64)[~mask]
    v = values[~mask]
    if w.sum() == 0:
        return float(np.average(v))
    return float(np.average(v, weights=w))


def as_list(x: Any, name: str) -> list[Hashable]:
    """Read group ids (strings, ints, arrays or tensors) as a list of hashable Python values."""
    if is_tensor(x) or isinstance(x, np.ndarray):
        arr, _ = to_numpy(x, name)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one id per sample), got shape {arr.shape}")
        items: list[Any] = arr.tolist()
    elif isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of ids, got a single string {x!r}")
    else:
        try:
            items = list(x)
        except TypeError:
            raise TypeError(f"{name} must be a sequence of ids, got {type(x).__name__}") from None
    for i, item in enumerate(items):
        if isinstance(item, np.generic):
            items[i] = item.item()
        try:
            hash(items[i])
        except TypeError:
            raise TypeError(
                f"{name}[{i}] = {items[i]!r} is not hashable; group ids must be "
                "strings, numbers or tuples"
            ) from None
    return items
