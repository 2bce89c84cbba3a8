"""The weights table: what each pretrained alias is, where its file lives and what it expects.

Weights are data: every alias names an architecture, a Hub repo
pinned to a 40-hex commit, a file with its sha256, the exact input the volume builder must
produce (the keyword arguments of :class:`resnet3d.data.volumes.SliceStacker`), the class labels,
the metrics measured for those weights (with the split and unit they were measured on) and
the license.

No weights are published yet: nothing has been trained on CC-CCII and uploaded. Every alias
below is therefore *planned*: it has no repo, revision, sha256 or metrics, and
:func:`resnet3d.models.pretrained.from_pretrained` refuses it with the commands that produce the
weights.
Nothing here is ever filled with a made-up revision, hash or number; when weights are
published, their entry gets the real ones (or a user registers their own with
:func:`register_pretrained`).

This module is stdlib-only so that listing the table (``resnet3d models --pretrained``)
imports no torch.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from .._utils import did_you_mean
from ..constants import CCII_CLASSES
from ..presets import PREPROCESSING_KEYS

__all__ = [
    "CCII_LABELS",
    "Metric",
    "PretrainedEntry",
    "get_pretrained",
    "list_pretrained",
    "recipe_commands",
    "register_pretrained",
    "table_markdown",
    "unregister_pretrained",
]

#: CC-CCII's classes in the order the models output them (the paper's order).
CCII_LABELS: tuple[str, ...] = CCII_CLASSES


_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")
_ALIAS = re.compile(r"[a-z0-9][a-z0-9.\-_]*")


@dataclass(frozen=True)
class Metric:
    """One number measured for a set of weights.

    Args:
        name: What was measured, e.g. ``"accuracy"``, ``"auroc"``, ``"recall_NCP"``.
        value: The measured value.
        split: The data it was measured on, e.g. ``"CC-CCII test (patient-level split)"``.
        unit: ``"fraction"`` (0..1), ``"percent"`` or another unit word.
    """

    name: str
    value: float
    split: str
    unit: str = "fraction"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Metric.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.split, str) or not self.split:
            raise ValueError(
                f"Metric {self.name!r} needs the split it was measured on, got {self.split!r}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"Metric {self.name!r} value must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"Metric {self.name!r} value must be finite, got {self.value!r}")
        object.__setattr__(self, "value", float(self.value))

    def to_dict(self) -> dict[str, Any]:
        """The metric as a JSON-able dict."""
        return {"name": self.name, "value": self.value, "split": self.split, "unit": self.unit}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metric:
        """Build a metric from :meth:`to_dict` output.

        Raises:
            ValueError: If a key is missing or unknown.
        """
        allowed = ("name", "value", "split", "unit")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ValueError(f"unknown metric keys {unknown}; allowed: {list(allowed)}")
        missing = [k for k in ("name", "value", "split") if k not in data]
        if missing:
            raise ValueError(f"metric {dict(data)!r} lacks {missing}")
        return cls(**dict(data))


@dataclass(frozen=True)
class PretrainedEntry:
    """One row of the weights table.

    An entry is *published* when it has a ``repo_id``, a pinned 40-hex ``revision`` and the
    ``sha256`` of its weights file; otherwise it is a plan, and loading it raises an error
    that gives the commands producing the weights.

    Args:
        alias: The short name users load, e.g. ``"ccii-depth4"``.
        architecture: The registered model name, e.g. ``"resnet18"``.
        preprocessing: What the volume builder must be configured with:
            ``volumes.SliceStacker`` keyword arguments (``depth``, ``size``, ``channels``,
            ``window``, ...).
        labels: Class names in output order.
        description: One line for the table and the model card.
        repo_id: Hub repo, ``"org/name"``; ``None`` while unpublished.
        revision: The pinned commit (40 hex digits); ``None`` while unpublished.
        filename: The safetensors file in the repo.
        sha256: Hex sha256 of ``filename`` at ``revision``; ``None`` while unpublished.
        metrics: What was measured for these weights (empty while unpublished).
        license: SPDX id of the weights' license, or ``None`` when not decided yet.
        dataset: The training data.
        train_args: The ``resnet3d train`` options of the recipe that produces the weights.
        reference: What the paper reports for its own model of this configuration (context
            only: it was not measured for these weights).
    """

    alias: str
    architecture: str
    preprocessing: Mapping[str, Any]
    labels: tuple[str, ...]
    description: str = ""
    repo_id: str | None = None
    revision: str | None = None
    filename: str = "model.safetensors"
    sha256: str | None = None
    metrics: tuple[Metric, ...] = ()
    license: str | None = None
    dataset: str = ""
    train_args: tuple[str, ...] = ()
    reference: str = ""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.alias, str) or not _ALIAS.fullmatch(self.alias):
            raise ValueError(
                f"alias must be lower-case letters, digits, '.', '-' or '_' (no '/', so it never "
                f"looks like a repo id), got {self.alias!r}"
            )
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ValueError(
                f"{self.alias}: architecture must be a model name, got {self.architecture!r}"
            )
        unknown = [k for k in self.preprocessing if k not in PREPROCESSING_KEYS]
        if unknown:
            raise ValueError(
                f"{self.alias}: unknown preprocessing keys {unknown}; allowed: "
                f"{list(PREPROCESSING_KEYS)}." + did_you_mean(str(unknown[0]), PREPROCESSING_KEYS)
            )
        set_(self, "preprocessing", MappingProxyType(dict(self.preprocessing)))
        set_(self, "labels", tuple(self.labels))
        if not all(isinstance(label, str) and label for label in self.labels):
            raise ValueError(f"{self.alias}: labels must be non-empty strings, got {self.labels!r}")
        set_(self, "metrics", tuple(self.metrics))
        set_(self, "train_args", tuple(self.train_args))
        if self.repo_id is not None and not _REPO_ID.fullmatch(self.repo_id):
            raise ValueError(
                f"{self.alias}: repo_id must look like 'org/name', got {self.repo_id!r}"
            )
        if self.revision is not None and not _HEX40.fullmatch(self.revision):
            raise ValueError(
                f"{self.alias}: revision must be a pinned commit (40 lower-case hex digits), not a "
                f"branch or tag, got {self.revision!r}"
            )
        if self.sha256 is not None and not _HEX64.fullmatch(self.sha256):
            raise ValueError(
                f"{self.alias}: sha256 must be 64 lower-case hex digits, got {self.sha256!r}"
            )
        pinned = [self.repo_id is not None, self.revision is not None, self.sha256 is not None]
        if any(pinned) and not all(pinned):
            raise ValueError(
                f"{self.alias}: a published entry needs repo_id, revision and sha256 together, got "
                f"repo_id={self.repo_id!r}, revision={self.revision!r}, sha256={self.sha256!r}"
            )
        if self.metrics and not self.published:
            raise ValueError(f"{self.alias}: metrics can only be given for published weights")
        if not self.filename.endswith(".safetensors"):
            raise ValueError(
                f"{self.alias}: only safetensors weights are loaded, got filename={self.filename!r}"
            )

    @property
    def published(self) -> bool:
        """Whether the weights are on the Hub (repo, pinned revision and sha256 known)."""
        return self.repo_id is not None and self.revision is not None and self.sha256 is not None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-able dict ."""
        return {
            "alias": self.alias,
            "architecture": self.architecture,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "filename": self.filename,
            "sha256": self.sha256,
            "preprocessing": dict(self.preprocessing),
            "labels": list(self.labels),
            "metrics": [m.to_dict() for m in self.metrics],
            "license": self.license,
            "dataset": self.dataset,
            "description": self.description,
        }

    def replace(self, **changes: Any) -> PretrainedEntry:
        """A copy with some fields changed (validated like a new entry)."""
        return replace(self, **changes)


