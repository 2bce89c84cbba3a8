"""End-to-end workflows on folders of scans: train, evaluate, predict.

These glue the pieces together the way the CLI (and most users) need them: index a data
set, split it by patient (saved next to the checkpoints), build volume data sets from the
model's preprocessing spec, and report metrics at volume, scan and patient level.

Video files are scans whose slices are frames: a clip is a volume, a video a scan and a
group (UCF101's ``gNN``) a patient, so the same three levels are reported; for a video data
set ``evaluation.json`` names them (``"level_names"``: clip, video, group).

Data meet a model by class name, never by position: the same scans laid out as CC-CCII
(classes ``NCP, CP, Normal``) or as a class tree (``CP, NCP, Normal``) are scored alike, and
a class the model does not know is an error naming both sets (:func:`align_classes`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.dataset import VolumeDataset
from .data.files import is_junk_name, is_video_name, natural_key
from .data.index import ScanIndex
from .data.split import Split, split_by_patient
from .data.volumes import SliceStacker
from .engine import checkpoint as ckpt
from .engine.device import autocast
from .engine.distributed import DistInfo
from .engine.loader import make_loader, prepare_batch
from .engine.predict import Predictions, predict_loader
from .engine.runtime import resolve_runtime
from .engine.train import TrainConfig, Trainer, TrainResult, resume_path
from .metrics import ClassificationReport, classification_report
from .metrics import require_matplotlib as _require_matplotlib
from .models.config import ResNet3DConfig
from .models.resnet import ResNet3D
from .weights.cfg import PretrainedCfg

logger = logging.getLogger(__name__)

LEVELS = ("volume", "scan", "patient")
#: What the levels are for a data set of videos (:func:`level_names`).
VIDEO_LEVELS = {"volume": "clip", "scan": "video", "patient": "group"}
SPLIT_FILE = "split.json"


def __getattr__(name: str) -> Any:
    # ``workflows.sweep`` is :func:`resnet3d.sweep.sweep`. The sweep package is built on this
    # module, so it is imported by name when first asked for, never by this module's import.
    if name == "sweep":
        import importlib

        return importlib.import_module("resnet3d.sweep").sweep
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def class_positions(
    data_classes: Sequence[str], model_classes: Sequence[str], what: str = "the model"
) -> list[int]:
    """The model output of each data class, matched by name.

    Args:
        data_classes: The data set's class names, in its label order.
        model_classes: The names of the model's outputs, in output order.
        what: Names the model in the error message.

    Returns:
        ``positions[k]``: the output index of ``data_classes[k]``.

    Raises:
        ValueError: If a data class is not among the model's (one line, both sets).
    """
    model_list = [str(name) for name in model_classes]
    unknown = [name for name in data_classes if name not in model_list]
    if unknown:
        raise ValueError(
            f"the data's classes {list(data_classes)} include {unknown}, which {what} does "
            f"not know: its classes are {model_list}; classes are matched by name, so rename "
            "the class folders (or the CSV labels) to the model's, or train a model for them"
        )
    return [model_list.index(name) for name in data_classes]


def align_classes(
    index: ScanIndex, classes: Sequence[str], what: str = "the model", *, exact: bool = False
) -> ScanIndex:
    """``index`` relabelled so that its label indices are positions in ``classes``.

    Its classes become ``classes`` (in that order); each scan keeps its class name. An
    index already in that order is returned as it is.

    Args:
        index: The data set.
        classes: The class names to index by (a model's outputs or a checkpoint's labels).
        what: Names ``classes``' owner in the error message.
        exact: Require the index's classes to be exactly ``classes`` as sets (resuming a
            run); otherwise the classes its scans have must be among them (evaluation: a
            data set may lack some of a model's classes).

    Raises:
        ValueError: If a class of the data set is not in ``classes`` (or, with ``exact``, the
            sets differ); the message lists both.
    """
    classes = tuple(str(name) for name in classes)
    if index.classes == classes:
        return index
    if exact and set(index.classes) != set(classes):
        raise ValueError(
            f"the data's classes {list(index.classes)} are not the classes of {what} "
            f"{list(classes)}"
        )
    labelled = {r.label for r in index}
    present = [name for name in index.classes if name in labelled]
    positions = dict(zip(present, class_positions(present, classes, what)))
    rows = [dataclasses.replace(r, label_index=positions[r.label]) for r in index]
    if list(index.classes) != [c for c in classes if c in index.classes]:
        logger.info(
            "matched the data's classes %s to %s's %s by name",
            list(index.classes),
            what,
            list(classes),
        )
    return ScanIndex(rows, classes, index.report, index.root)


def load_or_make_split(
    index: ScanIndex,
    out_dir: str | os.PathLike[str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    check_settings: bool = True,
) -> Split:
    """The run's patient split: read from ``out_dir/split.json`` if present, else made and saved.

    Reusing the saved split is what keeps a resumed run (and its evaluation) on the same
    patients; a split file that no longer matches the data set is an error. The index is
    matched to the saved split's classes by name (the same scans indexed in another class
    order, e.g. as a class tree, get the same split); :attr:`Split.index` is that index.

    Args:
        index: The data set.
        out_dir: The run folder.
        fractions: Train, valid, test shares (for a new split).
        seed: The split's seed (for a new split).
        check_settings: Refuse a saved split made with other ``fractions`` or ``seed``
            (else it would be used in their place, silently).

    Raises:
        ValueError: If the saved split has other classes, or (``check_settings``) other
            settings; the message lists each difference.
        DatasetLayoutError: If the saved split does not fit the data set.
    """
    path = Path(out_dir) / SPLIT_FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            saved = None  # Split.from_json says what is wrong with it
        if isinstance(saved, dict) and isinstance(saved.get("classes"), list):
            index = align_classes(index, saved["classes"], f"the split {path}", exact=True)
        split = Split.from_json(path, index)
        if check_settings:
            differences = []
            if split.seed is not None and split.seed != seed:
                differences.append(f"split_seed: {split.seed} -> {seed}")
            # A split without a seed was not drawn (a fixed list, e.g. UCF101's): its
            # fractions are the shares it holds, not a setting to compare.
            if split.seed is not None and split.fractions != tuple(float(f) for f in fractions):
                differences.append(
                    f"fractions: {list(split.fractions)} -> {[float(f) for f in fractions]}"
                )
            if differences:
                raise ValueError(
                    f"{path} was made with other settings than this run asks for: "
                    f"{'; '.join(differences)}; pass the saved settings, or use another "
                    "out_dir for a new split"
                )
        logger.info("using the saved patient split %s", path)
        return split
    split = split_by_patient(index, fractions=fractions, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    split.to_json(path)
    logger.info("saved the patient split to %s", path)
    return split


def fit_from_folder(
    data: str | os.PathLike[str],
    config: TrainConfig,
    stacker: SliceStacker,
    *,
    layout: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    resume: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train on a folder of scans with a patient-level split saved next to the checkpoints.

    Args:
        data: The data set (see :meth:`~resnet3d.data.index.ScanIndex.from_path`).
        config: The training run.
        stacker: How scans become volumes (stored in the checkpoints as the model's
            preprocessing spec).
        layout: ``"auto"``, ``"ccii"``, ``"tree"`` or ``"csv"``.
        fractions: Train, valid, test shares of each class's patients.
        split_seed: Seed of the split.
        resume: ``None``, ``"auto"`` or a checkpoint path (see :meth:`Trainer.fit`).
        cache: A volume cache folder built by ``resnet3d build-volumes``.

    Returns:
        The :class:`~resnet3d.engine.train.TrainResult`.
    """
    index = ScanIndex.from_path(data, layout)
    checkpoint = resume_path(config.out_dir, resume) if resume is not None else None
    previous = ckpt.load_checkpoint(checkpoint) if checkpoint is not None else None
    if previous is not None and previous.get("labels"):
        # Resume in the checkpoint's class order, whatever order this layout lists them in.
        try:
            index = align_classes(index, previous["labels"], f"{checkpoint}", exact=True)
        except ValueError as error:
            raise ckpt.CheckpointError(f"cannot resume {checkpoint}: {error}") from None
    # When resuming, the split settings are compared with the checkpoint's (with all the
    # other settings, in one error) rather than with the split file's.
    recorded = previous is not None and "split" in (previous.get("metadata") or {})
    split = load_or_make_split(
        index, config.out_dir, fractions, split_seed, check_settings=not recorded
    )
    index = split.index
    logger.info("split: %s", split.summary())
    train_set = VolumeDataset(split.train, stacker, cache=cache)
    valid_set = VolumeDataset(split.valid, stacker, cache=cache)
    if len(valid_set) == 0:
        # Not an error: a smoke test on a handful of patients is a fair use. But best.pt then
        # means "lowest training loss", which the user must know.
        logger.warning(
            "the validation split has no patients (fractions %s; the split is logged above): "
            "best.pt will follow the training loss, not a validation metric; give more "
            "patients or a larger validation fraction",
            ",".join(f"{f:g}" for f in fractions),
        )
    metadata = ckpt.run_metadata(
        stacker.to_dict(),
        index.classes,
        data=data,
        split_file=SPLIT_FILE,
        split_seed=split_seed,
        fractions=fractions,
    )
    del previous  # the trainer reads the checkpoint again, onto its parameters
    trainer = Trainer(
        config,
        train_set,
        valid_set,
        index.classes,
        split_hash=split.hash,
        metadata=metadata,
    )
    return trainer.fit(resume=resume)


