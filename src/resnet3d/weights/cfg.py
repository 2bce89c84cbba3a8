"""``PretrainedCfg``: what travels with a set of weights, in one typed, frozen record.

A model loaded with ``from_pretrained``, rebuilt from a training checkpoint or converted from
another library carries one as ``model.pretrained_cfg``: its architecture name, the
preprocessing spec (the ``SliceStacker`` arguments it was trained with), the class labels,
the metrics measured for it, where the weights came from and how they were adapted.
``save_pretrained`` writes it into ``config.json``, and reading ``config.json`` or a
checkpoint gives it back (:meth:`PretrainedCfg.to_dict` / :meth:`PretrainedCfg.from_dict`
round-trip through JSON).

It also reads like the dict it replaces (``cfg["labels"]``, ``cfg.get("preprocessing")``,
``"alias" in cfg``): the keys are those of :meth:`to_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._utils import did_you_mean
from ..presets import PREPROCESSING_KEYS
from .table import Metric

__all__ = ["SOURCES", "PretrainedCfg"]

#: Where weights can come from: an export folder, the Hub, a training checkpoint, another
#: library's checkpoint through a converter.
SOURCES = ("local", "hub", "checkpoint", "converted")
# Fields that describe the origin; to_dict() leaves them out when unset.
_ORIGIN = ("source", "path", "repo_id", "revision", "alias", "epoch")


@dataclass(frozen=True)
class PretrainedCfg(Mapping[str, Any]):
    """What travels with a set of weights.

    Args:
        architecture: The registry name of the architecture (``"resnet18"``), if it has one.
        preprocessing: The ``SliceStacker`` arguments the model expects (keys in
            :data:`resnet3d.presets.PREPROCESSING_KEYS`), or ``None`` if not recorded.
        labels: Class names in output order, or ``None`` if not recorded.
        metrics: Numbers measured for these weights (dicts are accepted).
        license: SPDX id of the weights' license.
        dataset: The training data, in words.
        description: One line for the model card.
        source: Where the weights came from, one of :data:`SOURCES`.
        path: The export folder or checkpoint file they were read from.
        repo_id: The Hub repo they were downloaded from.
        revision: The Hub commit they were downloaded at.
        alias: The weights-table alias they were loaded by.
        epoch: The training epoch of a checkpoint.
        library_version: The resnet3d version that wrote them.
        adapted: What loading changed, e.g. ``{"num_classes": (3, 5)}``.

    Raises:
        ValueError: For unknown preprocessing keys or a spec that is not JSON-able, labels
            that are not strings, or an unknown source.
    """

    architecture: str | None = None
    preprocessing: Mapping[str, Any] | None = None
    labels: Sequence[str] | None = None  # a tuple after __post_init__
    metrics: tuple[Metric, ...] = ()
    license: str | None = None
    dataset: str | None = None
    description: str | None = None
    source: str | None = None
    path: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    alias: str | None = None
    epoch: int | None = None
    library_version: str | None = None
    adapted: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.preprocessing is not None:
            if not isinstance(self.preprocessing, Mapping):
                raise ValueError(f"preprocessing must be a dict, got {self.preprocessing!r}")
            unknown = [k for k in self.preprocessing if k not in PREPROCESSING_KEYS]
            if unknown:
                raise ValueError(
                    f"unknown preprocessing keys {unknown}; allowed (SliceStacker arguments): "
                    f"{list(PREPROCESSING_KEYS)}."
                    + did_you_mean(str(unknown[0]), PREPROCESSING_KEYS)
                )
            try:
                json.dumps(dict(self.preprocessing))
            except TypeError as error:
                raise ValueError(f"preprocessing must be JSON-able: {error}") from None
            set_(self, "preprocessing", MappingProxyType(dict(self.preprocessing)))
        if self.labels is not None:
            if isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
                raise ValueError(f"labels must be a sequence of strings, got {self.labels!r}")
            set_(self, "labels", tuple(self.labels))
        set_(
            self,
            "metrics",
            tuple(m if isinstance(m, Metric) else Metric.from_dict(m) for m in self.metrics),
        )
        if self.source is not None and self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.path is not None:
            set_(self, "path", os.fspath(self.path))
        set_(
            self,
            "adapted",
            MappingProxyType({str(k): tuple(v) for k, v in dict(self.adapted).items()}),
        )

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict (origin fields only when set)."""
        out: dict[str, Any] = {
            name: getattr(self, name) for name in _ORIGIN if getattr(self, name) is not None
        }
        out.update(
            architecture=self.architecture,
            preprocessing=None if self.preprocessing is None else dict(self.preprocessing),
            labels=None if self.labels is None else list(self.labels),
            metrics=[m.to_dict() for m in self.metrics],
            license=self.license,
            dataset=self.dataset,
            description=self.description,
            library_version=self.library_version,
            adapted={k: list(v) for k, v in self.adapted.items()},
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | PretrainedCfg) -> PretrainedCfg:
        """Build the record from :meth:`to_dict` output (or any subset of its keys).

        Raises:
            ValueError: For an unknown key (naming the closest field) or an invalid value.
        """
        if isinstance(data, PretrainedCfg):
            return data
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(
                f"unknown PretrainedCfg keys {unknown}; fields are {names}."
                + did_you_mean(str(unknown[0]), names)
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> PretrainedCfg:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_checkpoint(
        cls, state: Mapping[str, Any], path: str | os.PathLike[str]
    ) -> PretrainedCfg:
        """The record of a training checkpoint (``last.pt``/``best.pt``) already read.

        Its preprocessing spec and labels are those the run trained with (the checkpoint's
        ``metadata``), so evaluation and prediction prepare scans exactly as in training.
        """
        metadata = state.get("metadata") or {}
        config = state.get("model_config") or {}
        labels = state.get("labels") or metadata.get("labels") or None
        return cls(
            architecture=config.get("name") or None,
            preprocessing=metadata.get("preprocessing") or None,
            labels=None if labels is None else tuple(str(x) for x in labels),
            source="checkpoint",
            path=os.fspath(path),
            epoch=state.get("epoch"),
        )

    # -- the dict view ----------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