# ----------------------------------------------------------------------------- the recipe
#: The training command's fixed part; ``train_args`` of each entry follow it.
TRAIN_COMMAND = "resnet3d train --data ROOT"
#: Where the recipe's commands put the run (the training CLI writes ``best.pt`` there).
RUN_DIR = "runs/{alias}"


def recipe_commands(entry: PretrainedEntry) -> list[str]:
    """The shell commands that produce and publish the weights of ``entry``.

    Train with the paper's recipe, export the best checkpoint into a Hub-ready folder, push it,
    then pin the resulting commit and the file's sha256 in the table.

    Args:
        entry: A table entry.

    Returns:
        Three commands: ``resnet3d train``, ``resnet3d export`` and ``resnet3d push``.
    """
    run_dir = RUN_DIR.format(alias=entry.alias)
    return [
        " ".join([TRAIN_COMMAND, *entry.train_args, "--out-dir", run_dir]),
        f"resnet3d export {run_dir}/best.pt {run_dir}/export",
        f"resnet3d push {run_dir}/export YOUR_ORG/{entry.alias}",
    ]


def _ccii(
    alias: str,
    architecture: str,
    depth: int,
    description: str,
    reference: str,
) -> PretrainedEntry:
    """A planned CC-CCII entry trained with the paper's recipe (batch 32, 512 x 512 RGB slices)."""
    return PretrainedEntry(
        alias=alias,
        architecture=architecture,
        # The paper's slice stacking: n consecutive slices resized to 512 x 512, RGB (3
        # channels), non-overlapping (stride None = depth), a short remainder dropped. This is
        # SliceStacker(depth=n, size=512).to_dict(), what `resnet3d train --depth n --size 512`
        # records. CC-CCII ships 8-bit PNG/JPG slices, so there is no Hounsfield window.
        preprocessing={
            "depth": depth,
            "stride": None,
            "size": [512, 512],
            "channels": 3,
            "window": None,
            "remainder": "drop",
            "pad_mode": "edge",
            "resample": "bilinear",
            "dtype": "float32",
        },
        labels=CCII_LABELS,
        description=description,
        dataset="CC-CCII, complete CT, patient-level split (paper's Table 1)",
        train_args=(
            "--model",
            architecture,
            "--depth",
            str(depth),
            "--size",
            "512",
            "--batch-size",
            "32",
        ),
        reference=reference,
    )


