"""Metrics for a model card, read from the ``evaluation.json`` of ``resnet3d evaluate``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidExportError
from .table import Metric

__all__ = ["metrics_from_evaluation"]

logger = logging.getLogger(__name__)

_EVAL_MACRO = ("precision", "recall", "f1", "auroc")


def metrics_from_evaluation(
    path: str | os.PathLike[str], *, split: str | None = None
) -> tuple[list[Metric], list[str] | None]:
    """Read the metrics of an ``evaluation.json`` written by ``resnet3d evaluate``.

    For each level (volume, scan, patient) it takes the accuracy and the macro precision,
    recall, F1 and AUROC, all fractions. The split text says which data and level they were
    measured on, e.g. ``"test split, patient level (n=44)"``.

    Args:
        path: The JSON file: ``{"split": ..., "labels": [...], "levels": {level: report}}``,
            or a single ``ClassificationReport.to_dict()``.
        split: Which data was evaluated (e.g. ``"CC-CCII test"``), used as given. Default: the
            file's ``"split"`` entry (``resnet3d evaluate`` records its ``--split``; a patient
            split's name ``"test"`` reads ``"test split"``), else ``"split not recorded"``
            (with a warning).

    Returns:
        The metrics and the labels the file names (``None`` if it names none).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InvalidExportError: If the file is not such a JSON document.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"evaluation JSON not found: {file}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidExportError(f"{file} is not valid JSON: {error}", path=file) from None
    if not isinstance(doc, dict):
        raise InvalidExportError(f"{file} must hold a JSON object", path=file)
    split = split or _split_text(doc.get("split"), file)
    levels = doc.get("levels")
    if levels is None and "accuracy" in doc:
        levels = {str(doc.get("level", "volume")): doc}
    if not isinstance(levels, dict) or not levels:
        raise InvalidExportError(
            f"{file} is not an evaluation report: expected {{'labels': [...], 'levels': "
            "{'volume': {...}, 'scan': {...}}} as written by 'resnet3d evaluate --out-dir', or a "
            "single report with 'accuracy' and 'macro'",
            path=file,
        )
    metrics = []
    for level, report in levels.items():
        if not isinstance(report, dict):
            raise InvalidExportError(f"{file}: level {level!r} is not an object", path=file)
        where = f"{split}, {level} level" + (
            f" (n={report['n_samples']})" if "n_samples" in report else ""
        )
        values = [("accuracy", report.get("accuracy"))]
        macro = report.get("macro") or {}
        values += [(f"macro_{name}", macro.get(name)) for name in _EVAL_MACRO]
        for name, value in values:
            # Undefined values (None, e.g. AUROC with one class present) are left out.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(name=f"{level}_{name}", value=value, split=where))
    labels = doc.get("labels")
    return metrics, (list(labels) if isinstance(labels, list) else None)


def _split_text(recorded: Any, file: Path) -> str:
    """How the model card names the data an ``evaluation.json`` was measured on."""
    if isinstance(recorded, str) and recorded.strip():
        name = recorded.strip()
        # resnet3d evaluate records its --split: a patient split's name, or "all".
        if name in ("train", "valid", "test"):
            return f"{name} split"
        return "all scans (no split)" if name == "all" else name
    logger.warning(
        "%s does not record which split it evaluated (written before resnet3d evaluate "
        "recorded it); pass split= (CLI: --split) to name it in the model card",
        file,
    )
    return f"split not recorded ({file.name})"