def model_from_checkpoint(path: str | os.PathLike[str]) -> ResNet3D:
    """Rebuild the model of a training checkpoint (``last.pt``/``best.pt``).

    The checkpoint's preprocessing spec and labels are attached as ``model.pretrained_cfg``
    so that evaluation and prediction prepare scans exactly as in training.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If it is not a readable resnet3d training checkpoint.
    """
    state = ckpt.load_checkpoint(path)
    model = ResNet3D(ResNet3DConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    model.pretrained_cfg = PretrainedCfg.from_checkpoint(state, path)
    return model.eval()


def stacker_for(model: ResNet3D, **overrides: Any) -> SliceStacker:
    """The volume builder a model expects, from ``model.pretrained_cfg["preprocessing"]``.

    Args:
        model: A model from :func:`model_from_checkpoint` or ``from_pretrained``.
        **overrides: Fields to change (e.g. ``threads``); ``None`` values are ignored.

    Raises:
        ValueError: If the model carries no preprocessing spec and no overrides give one.
    """
    cfg = model.pretrained_cfg
    spec = dict(cfg.preprocessing or {}) if cfg is not None else {}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not spec and not overrides:
        raise ValueError(
            "the model has no preprocessing spec (pretrained_cfg['preprocessing']): load it "
            "with from_pretrained or model_from_checkpoint, or pass the stacker settings "
            "(depth, size, ...) explicitly"
        )
    return SliceStacker.from_dict(spec, **overrides)


def model_labels(model: ResNet3D) -> list[str]:
    """Class names of a model's outputs (``"0"``, ``"1"``... when it carries none)."""
    return model_class_names(model) or [str(i) for i in range(model.num_classes)]


def model_class_names(model: ResNet3D) -> list[str] | None:
    """The class names a model carries (``pretrained_cfg["labels"]``), or ``None``."""
    cfg = model.pretrained_cfg
    labels = list(cfg.labels or ()) if cfg is not None else []
    return labels if labels and len(labels) == model.num_classes else None


def dataset_classes(dataset: Any) -> list[str] | None:
    """Class names of a data set's labels: its ``index.classes`` or ``classes``, if any."""
    classes = getattr(getattr(dataset, "index", None), "classes", None)
    if classes is None:
        classes = getattr(dataset, "classes", None)
    if classes is None or isinstance(classes, str):
        return None
    return [str(name) for name in classes]


def align_to_model(
    index: ScanIndex, model: ResNet3D, labels: Sequence[str] | None = None
) -> ScanIndex:
    """``index`` relabelled in the order of the model's outputs, by class name.

    Args:
        index: The data set.
        model: The model; its ``pretrained_cfg["labels"]`` name its outputs.
        labels: Names of the outputs, overriding the model's.

    Returns:
        The index with the model's classes; a data set may lack some of them. A model that
        names no classes takes the data's classes by position (logged as a warning) when
        the counts agree.

    Raises:
        ValueError: If a class of the data is unknown to the model (both sets are listed),
            or a model without class names has another number of outputs.
    """
    names = list(labels) if labels is not None else model_class_names(model)
    if names is None:
        _by_position(index.classes, model)
        return index
    return align_classes(index, names)


def _by_position(classes: Sequence[str], model: ResNet3D) -> None:
    """Accept (with a warning) a model without class names for data with ``classes``."""
    if len(classes) != model.num_classes:
        raise ValueError(
            f"the model names no classes and has {model.num_classes} outputs; the data has "
            f"{len(classes)} classes {list(classes)}: pass labels= naming the model's outputs"
        )
    logger.warning(
        "the model names no classes: the data's classes %s are taken as its outputs in that order",
        list(classes),
    )


def level_names(index: ScanIndex) -> dict[str, str]:
    """What each evaluation level is for ``index``: ``volume``/``scan``/``patient`` for
    scans, ``clip``/``video``/``group`` when every scan is a video file."""
    if len(index) and all(is_video_name(r.path.name) for r in index):
        return dict(VIDEO_LEVELS)
    return {level: level for level in LEVELS}


def expand_scans(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Scan paths with folders of videos replaced by their videos (natural order).

    A folder that holds video files but no slice file (directly or in subfolders, e.g. a
    ``class/<video>`` tree) stands for its videos; any other path is kept as given.

    Args:
        paths: Scan folders, NIfTI files, video files or folders of videos.

    Returns:
        The scans.
    """
    out: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            out.append(path)
            continue
        videos: list[Path] = []
        slices = False
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted((d for d in dirs if not is_junk_name(d)), key=natural_key)
            for name in sorted(files, key=natural_key):
                if is_video_name(name) and not name.startswith("."):
                    videos.append(Path(folder) / name)
                elif folder == os.fspath(path) and not is_junk_name(name):
                    slices = True
        out.extend(videos if videos and not slices else [path])
    return out


@dataclass
class Evaluation:
    """Metrics of one model on one data set at volume, scan and patient level.

    For videos the levels are clip, video and group (:attr:`level_names`); the keys stay
    ``volume``, ``scan`` and ``patient``.
    """

    reports: dict[str, ClassificationReport]
    predictions: Predictions
    files: list[Path] = field(default_factory=list)
    level_names: dict[str, str] = field(default_factory=lambda: {lv: lv for lv in LEVELS})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: one report per level, plus the sample counts."""
        return {level: report.to_dict() for level, report in self.reports.items()}

    def summary(self) -> str:
        """One line per level: accuracy, macro F1 and macro AUROC."""
        lines = []
        for level, report in self.reports.items():
            name = self.level_names.get(level, level)
            lines.append(
                f"{name:8s} n={report.n_samples:5d}  accuracy {report.accuracy:.4f}  "
                f"macro-F1 {report.macro['f1']:.4f}  macro-AUROC {report.macro['auroc']:.4f}"
            )
        return "\n".join(lines)


def evaluate_model(
    model: ResNet3D,
    dataset: VolumeDataset,
    *,
    labels: Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    ci: bool = False,
    split: str | None = None,
) -> Evaluation:
    """Evaluate at volume, scan (mean of its volumes) and patient (mean of its volumes) level.

    The data set's classes are matched to the model's outputs by name (a data set indexed
    as CC-CCII or as a class tree scores the same). A data set may lack some of the model's
    classes: the reports still have a row per model class, where an absent class has support
    0, recall 0 and no AUROC (``null`` in JSON), so macro averages that include it (macro
    AUROC: undefined) are not comparable with those of a data set that has every class; the
    weighted averages leave it out.

    Args:
        model: The model.
        dataset: Volumes with labels, e.g. ``VolumeDataset(split.test, stacker)``; its class
            names are ``dataset.index.classes`` (or ``dataset.classes``). A data set without
            class names is taken in the model's output order.
        labels: Names of the model's outputs, in order; default the model's.
        out_dir: If given, writes ``evaluation.json`` and, with ``plots``, confusion-matrix
            and ROC PNGs per level (matplotlib).
        plots: Write the PNGs.
        batch_size: Volumes per forward pass.
        device: Device; default CUDA when present.
        precision: ``"fp32"`` (default, for reported numbers), ``"bf16"``, ``"fp16"``, ``"auto"``.
            The memory layout follows :func:`resnet3d.engine.runtime.resolve_runtime` (``"auto"``).
        workers: DataLoader workers; default sized to the device.
        ci: Add bootstrap confidence intervals (resampling patients).
        split: Which data ``dataset`` is, e.g. ``"test"`` (a patient split's name) or
            ``"CC-CCII test"``; recorded as ``"split"`` in ``evaluation.json``, where
            ``resnet3d export`` reads it to name the split in the model card.

    Returns:
        The :class:`Evaluation`.

    Raises:
        ValueError: If the data set is empty, has a class the model does not know (the
            message lists both sets) or ``precision`` is not allowed.
        ImportError: If plots are asked for and matplotlib is missing (raised before the
            model runs).
    """
    named = list(labels) if labels is not None else model_class_names(model)
    labels = named if named is not None else model_labels(model)
    if len(dataset) == 0:
        raise ValueError("the evaluation set has no volumes")
    positions = _label_positions(dataset, model, named)
    if plots and out_dir is not None:
        _require_matplotlib()  # fail before the predictions, not after them
    # The layout predict_scans and training use ("auto"): what resnet3d evaluate prints.
    runtime = resolve_runtime(device, precision)
    model = model.to(runtime.device).eval()
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    loader = make_loader(
        dataset,
        batch_size,
        device=runtime.device,
        dist_info=DistInfo(),
        shuffle=False,
        workers=workers,
        compact=True,
    )
    predictions = predict_loader(
        model,
        loader,
        device=runtime.device,
        precision=runtime.precision,
        channels_last=runtime.channels_last,
    )
    if positions is not None:
        predictions = _relabel(predictions, positions)
    y = predictions.labels
    scans = [f"{p}/{s}" for p, s in zip(predictions.patient_ids, predictions.scan_ids)]
    common: dict[str, Any] = {"labels": labels, "ci": ci, "zero_division": 0.0}
    reports = {
        "volume": classification_report(
            y, predictions.probs, ci_groups=predictions.patient_ids if ci else None, **common
        ),
        "scan": classification_report(
            y,
            predictions.probs,
            groups=scans,
            ci_groups=predictions.patient_ids if ci else None,
            **common,
        ),
        "patient": classification_report(
            y, predictions.probs, groups=predictions.patient_ids, **common
        ),
    }
    index = getattr(dataset, "index", None)
    names = level_names(index) if isinstance(index, ScanIndex) else {lv: lv for lv in LEVELS}
    evaluation = Evaluation(reports=reports, predictions=predictions, level_names=names)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        target = out / "evaluation.json"
        document: dict[str, Any] = {"labels": labels, "levels": evaluation.to_dict()}
        if names != {lv: lv for lv in LEVELS}:
            document["level_names"] = names
        if split is not None:
            document = {"split": split, **document}
        target.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        evaluation.files.append(target)
        if plots:
            for level, report in reports.items():
                evaluation.files.append(
                    report.plot_confusion_matrix(out / f"confusion_{level}.png")
                )
                evaluation.files.append(report.plot_roc(out / f"roc_{level}.png"))
    return evaluation


def _label_positions(dataset: Any, model: ResNet3D, names: list[str] | None) -> np.ndarray | None:
    """Model output of each of the data set's label indices, or ``None`` to keep them."""
    classes = dataset_classes(dataset)
    if classes is None:
        return None
    index = getattr(dataset, "index", None)
    present = (
        [c for c in classes if c in {r.label for r in index}]
        if isinstance(index, ScanIndex)
        else classes
    )
    if names is None:
        _by_position(classes, model)
        return None
    matched = dict(zip(present, class_positions(present, names)))
    absent = [n for n in names if n not in present]
    if absent:
        logger.info(
            "the data set has no scans of %s: they are reported with support 0 (no AUROC)",
            absent,
        )
    if [matched.get(c, k) for k, c in enumerate(classes)] == list(range(len(classes))):
        return None
    return np.array([matched.get(c, -1) for c in classes], dtype=np.int64)


def _relabel(predictions: Predictions, positions: np.ndarray) -> Predictions:
    """Predictions with the data set's label indices turned into the model's."""
    y = predictions.labels
    known = y >= 0
    mapped = np.where(known, positions[np.where(known, y, 0)], -1)
    loss = predictions.loss
    if loss is not None and known.any():
        picked = predictions.probs[known, mapped[known]]
        loss = float(-np.log(np.maximum(picked, np.finfo(np.float64).tiny)).mean())
    return dataclasses.replace(predictions, labels=mapped, loss=loss)


@dataclass
class ScanPrediction:
    """Class probabilities of one scan (mean over its volumes)."""

    path: Path
    n_volumes: int
    probs: np.ndarray
    labels: list[str]

    @property
    def label(self) -> str:
        """The most probable class."""
        return self.labels[int(np.argmax(self.probs))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scan": os.fspath(self.path),
            "n_volumes": self.n_volumes,
            "prediction": self.label,
            "probabilities": {k: float(v) for k, v in zip(self.labels, self.probs)},
        }


@torch.no_grad()
def predict_scans(
    model: ResNet3D,
    scans: Sequence[str | os.PathLike[str]],
    *,
    stacker: SliceStacker | None = None,
    batch_size: int = 8,
    device: str | None = None,
    precision: str = "fp32",
) -> list[ScanPrediction]:
    """Per-scan class probabilities: every volume of the scan, softmax, mean.

    Args:
        model: The model; its ``pretrained_cfg`` configures the volume builder unless
            ``stacker`` is given.
        scans: Scan folders, NIfTI files or video files (see :func:`expand_scans` for
            folders of videos).
        stacker: Override the model's preprocessing.
        batch_size: Volumes per forward pass.
        device: Device; default CUDA when present.
        precision: Inference precision (``"fp32"`` default).

    Raises:
        FileNotFoundError: If a scan does not exist.
        ValueError: If a scan yields no volume (shorter than the depth with
            ``remainder="drop"``), or the model has no preprocessing spec.
    """
    stacker = stacker if stacker is not None else stacker_for(model)
    labels = model_labels(model)
    runtime = resolve_runtime(device, precision)
    torch_device, resolved, channels_last = runtime.device, runtime.precision, runtime.channels_last
    model = model.to(torch_device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    results = []
    for scan in scans:
        path = Path(scan)
        if not path.exists():
            raise FileNotFoundError(f"scan not found: {path}")
        # Compact (gray as one channel, 8-bit as uint8): restored exactly on the device.
        volumes = torch.from_numpy(stacker.load(path, compact=True))
        if len(volumes) == 0:
            raise ValueError(
                f"{path}: no volume of depth {stacker.depth} (remainder={stacker.remainder!r}); "
                "use a stacker with remainder='pad'"
            )
        probs = []
        for start in range(0, len(volumes), batch_size):
            batch = volumes[start : start + batch_size]
            x = prepare_batch(batch, torch_device, channels_last, stacker.channels)
            with autocast(torch_device, resolved):
                logits = model(x)
            probs.append(torch.softmax(logits.float(), dim=1).cpu().double().numpy())
        mean = np.concatenate(probs).mean(axis=0)
        results.append(ScanPrediction(path=path, n_volumes=len(volumes), probs=mean, labels=labels))
    return results
