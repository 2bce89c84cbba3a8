"""Pooling predictions to a coarser level: volumes to scans, scans to patients (numpy only)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Literal, NamedTuple

import numpy as np

from .._utils import check_choice
from ._inputs import ScoreInput, as_list, as_probabilities, to_numpy

__all__ = ["Aggregated", "aggregate", "group_codes"]

HOWS = ("mean", "max", "vote")


class Aggregated(NamedTuple):
    """Predictions pooled per group.

    Attributes:
        groups: Group ids in order of first appearance, length ``G``.
        probs: Pooled probabilities, shape ``(G, C)``, rows summing to 1.
        labels: One label per group (shape ``(G,)``) when labels were given, else ``None``.
        first_index: Position of each group's first sample in the input, shape ``(G,)``; use it
            to carry any per-sample column to the group level (e.g. the patient id of each
            scan: ``patient_ids[result.first_index]``).
        counts: Number of samples in each group, shape ``(G,)``.
    """

    groups: list[Hashable]
    probs: np.ndarray
    labels: np.ndarray | None
    first_index: np.ndarray
    counts: np.ndarray


def group_codes(groups: list[Hashable]) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Map ids to codes ``0..G-1`` in order of first appearance.

    Returns:
        ``(unique ids, code per sample, first index of each id)``.
    """
    seen: dict[Hashable, int] = {}
    codes = np.empty(len(groups), dtype=np.int64)
    first: list[int] = []
    for i, g in enumerate(groups):
        code = seen.get(g)
        if code is None:
            code = seen[g] = len(first)
            first.append(i)
        codes[i] = code
    return list(seen), codes, np.asarray(first, dtype=np.int64)


def aggregate(
    probs: Any,
    groups: Any,
    how: Literal["mean", "max", "vote"] = "mean",
    labels: Any = None,
    *,
    input: ScoreInput = "probs",
) -> Aggregated:
    """Pool per-sample predictions into one prediction per group.

    Volumes to scans (groups = scan ids), scans to patients (groups = patient ids), or
    volumes straight to patients. Apply it twice for two levels, carrying the coarser ids
    with ``first_index``::

        scans = aggregate(probs, scan_ids, "mean", labels=y)
        patient_of_scan = patient_ids[scans.first_index]
        patients = aggregate(scans.probs, patient_of_scan, "mean", labels=scans.labels)

    Args:
        probs: Per-sample scores, shape ``(N, C)``.
        groups: Group id per sample, length ``N`` (strings, ints, arrays or tensors).
        how: ``"mean"``: average probability. ``"max"``: per-class maximum over the group,
            rescaled so each row sums to 1 (the argmax is the class with the single most
            confident sample). ``"vote"``: fraction of samples whose argmax is each class
            (rows sum to 1; ties between classes in one sample go to the lower index).
        labels: Optional label per sample, length ``N``. Every sample of a group must carry
            the same label; the group's label is returned.
        input: ``"probs"`` (validated) or ``"logits"`` (softmax first, then pooling).

    Returns:
        An :class:`Aggregated` ``(groups, probs, labels, first_index, counts)``.

    Raises:
        ValueError: Bad scores (see :func:`roc_auc`), mismatched lengths, an unknown
            ``how``, or a group whose samples carry different labels (the error names the
            group and the labels).
        TypeError: Unhashable group ids.

    Shape:
        ``probs (N, C)``, ``groups (N,)`` -> ``probs (G, C)``.
    """
    check_choice("how", how, HOWS)
    p = as_probabilities(probs, input, "probs")
    ids = as_list(groups, "groups")
    if len(ids) != p.shape[0]:
        raise ValueError(f"probs and groups have different lengths: {p.shape[0]} and {len(ids)}")
    unique, codes, first = group_codes(ids)
    n_groups, num_classes = len(unique), p.shape[1]
    counts = np.bincount(codes, minlength=n_groups)
    if how == "mean":
        pooled = np.zeros((n_groups, num_classes))
        np.add.at(pooled, codes, p)
        pooled /= counts[:, None]
    elif how == "max":
        pooled = np.zeros((n_groups, num_classes))
        np.maximum.at(pooled, codes, p)
        # Per-class maxima do not sum to 1; rescale so the result is again a probability
        # vector that roc_auc and classification_report accept. The argmax is unchanged.
        pooled /= pooled.sum(axis=1, keepdims=True)
    else:
        votes = np.zeros((n_groups, num_classes))
        np.add.at(votes, (codes, p.argmax(axis=1)), 1.0)
        pooled = votes / counts[:, None]
    group_labels = None
    if labels is not None:
        lab, _ = to_numpy(labels, "labels")
        if lab.ndim != 1 or lab.shape[0] != len(ids):
            raise ValueError(
                f"labels must be 1-D with one label per sample ({len(ids)}), got shape {lab.shape}"
            )
        group_labels = lab[first]
        clash = np.flatnonzero(group_labels[codes] != lab)
        if clash.size:
            i = int(clash[0])
            g = int(codes[i])
            found = list(dict.fromkeys(lab[codes == g].tolist()))
            raise ValueError(
                f"group {unique[g]!r} has samples with different labels {found} (first clash "
                f"at sample {i}); every sample of a group must carry the group's label"
            )
    return Aggregated(unique, pooled, group_labels, first, counts)
