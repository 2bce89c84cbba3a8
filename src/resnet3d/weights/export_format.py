"""The export format: the three files of an export and its ``config.json``.

An export is a folder (or a Hugging Face Hub repo) with three files:

- ``model.safetensors``: the state dict. Only safetensors are ever loaded as weights.
- ``config.json``: the architecture (the model config's fields), the preprocessing spec, the
  class labels, the metrics, the license and the library version: a
  :class:`~resnet3d.weights.cfg.PretrainedCfg` plus the architecture.
- ``README.md``: the model card (:mod:`resnet3d.weights.model_card`).

This module reads and writes the JSON and never builds a model: checking the architecture
against the registry is :func:`resnet3d.models.pretrained.load_export_config`'s job.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._utils import sha256_file
from .._version import __version__
from ..errors import InvalidExportError
from .cfg import PretrainedCfg
from .table import Metric, PretrainedEntry

__all__ = [
    "CONFIG_NAME",
    "EXPORT_FILES",
    "FORMAT_VERSION",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "config_document",
    "document_cfg",
    "entry_from_export",
    "read_export_config",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CARD_NAME = "README.md"
#: The files an export consists of, in the order they are written.
EXPORT_FILES = (WEIGHTS_NAME, MODEL_CARD_NAME, CONFIG_NAME)
#: Version of the ``config.json`` layout; bumped on incompatible changes.
FORMAT_VERSION = 1
#: A Hub repo id, ``org/name``.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


def read_export_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an export's ``config.json``, without building anything.

    The architecture stays the raw ``"config"`` dict here;
    :func:`resnet3d.models.pretrained.load_export_config` checks it against the model code.

    Args:
        path: The ``config.json`` file, or the export folder holding it.

    Returns:
        The parsed dict, with ``"metrics"`` as :class:`Metric` objects.

    Raises:
        InvalidExportError: If the file is missing, is not JSON, or its content is invalid.
    """
    file = Path(path)
    if file.is_dir():
        file = file / CONFIG_NAME
    if not file.is_file():
        raise InvalidExportError(
            f"missing {CONFIG_NAME}: {file} does not exist. An export holds {WEIGHTS_NAME}, "
            f"{CONFIG_NAME} and {MODEL_CARD_NAME}, as written by save_pretrained() or "
            "'resnet3d export'.",
            path=file,
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidExportError(f"{file} is not valid JSON: {error}", path=file) from None
    if not isinstance(data, dict):
        raise InvalidExportError(
            f"{file} must hold a JSON object, got {type(data).__name__}", path=file
        )
    if data.get("library_name", "resnet3d") != "resnet3d":
        raise InvalidExportError(
            f"{file} was written by {data.get('library_name')!r}, not resnet3d; use "
            "resnet3d.models.convert for other libraries' weights",
            path=file,
        )
    version = data.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidExportError(
            f"{file} has format_version {version!r}; this resnet3d ({__version__}) reads "
            f"format_version <= {FORMAT_VERSION}. Upgrade resnet3d.",
            path=file,
        )
    raw = data.get("config")
    if not isinstance(raw, dict):
        raise InvalidExportError(
            f"{file} lacks the architecture: expected a 'config' object with ResNet3DConfig "
            f"fields, got {raw!r}",
            path=file,
        )
    num_classes = raw.get("num_classes")
    labels = data.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InvalidExportError(
                f"{file}: 'labels' must be a list of strings, got {labels!r}", path=file
            )
        if isinstance(num_classes, int) and num_classes and len(labels) != num_classes:
            raise InvalidExportError(
                f"{file}: {len(labels)} labels {labels} for a model with num_classes={num_classes}",
                path=file,
            )
    preprocessing = data.get("preprocessing")
    if preprocessing is not None and not isinstance(preprocessing, dict):
        raise InvalidExportError(
            f"{file}: 'preprocessing' must be an object or null, got {preprocessing!r}", path=file
        )
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list):
        raise InvalidExportError(f"{file}: 'metrics' must be a list, got {metrics!r}", path=file)
    try:
        data["metrics"] = [Metric.from_dict(m) for m in metrics]
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{file}: invalid metric: {error}", path=file) from None
    return data


def config_document(config: Mapping[str, Any], cfg: PretrainedCfg) -> dict[str, Any]:
    """The ``config.json`` of an export: the architecture and the :class:`PretrainedCfg`.

    Args:
        config: The model config's fields (``ResNet3DConfig.to_dict()``).
        cfg: What travels with the weights; its origin fields other than the alias are left
            out (a saved export is its own origin).
    """
    return {
        "library_name": "resnet3d",
        "library_version": __version__,
        "format_version": FORMAT_VERSION,
        "architecture": config.get("name") or None,
        "config": dict(config),
        "preprocessing": None if cfg.preprocessing is None else dict(cfg.preprocessing),
        "labels": None if cfg.labels is None else list(cfg.labels),
        "metrics": [m.to_dict() for m in cfg.metrics],
        "license": cfg.license,
        "dataset": cfg.dataset,
        "description": cfg.description,
        "alias": cfg.alias,
    }


def document_cfg(document: Mapping[str, Any]) -> PretrainedCfg:
    """The :class:`PretrainedCfg` that a ``config.json`` read by :func:`read_export_config`
    describes (without an origin: the loader adds where it was read from)."""
    return PretrainedCfg(
        architecture=document.get("architecture") or None,
        preprocessing=document.get("preprocessing"),
        labels=document.get("labels"),
        metrics=tuple(document.get("metrics") or ()),
        license=document.get("license"),
        dataset=document.get("dataset"),
        description=document.get("description"),
        alias=document.get("alias"),
        library_version=document.get("library_version"),
    )


def entry_from_export(
    folder: str | os.PathLike[str], *, alias: str, repo_id: str, revision: str
) -> PretrainedEntry:
    """The weights-table entry for an export pushed to ``repo_id`` at commit ``revision``.

    The sha256 is computed from the folder's ``model.safetensors``; preprocessing, labels,
    metrics and license come from its ``config.json``. Register it with
    :func:`resnet3d.weights.table.register_pretrained` or paste its fields into the table.

    Raises:
        InvalidExportError: If the folder is not a valid export.
        ValueError: If ``revision`` is not a 40-hex commit or another field is invalid.
    """
    path = Path(folder)
    meta = read_export_config(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise InvalidExportError(f"missing weights: {weights} does not exist", path=weights)
    return PretrainedEntry(
        alias=alias,
        architecture=meta["config"].get("name") or meta.get("architecture") or "custom",
        preprocessing=meta.get("preprocessing") or {},
        labels=tuple(meta.get("labels") or ()),
        description=meta.get("description") or "",
        repo_id=repo_id,
        revision=revision,
        sha256=sha256_file(weights),
        metrics=tuple(meta["metrics"]),
        license=meta.get("license"),
        dataset=meta.get("dataset") or "",
    )
