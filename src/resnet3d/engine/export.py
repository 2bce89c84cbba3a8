"""Training checkpoint to Hub-ready export: ``export_checkpoint`` (``resnet3d export``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidExportError
from ..models.config import ResNet3DConfig
from ..models.convert import strip_prefixes
from ..models.resnet import ResNet3D
from ..weights.cfg import PretrainedCfg
from ..weights.evaluation import metrics_from_evaluation
from ..weights.save import refuse_non_empty, save_pretrained
from ..weights.state_dict import check_state_dict
from ..weights.table import Metric

__all__ = ["export_checkpoint"]


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    eval_json: str | os.PathLike[str] | None = None,
    split: str | None = None,
    license: str | None = None,
    dataset: str | None = None,
    description: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Turn a training checkpoint (``best.pt``) into a Hub-ready export folder.

    The checkpoint is read with ``torch.load(weights_only=True)``; its model config, weights,
    labels and preprocessing spec (``metadata["preprocessing"]``) go into the export, and the
    metrics come from ``eval_json`` (see :func:`metrics_from_evaluation`).

    Args:
        checkpoint: A checkpoint written by ``resnet3d train``.
        out_dir: The export folder (written atomically by :func:`save_pretrained`).
        eval_json: ``evaluation.json`` of this checkpoint, from ``resnet3d evaluate``.
        split: Which data ``eval_json`` was measured on.
        license: SPDX id of the weights' license.
        dataset: The training data, for the model card.
        description: One line for the model card.
        overwrite: Replace the export files of a folder that is not empty (see
            :func:`save_pretrained`); without it such a folder is refused before any work.

    Returns:
        The export folder.

    Raises:
        FileNotFoundError: If a file does not exist.
        FileExistsError: If ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: If the checkpoint is unreadable or its weights do not match its config, or
            the evaluation's labels are not the checkpoint's.
    """
    from ..engine.checkpoint import load_checkpoint

    target = Path(out_dir).expanduser()
    if target.is_dir() and not overwrite:
        refuse_non_empty(target)  # before reading a checkpoint that may be large
    state = load_checkpoint(checkpoint)
    try:
        config = ResNet3DConfig.from_dict(state["model_config"])
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{checkpoint}: invalid model_config: {error}") from None
    model = ResNet3D(config)
    weights = strip_prefixes(state["model"])
    check_state_dict(weights, model, source=os.fspath(checkpoint))
    model.load_state_dict(weights, strict=True)
    # What the run trained with, read as evaluation and prediction read it.
    cfg = PretrainedCfg.from_checkpoint(state, checkpoint)
    labels = cfg.labels
    metrics: list[Metric] = []
    if eval_json is not None:
        metrics, eval_labels = metrics_from_evaluation(eval_json, split=split)
        if labels and eval_labels and list(eval_labels) != list(labels):
            raise ValueError(
                f"{eval_json} evaluates labels {eval_labels} but {checkpoint} was trained "
                f"with {list(labels)}: is it the evaluation of another model?"
            )
    return save_pretrained(
        model.eval(),
        out_dir,
        preprocessing=cfg.preprocessing,
        labels=labels,
        metrics=metrics,
        license=license,
        dataset=dataset,
        description=description,
        overwrite=overwrite,
    )
