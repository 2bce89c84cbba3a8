"""Writing an export folder, atomically: ``save_pretrained``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cfg import PretrainedCfg
from .export_format import CONFIG_NAME, EXPORT_FILES, MODEL_CARD_NAME, WEIGHTS_NAME, config_document
from .model_card import write_model_card
from .state_dict import listing
from .table import Metric

if TYPE_CHECKING:
    from ..models.resnet import ResNet3D

__all__ = ["save_pretrained"]

logger = logging.getLogger(__name__)


def as_metrics(metrics: Iterable[Metric | Mapping[str, Any]] | None) -> list[Metric]:
    if metrics is None:
        return []
    out = []
    for metric in metrics:
        out.append(metric if isinstance(metric, Metric) else Metric.from_dict(metric))
    return out


def save_pretrained(
    model: ResNet3D,
    save_directory: str | os.PathLike[str],
    *,
    preprocessing: Mapping[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    metrics: Iterable[Metric | Mapping[str, Any]] | None = None,
    license: str | None = None,
    dataset: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a Hub-ready export folder, atomically.

    The folder gets ``model.safetensors``, ``config.json`` and a model card ``README.md``.
    Everything is written into a temporary folder beside ``save_directory`` first and then
    swapped in with :func:`os.replace`, so an interrupted save leaves a previous export intact
    (and leaves no half-written files).

    A folder that exists and is not empty is refused unless ``overwrite=True``: it may hold
    files the user wrote (a ``README.md`` of their own). With ``overwrite=True`` only the
    export's files are replaced; anything else in the folder (a ``.git`` clone, notes) is kept.

    Metadata not given is taken from ``model.pretrained_cfg`` (set by :func:`from_pretrained`).

    Args:
        model: The model to save.
        save_directory: The export folder (created if needed).
        preprocessing: The ``volumes.SliceStacker`` arguments the model expects (``depth``,
            ``size``, ``channels``, ``window``, ...).
        labels: Class names in output order (one per output).
        metrics: :class:`~resnet3d.weights.table.Metric` objects or dicts
            ``{"name", "value", "split", "unit"}`` measured for these weights.
        license: SPDX license id of the weights.
        dataset: The training data, for the model card.
        description: One line for the model card.
        overwrite: Replace the export files (``model.safetensors``, ``config.json``,
            ``README.md``) of a folder that is not empty.

    Returns:
        The export folder.

    Raises:
        ValueError: If ``labels`` does not have one name per output, ``preprocessing`` has
            unknown keys or a ``channels`` that is not the model's ``in_channels``.
        NotADirectoryError: If ``save_directory`` exists and is a file.
        FileExistsError: If ``save_directory`` is a folder that is not empty and
            ``overwrite`` is false; the message lists what it holds.
    """
    from safetensors.torch import save_file

    cfg = getattr(model, "pretrained_cfg", None) or {}
    preprocessing = preprocessing if preprocessing is not None else cfg.get("preprocessing")
    labels = labels if labels is not None else cfg.get("labels")
    metric_list = as_metrics(metrics if metrics is not None else cfg.get("metrics"))
    license = license if license is not None else cfg.get("license")
    dataset = dataset if dataset is not None else cfg.get("dataset")
    description = description if description is not None else cfg.get("description")
    record = PretrainedCfg(  # checks labels and preprocessing on their own
        architecture=model.config.name or None,
        preprocessing=preprocessing,
        labels=labels,
        metrics=tuple(metric_list),
        license=license,
        dataset=dataset,
        description=description,
        alias=cfg.get("alias"),
    )
    _check_fits_model(model, record)

    target = Path(save_directory).expanduser()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"cannot save into {os.fspath(target)!r}: it is a file")
    if target.is_dir() and not overwrite:
        refuse_non_empty(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = config_document(model.config.to_dict(), record)
    # A plain mkdir, not mkdtemp: the export is for sharing, so the folder gets the mode the
    # umask gives any folder the user makes (mkdtemp's is 0700).
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(
            state,
            os.fspath(tmp / WEIGHTS_NAME),
            # One key only: safetensors writes metadata in hash-map order, and a reproducible
            # file (same weights, same sha256) matters for the weights table.
            metadata={"format": "pt"},
        )
        write_model_card(tmp / MODEL_CARD_NAME, model, document, metric_list)
        (tmp / CONFIG_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        # safetensors creates its file 0600 whatever the umask; give the weights the mode that
        # open() gave the config (0o666 & ~umask, or what the folder's default ACL says).
        os.chmod(tmp / WEIGHTS_NAME, stat.S_IMODE((tmp / CONFIG_NAME).stat().st_mode))
        _swap_into(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved %s to %s", model.config.name or "model", target)
    return target


def refuse_non_empty(target: Path) -> None:
    """Raise ``FileExistsError`` if ``target`` holds anything: the library did not write it."""
    held = sorted(p.name for p in target.iterdir())
    if held:
        ours = ", ".join(EXPORT_FILES)
        raise FileExistsError(
            f"{os.fspath(target)} is not empty (it holds {listing(held)}); nothing was "
            f"written. Choose an empty or new folder, or overwrite (--overwrite, "
            f"overwrite=True) to replace only {ours} and keep the rest"
        )


def _check_fits_model(model: ResNet3D, record: PretrainedCfg) -> None:
    """What only the model can check: one label per output, the spec's input channels."""
    labels = record.labels
    if labels is not None and model.num_classes and len(labels) != model.num_classes:
        raise ValueError(
            f"got {len(labels)} labels {list(labels)} for a model with "
            f"num_classes={model.num_classes}"
        )
    channels = (record.preprocessing or {}).get("channels")
    if channels is not None and channels != model.config.in_channels:
        raise ValueError(
            f"preprocessing channels={channels} but the model takes "
            f"in_channels={model.config.in_channels}"
        )


def _swap_into(tmp: Path, target: Path) -> None:
    """Move the finished export in ``tmp`` to ``target`` with ``os.replace``."""
    if not target.exists():
        os.replace(tmp, target)
        return
    foreign = [p.name for p in target.iterdir() if p.name not in EXPORT_FILES]
    if foreign:
        # Keep what is not ours (a .git clone, notes): replace our files one by one, the
        # config last, so a reader never sees a new config beside old weights.
        logger.debug("%s holds %s too; replacing the export files in place", target, foreign)
        for name in EXPORT_FILES:
            os.replace(tmp / name, target / name)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
