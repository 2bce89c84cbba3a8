"""A streaming accumulator for evaluation loops, exact under ``torch.distributed``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from .._utils import check_choice
from ._inputs import (
    SCORE_INPUTS,
    ScoreInput,
    as_list,
    as_probabilities,
    as_targets,
    check_num_classes,
    check_same_length,
)
from .report import ClassificationReport, classification_report

__all__ = ["MetricAccumulator"]

logger = logging.getLogger(__name__)


def _length(x: Any) -> int | None:
    try:
        return len(x)
    except TypeError:  # a scalar or a 0-d array
        return None


def _distributed_world(process_group: Any) -> tuple[Any, int]:
    """``(torch.distributed, world size)`` if a process group is initialised, else ``(None, 1)``."""
    if "torch" not in sys.modules:
        return None, 1  # nobody imported torch, so no process group can exist
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None, 1
    return dist, int(dist.get_world_size(process_group))


class MetricAccumulator:
    """Collects predictions batch by batch and builds a :class:`ClassificationReport`.

    Scores are converted to float64 probabilities on the host at each ``update`` (so bad
    input fails at the batch that has it). In a ``torch.distributed`` run, ``compute()``
    gathers every rank's samples (``all_gather_object``) and returns the same report on
    every rank. ``DistributedSampler`` pads the dataset so ranks get equal shares; pass the
    dataset index of each sample (``indices=``) and repeated indices are counted once, so
    the result equals a single-process evaluation.

    Example::

        acc = MetricAccumulator(labels=["NCP", "CP", "Normal"], input="logits")
        for volumes, targets, index in loader:  # the dataset returns its index
            acc.update(model(volumes), targets, indices=index)
        report = acc.compute()

    Args:
        num_classes: Number of classes; taken from ``labels`` or the first batch if omitted.
        labels: Class names in index order (passed on to the report).
        input: ``"probs"`` or ``"logits"``: what ``update`` receives.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        *,
        labels: Sequence[str] | None = None,
        input: ScoreInput = "probs",
    ) -> None:
        check_choice("input", input, SCORE_INPUTS)
        if labels is not None:
            if isinstance(labels, str):
                raise TypeError(f"labels must be a list of class names, got {labels!r}")
            labels = [str(name) for name in labels]
            if num_classes is None:
                num_classes = len(labels)
        if num_classes is not None:
            num_classes = check_num_classes(num_classes)
            if labels is not None and len(labels) != num_classes:
                raise ValueError(f"labels has {len(labels)} names but num_classes={num_classes}")
        self.num_classes: int | None = num_classes
        self.labels: list[str] | None = labels
        self.input: ScoreInput = input
        self.reset()

    def reset(self) -> None:
        """Forget every sample (start of a new epoch)."""
        self._probs: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._groups: list[Hashable] | None = None
        self._indices: list[np.ndarray] | None = None
        self._updates = 0

    def __len__(self) -> int:
        """Samples collected on this process (before any de-duplication)."""
        return int(sum(t.shape[0] for t in self._targets))

    def update(
        self,
        scores: Any,
        labels: Any,
        groups: Any = None,
        *,
        indices: Any = None,
    ) -> None:
        """Add one batch.

        Args:
            scores: Logits or probabilities (as declared by ``input``), shape ``(B, C)``;
                tensors on any device are detached and copied to the host.
            labels: True class indices, shape ``(B,)``.
            groups: Optional group id per sample (scan or patient), to report per group.
                Give it in every update or in none.
            indices: Optional dataset index per sample, shape ``(B,)``. Give it in every
                update or in none; samples with a repeated index (``DistributedSampler``
                padding) are counted once.

        Raises:
            ValueError: Bad scores or labels (see :func:`roc_auc`), mismatched lengths,
                a class count that differs from earlier batches, or ``groups``/``indices``
                given in some updates and not in others. An empty batch (no scores, no
                labels) is ignored.
        """
        if _length(scores) == 0 and _length(labels) == 0:
            return  # an empty batch (a filtered or uneven last batch) adds nothing
        probs = as_probabilities(scores, self.input, "scores", self.num_classes)
        if self.num_classes is None:
            self.num_classes = check_num_classes(probs.shape[1])
        targets = as_targets(labels, "labels", self.num_classes)
        check_same_length(targets, probs, "labels", "scores")
        batch_groups = None if groups is None else as_list(groups, "groups")
        if batch_groups is not None and len(batch_groups) != targets.shape[0]:
            raise ValueError(
                f"groups has {len(batch_groups)} ids but the batch has {targets.shape[0]} samples"
            )
        batch_indices = None
        if indices is not None:
            batch_indices = as_targets(indices, "indices")
            check_same_length(batch_indices, targets, "indices", "labels")
        first = self._updates == 0
        for name, given, held in (
            ("groups", batch_groups is not None, self._groups is not None),
            ("indices", batch_indices is not None, self._indices is not None),
        ):
            if not first and given != held:
                raise ValueError(
                    f"{name} must be given in every update or in none; this update "
                    + ("has it and earlier ones did not" if given else "lacks it")
                )
        if first:
            self._groups = [] if batch_groups is not None else None
            self._indices = [] if batch_indices is not None else None
        self._probs.append(probs)
        self._targets.append(targets)
        if self._groups is not None and batch_groups is not None:
            self._groups.extend(batch_groups)
        if self._indices is not None and batch_indices is not None:
            self._indices.append(batch_indices)
        self._updates += 1

    def _local_state(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "probs": np.concatenate(self._probs) if self._probs else None,
            "targets": np.concatenate(self._targets) if self._targets else None,
            "groups": self._groups,
            "indices": np.concatenate(self._indices) if self._indices else None,
            "has_indices": self._indices is not None,
            "has_groups": self._groups is not None,
        }

    def _gather(self, distributed: bool | None, process_group: Any) -> list[dict[str, Any]]:
        state = self._local_state()
        if distributed is False:
            return [state]
        dist, world = _distributed_world(process_group)
        if dist is None or world == 1:
            if distributed:
                raise RuntimeError(
                    "distributed=True but no torch.distributed process group is initialised"
                )
            return [state]
        # Objects, not tensors: the sizes differ per rank and the ids may be strings. These
        # are evaluation-sized arrays, so pickling them once per epoch is cheap.
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, state, group=process_group)
        return gathered

    def compute(
        self,
        *,
        distributed: bool | None = None,
        process_group: Any = None,
        **report_kwargs: Any,
    ) -> ClassificationReport:
        """Build the report from every sample seen (on every rank).

        Args:
            distributed: ``None`` gathers across ranks when a ``torch.distributed`` process
                group is initialised; ``False`` uses this process's samples only; ``True``
                requires a process group. Every rank must call ``compute`` (it is a
                collective).
            process_group: The group to gather over (default: the world).
            **report_kwargs: Passed to :func:`classification_report` (``ci``, ``how``,
                ``n_bootstrap``, ``seed``, ``zero_division``, ...).

        Returns:
            A :class:`ClassificationReport`, identical on every rank.

        Raises:
            ValueError: Nothing was collected (on any rank), or ranks disagree on the class
                count or on whether groups/indices were given.
            RuntimeError: ``distributed=True`` without a process group.
        """
        for key in ("labels", "groups", "input"):
            if key in report_kwargs:
                raise TypeError(
                    f"compute() sets {key!r} itself; give it to the accumulator or to update()"
                )
        states = [s for s in self._gather(distributed, process_group) if s["targets"] is not None]
        if not states:
            raise ValueError("no samples to compute metrics on: call update() before compute()")
        for key in ("num_classes", "has_indices", "has_groups"):
            seen = {s[key] for s in states}
            if len(seen) > 1:
                raise ValueError(f"ranks disagree on {key}: {sorted(seen, key=str)}")
        probs = np.concatenate([s["probs"] for s in states])
        targets = np.concatenate([s["targets"] for s in states])
        groups: list[Hashable] | None = None
        if states[0]["has_groups"]:
            groups = [g for s in states for g in s["groups"]]
        if states[0]["has_indices"]:
            indices = np.concatenate([s["indices"] for s in states])
            # First occurrence of each dataset index, in index order: padding repeats are
            # dropped and the order equals a sequential single-process pass.
            unique, first = np.unique(indices, return_index=True)
            dropped = indices.shape[0] - unique.shape[0]
            if dropped:
                logger.debug("dropped %d repeated sample indices (sampler padding)", dropped)
            probs, targets = probs[first], targets[first]
            if groups is not None:
                groups = [groups[i] for i in first]
        elif len(states) > 1:
            logger.warning(
                "gathered %d ranks without sample indices: samples that DistributedSampler "
                "pads are counted twice; pass update(..., indices=...) for exact metrics",
                len(states),
            )
        return classification_report(
            targets,
            probs,
            labels=self.labels,
            groups=groups,
            input="probs",
            **report_kwargs,
        )