_BUILTIN: tuple[PretrainedEntry, ...] = (
    _ccii(
        "ccii-depth4",
        "resnet18",
        4,
        "ResNet-18, depth 4: the paper's best configuration",
        "paper, test split: accuracy 0.9924, recall 0.9996 (depth 4, batch 32)",
    ),
    _ccii(
        "ccii-depth2",
        "resnet18",
        2,
        "ResNet-18, depth 2",
        "paper, test split: accuracy 0.9914, recall 0.9991 (depth 2, batch 32)",
    ),
    _ccii(
        "ccii-depth8",
        "resnet18",
        8,
        "ResNet-18, depth 8",
        "paper, test split: accuracy 0.9815, recall 0.9844 (depth 8, batch 32)",
    ),
    _ccii(
        "ccii-depth16",
        "resnet18",
        16,
        "ResNet-18, depth 16",
        "paper, test split: accuracy 0.9791, recall 0.9610 (depth 16, batch 32)",
    ),
    _ccii(
        "ccii-r2plus1d-depth4",
        "resnet18_2plus1d",
        4,
        "ResNet-18(2+1)D, depth 4",
        "paper, test split: accuracy 0.9885, recall 0.9978 (depth 4, batch 32)",
    ),
    _ccii(
        "ccii-resnet34-depth4",
        "resnet34",
        4,
        "ResNet-34, depth 4",
        "paper, test split: accuracy 0.9800, recall 0.9714 (depth 4, batch 32)",
    ),
    _ccii(
        "ccii-resnet34-r2plus1d-depth4",
        "resnet34_2plus1d",
        4,
        "ResNet-34(2+1)D, depth 4",
        "paper, test split: accuracy 0.9718, recall 0.9632 (depth 4, batch 32)",
    ),
    _ccii(
        "ccii-resnet50-depth4",
        "resnet50",
        4,
        "ResNet-50, depth 4",
        "paper, test split: accuracy 0.9802, recall 0.9723 (depth 4, batch 32)",
    ),
)

# The live table. Tests and users add entries through register_pretrained.
_TABLE: dict[str, PretrainedEntry] = {entry.alias: entry for entry in _BUILTIN}


def register_pretrained(entry: PretrainedEntry, *, overwrite: bool = False) -> PretrainedEntry:
    """Add ``entry`` to the weights table (e.g. your own published weights).

    Args:
        entry: The entry; its ``alias`` becomes loadable with ``from_pretrained(alias)``.
        overwrite: Replace an existing entry with the same alias.

    Returns:
        The entry it replaced, or ``entry`` itself when the alias was new (so a caller can
        restore the previous row).

    Raises:
        TypeError: If ``entry`` is not a :class:`PretrainedEntry`.
        ValueError: If the alias exists and ``overwrite`` is false.
    """
    if not isinstance(entry, PretrainedEntry):
        raise TypeError(f"expected a PretrainedEntry, got {type(entry).__name__}")
    previous = _TABLE.get(entry.alias)
    if previous is not None and not overwrite:
        raise ValueError(
            f"alias {entry.alias!r} is already in the weights table; pass overwrite=True to "
            "replace it"
        )
    _TABLE[entry.alias] = entry
    return previous if previous is not None else entry


def unregister_pretrained(alias: str) -> PretrainedEntry:
    """Remove ``alias`` from the table and return its entry.

    Raises:
        ValueError: If ``alias`` is not in the table (closest names listed).
    """
    entry = get_pretrained(alias)
    del _TABLE[alias]
    return entry


def get_pretrained(alias: str) -> PretrainedEntry:
    """The table entry for ``alias``.

    Raises:
        ValueError: If ``alias`` is unknown; the message lists the closest aliases.
    """
    if alias not in _TABLE:
        raise ValueError(
            f"unknown pretrained alias {alias!r}; known aliases: {list_pretrained()}."
            + did_you_mean(alias, _TABLE)
        )
    return _TABLE[alias]


def is_alias(name: str) -> bool:
    """Whether ``name`` is an alias in the table."""
    return name in _TABLE


def list_pretrained(pattern: str = "*", *, published_only: bool = False) -> list[str]:
    """Aliases in the weights table that match a shell-style ``pattern``, in table order.

    Args:
        pattern: e.g. ``"ccii-*"``.
        published_only: Only aliases whose weights can be downloaded.
    """
    return [
        alias
        for alias, entry in _TABLE.items()
        if fnmatch.fnmatchcase(alias, pattern) and (entry.published or not published_only)
    ]


def entries(pattern: str = "*") -> list[PretrainedEntry]:
    """The table entries whose alias matches ``pattern``, in table order."""
    return [_TABLE[alias] for alias in list_pretrained(pattern)]


def _input_text(entry: PretrainedEntry) -> str:
    spec = entry.preprocessing
    parts = []
    size = spec.get("size")
    hw = size if isinstance(size, (list, tuple)) else [size, size]
    if "channels" in spec and "depth" in spec and size is not None:
        parts.append(f"{spec['channels']} x {spec['depth']} x {hw[0]} x {hw[1]}")
    for key in ("window", "stride", "remainder"):
        if key in spec:
            parts.append(f"{key} {spec[key] if spec[key] is not None else 'none'}")
    return ", ".join(parts)


def _metrics_text(metrics: Iterable[Metric]) -> str:
    return "; ".join(f"{m.name} {m.value:.4g} ({m.unit}, {m.split})" for m in metrics)


def table_markdown(pattern: str = "*") -> str:
    """The weights table as Markdown (the table in ``docs/pretrained.md`` is this output).

    Args:
        pattern: Only aliases matching this shell-style pattern.

    Returns:
        A Markdown table, one row per alias, ending with a newline.
    """
    header = (
        "| alias | architecture | input (C x D x H x W) | labels | weights | metrics | "
        "license | paper reports (context) |"
    )
    lines = [header, "|" + "---|" * 8]
    for entry in entries(pattern):
        if entry.published:
            weights = f"`{entry.repo_id}` @ `{(entry.revision or '')[:12]}`"
        else:
            weights = "not yet published"
        cells = [
            f"`{entry.alias}`",
            f"`{entry.architecture}`",
            _input_text(entry),
            ", ".join(entry.labels),
            weights,
            _metrics_text(entry.metrics) or "none measured",
            entry.license or "n/a",
            entry.reference or "",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
