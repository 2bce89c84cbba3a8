"""The training loop: the paper's recipe by default, AMP, DDP (torchrun), exact resume.

Defaults follow the reference paper (Li, Pei and Guo, medRxiv 10.1101/2021.01.21.21249999,
2021): cross-entropy, Adam at 1e-3, learning rate x0.1 every 10 epochs,
20 epochs, batch 32. The loop is data-agnostic: it trains on any data set whose items are
``(volume C x D x H x W, label, scan_id, patient_id)``; :func:`resnet3d.workflows.fit_from_folder`
builds those from a CC-CCII-style folder.

Resuming is exact: the data order of an epoch depends only on the seed and the epoch, and
checkpoints (written atomically at the end of every epoch) hold the model, optimizer,
scheduler, scaler and every RNG, so 2 epochs + 2 resumed epochs equal 4 epochs in one go.
A resume continues the same run or none: every setting that shapes the result (recipe, model,
preprocessing, split, precision, seed, augmentation) must equal the checkpoint's, and only
:data:`RESUME_MAY_CHANGE` may differ, so a checkpoint never records a setting it was not
trained with.

Class names, not positions, tie data to a model: pretrained weights whose head names the data
set's classes in another order are reordered to the data's order (logged), and a data set with
a class the head does not know is an error unless the head is replaced (``new_head``).

A NaN or infinite input or loss stops the run at once with a :class:`TrainingDivergedError`
naming the epoch, the batch and its scans. The check is collective under DDP: every rank
learns of a fault on any rank at the same step and stops with the same error, so none waits
forever for a peer.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from .._utils import atomic_open, check_choice, did_you_mean
from ..constants import CHANNELS_LAST_CHOICES
from ..errors import TrainingDivergedError
from ..models.factory import create_model
from ..models.resnet import ResNet3D
from ..weights.cfg import PretrainedCfg
from . import checkpoint as ckpt
from .augment import Augment, epoch_generator
from .device import autocast, resolve_device, resolve_precision, use_channels_last
from .distributed import DistInfo, all_reduce_sum, barrier, init_distributed, sync_buffers
from .loader import loader_channels, make_loader, prepare_batch
from .loss import cross_entropy
from .predict import Predictions, gather_objects, predict_loader

logger = logging.getLogger(__name__)

#: Validation metrics that can choose the ``best`` checkpoint, and whether higher is better.
MONITORS = {"accuracy": True, "macro_f1": True, "auroc": True, "loss": False}


#: :class:`TrainConfig` fields a resumed run may change. None of them changes what was
#: trained so far or the recipe from here on: more epochs, the patience of early stopping, the
#: folder's spelling, and where and how fast it runs (device, workers, memory layout,
#: ``torch.compile``, progress bars). The resolved precision must stay the same (``"auto"``
#: may stand for the precision the run used). Another device continues the same recipe; its
#: results are not bitwise those an uninterrupted run on the first device would give.
RESUME_MAY_CHANGE: tuple[str, ...] = (
    "out_dir",
    "epochs",
    "patience",
    "device",
    "workers",
    "channels_last",
    "compile",
    "progress",
)

#: Metadata entries a resumed run may change: where the data set lies (its scans are pinned
#: by the split hash) and the label list (compared by name on its own).
_METADATA_MAY_CHANGE = ("data", "labels")

#: Scans named in a divergence error before "and N more".
_SCANS_SHOWN = 8


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-able; saved with every checkpoint).

    Args:
        out_dir: Folder for checkpoints (``last.pt``, ``best.pt``), the log and the split.
        model: A registered model name (see ``resnet3d models``).
        model_overrides: Config fields for the model, e.g. ``{"dropout": 0.2}``.
        epochs: Epochs to train (paper: 20).
        batch_size: Samples per optimizer step per process, before accumulation (paper: 32).
        lr: Adam's initial learning rate (paper: 1e-3).
        lr_step: Epochs between learning-rate decays (paper: 10).
        lr_gamma: Learning-rate factor at each decay (paper: 0.1).
        weight_decay: Adam's weight decay (paper: none).
        precision: ``"auto"`` (bf16 on CUDA and on CPUs with native bf16, else fp32),
            ``"bf16"``, ``"fp16"`` (CUDA, with a gradient scaler) or ``"fp32"``.
        channels_last: ``"auto"``, ``"on"`` or ``"off"`` for ``channels_last_3d``.
        compile: Wrap the model in ``torch.compile``.
        grad_accum: Micro-batches per optimizer step (effective batch = batch x accum x ranks).
        workers: DataLoader workers per process; ``None`` sizes them to the machine.
        seed: Seed of the model's initialisation and of the data order.
        monitor: Validation metric that picks ``best``: accuracy, macro_f1, auroc or loss.
        patience: Stop after this many epochs without improvement (``None``: never).
        sync_bn: Use SyncBatchNorm across processes (multi-GPU runs).
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``...; ``None`` picks CUDA when present.
        progress: Show progress bars (rank 0 only).
        precise_bn: Before each validation, recompute the BatchNorm statistics with the
            current weights over this many training batches (forward only; 0: off, the
            paper's recipe). Running averages lag behind weights that move fast (short runs,
            small data sets, small batches), and an eval-mode model then predicts one class
            for everything; recomputing them fixes that (Wu and Johnson 2021, "precise BN").
        pretrained: Start from these weights instead of a random initialisation: anything
            :func:`resnet3d.from_pretrained` accepts (alias, Hub repo, export folder). The
            classifier is re-initialised for the data set's classes when their number
            differs; ``model`` is then ignored (the architecture comes with the weights).
        augment: Random changes to every training batch, on the device (validation and
            precise BN see the data as it is): ``"none"`` (the paper's recipe), or names
            from :data:`resnet3d.engine.augment.AUGMENTATIONS`, e.g. ``"flip,shift"`` (see
            :class:`resnet3d.engine.augment.Augment`). Draws depend only on ``seed``, the epoch and
            the rank, so a resumed run repeats an uninterrupted one exactly.
        new_head: With ``pretrained``: re-initialise the classifier for the data set's
            classes even when the weights' head has as many outputs. Needed when the head
            names other classes (e.g. fine-tuning a CC-CCII model on classes ``A``, ``B``,
            ``C``); without it that is an error, never a silent match by position.
        clip_sampling: Which ``depth`` frames (slices) each training sample takes:
            ``"uniform"`` (default: the same clips every epoch) or ``"random"``: new clip
            starts every epoch, each in its own segment of the video (see
            :class:`resnet3d.data.VolumeDataset`), drawn from ``seed``, the epoch and the
            video's position only, so a resumed run sees exactly the clips an uninterrupted
            one would. Needs a training set with ``with_clip_sampling`` (a
            :class:`~resnet3d.data.VolumeDataset`); validation always takes the uniform clips.
    """

    out_dir: str = "runs/resnet3d"
    model: str = "resnet18"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    lr_step: int = 10
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    precision: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    grad_accum: int = 1
    workers: int | None = None
    seed: int = 0
    monitor: str = "accuracy"
    patience: int | None = None
    sync_bn: bool = False
    device: str | None = None
    progress: bool = True
    precise_bn: int = 0
    pretrained: str | None = None
    augment: str = "none"
    new_head: bool = False
    clip_sampling: str = "uniform"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "lr_step", "grad_accum"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {self.lr_gamma!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_choice("precision", self.precision, ("auto", "bf16", "fp16", "fp32"))
        check_choice("channels_last", self.channels_last, CHANNELS_LAST_CHOICES)
        check_choice("monitor", self.monitor, tuple(MONITORS))
        if isinstance(self.precise_bn, bool) or not isinstance(self.precise_bn, int):
            raise ValueError(f"precise_bn must be an int >= 0, got {self.precise_bn!r}")
        if self.precise_bn < 0:
            raise ValueError(f"precise_bn must be an int >= 0, got {self.precise_bn!r}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 or None, got {self.workers!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience!r}")
        if not isinstance(self.augment, str):
            raise TypeError(
                f"augment must be a spec string such as 'flip,shift', got {self.augment!r}"
            )
        Augment.parse(self.augment)  # raises on a bad spec, naming the closest name
        check_choice("clip_sampling", self.clip_sampling, ("uniform", "random"))
        if not isinstance(self.new_head, bool):
            raise TypeError(f"new_head must be a bool, got {self.new_head!r}")
        if self.new_head and self.pretrained is None:
            raise ValueError(
                "new_head=True replaces the head of pretrained weights: pass pretrained= too"
            )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ValueError(f"{key!r} is not a TrainConfig field." + did_you_mean(key, names))
        return cls(**data)


@dataclass
class EpochResult:
    """One row of the training log."""

    epoch: int
    lr: float
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_macro_f1: float
    val_auroc: float
    seconds: float
    samples_per_second: float


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind."""

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_metric: float | None
    history: list[EpochResult]
    stopped_early: bool = False


class Trainer:
    """Trains a registered model on volume data sets with the paper's recipe.

    Args:
        config: The run's :class:`TrainConfig`.
        train_set: Training data set; items ``(volume, label, scan_id, patient_id)``.
        valid_set: Validation data set (same items), evaluated after every epoch.
        labels: Class names, index order (CC-CCII: ``("NCP", "CP", "Normal")``).
        split_hash: Identifies the patient split; a resume with another split is refused.
        metadata: JSON-able extras stored in every checkpoint (e.g. the preprocessing spec).
    """

    def __init__(
        self,
        config: TrainConfig,
        train_set: Dataset,
        valid_set: Dataset | None,
        labels: Sequence[str],
        *,
        split_hash: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if len(train_set) == 0:  # type: ignore[arg-type]
            raise ValueError("the training set is empty: no volumes to train on")
        train_set = _with_clip_sampling(train_set, config)
        self.config = config
        self.train_set = train_set
        self.valid_set = valid_set
        self.labels = list(labels)
        self.split_hash = split_hash
        self.metadata = dict(metadata or {})
        self.out_dir = Path(config.out_dir)

        self.dist: DistInfo = init_distributed(resolve_device(config.device).type)
        device = resolve_device(config.device)
        if device.type == "cuda" and self.dist.enabled and device.index is None:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.precision = resolve_precision(config.precision, device)
        self.channels_last = use_channels_last(config.channels_last, device, self.precision)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        torch.manual_seed(config.seed)
        self.model: ResNet3D = self._build_model().to(device)
        self._check_channels()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=config.lr_step, gamma=config.lr_gamma
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.epoch = 0
        self.step = 0
        self.best_metric: float | None = None
        self.epochs_without_improvement = 0
        self.history: list[EpochResult] = []

        net: nn.Module = self.model
        if config.sync_bn and self.dist.enabled:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if self.dist.enabled:
            net = DistributedDataParallel(
                net, device_ids=[device.index] if device.type == "cuda" else None
            )
        if config.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        self.net = net

        self.train_loader = make_loader(
            train_set,
            config.batch_size,
            device=device,
            dist_info=self.dist,
            shuffle=True,
            seed=config.seed,
            workers=config.workers,
            drop_last="single",
            compact=True,
        )
        self.valid_loader = (
            make_loader(
                valid_set,
                config.batch_size,
                device=device,
                dist_info=self.dist,
                shuffle=False,
                workers=config.workers,
                compact=True,
            )
            if valid_set is not None and len(valid_set) > 0  # type: ignore[arg-type]
            else None
        )
        self._bn_loader: Any = None
        self.augment = Augment.parse(config.augment)

    def _check_channels(self) -> None:
        """Fail before the first step when the data's channels are not the model's."""
        expected = self.model.config.in_channels
        for name, dataset in (("training", self.train_set), ("validation", self.valid_set)):
            channels = getattr(dataset, "channels", None)
            if isinstance(channels, int) and channels != expected:
                raise ValueError(
                    f"the {name} set gives {channels}-channel volumes but the model takes "
                    f"{expected}: make them agree with SliceStacker(channels={expected}) or "
                    f"model_overrides={{'in_channels': {channels}}}"
                )

    def _build_model(self) -> ResNet3D:
        config = self.config
        if config.pretrained is None:
            overrides = {"num_classes": len(self.labels), **config.model_overrides}
            return create_model(config.model, **overrides)
        from ..models.pretrained import from_pretrained

        model = from_pretrained(
            config.pretrained,
            num_classes=len(self.labels),
            in_channels=config.model_overrides.get("in_channels"),
        )
        logger.info("starting from pretrained weights %s", config.pretrained)
        self._match_pretrained_head(model)
        return model.train()

    def _match_pretrained_head(self, model: ResNet3D) -> None:
        """Tie a kept pretrained head's outputs to the data's classes by name.

        ``from_pretrained`` already replaced the head when the class count differs. A kept
        head whose names are the data's in another order is reordered (its rows permuted,
        an exact change); one that names other classes is an error unless ``new_head``.
        """
        cfg = model.pretrained_cfg or PretrainedCfg()
        if "num_classes" in cfg.adapted or model.num_classes == 0:
            # a fresh head for the data's classes (logged by from_pretrained)
            model.pretrained_cfg = cfg.replace(labels=tuple(self.labels))
            return
        head = list(cfg.labels or ())
        data = list(self.labels)
        if self.config.new_head:
            model.reset_classifier(len(data))
            logger.info(
                "re-initialised the classifier of %s for the data's classes %s (new_head; "
                "its head was %s)",
                self.config.pretrained,
                data,
                head or "unnamed",
            )
        elif not head:
            logger.warning(
                "the pretrained head of %s names no classes: its outputs are taken as the "
                "data's classes %s in that order; pass new_head=True (--new-head) to "
                "re-initialise it instead",
                self.config.pretrained,
                data,
            )
        elif head != data:
            if set(head) != set(data):
                raise ValueError(
                    f"the data set's classes {data} are not the classes of the pretrained "
                    f"head of {self.config.pretrained} {head} (unknown to it: "
                    f"{[c for c in data if c not in head]}); pass new_head=True (--new-head) "
                    "to train a new classifier for them"
                )
            order = [head.index(name) for name in data]
            classifier = model.fc
            with torch.no_grad():
                for param in (classifier.weight, classifier.bias):
                    if isinstance(param, torch.Tensor):
                        param.copy_(param[order])
            logger.info(
                "reordered the pretrained head's outputs from %s to the data's classes %s",
                head,
                data,
            )
        model.pretrained_cfg = cfg.replace(labels=tuple(data))

    # ------------------------------------------------------------------ checkpoints
    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: everything needed to continue exactly where the run is."""
        return {
            "format_version": ckpt.FORMAT_VERSION,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "best_metric": self.best_metric,
            "epochs_without_improvement": self.epochs_without_improvement,
            "model_name": self.config.model,
            "model_config": self.model.config.to_dict(),
            "train_config": self.config.to_dict(),
            "labels": self.labels,
            "split_hash": self.split_hash,
            "metadata": json.loads(json.dumps(self.metadata)),
            "history": [dataclasses.asdict(row) for row in self.history],
            "precision": self.precision,
            "world_size": self.dist.world_size,
            # CPU results are bitwise repeatable only at the same thread count (see
            # docs/training.md, Determinism); a resume at another count is warned about.
            "threads": torch.get_num_threads(),
        }

    def resume_differences(self, state: dict[str, Any]) -> list[str]:
        """How this run differs from a checkpoint's, one ``name: old -> new`` per setting.

        Everything that shapes the result counts: the :class:`TrainConfig` fields outside
        :data:`RESUME_MAY_CHANGE`, the resolved precision, the model config, the labels,
        the patient split, the metadata (the preprocessing spec, the split settings) and the
        number of processes; and ``epochs`` may not fall below the epochs already trained.
        Entries that an older checkpoint lacks are not compared.
        """
        differences: list[str] = []
        new_config = _plain(self.config.to_dict())
        if "train_config" in state:
            old_config = _plain(state["train_config"])
            defaults = _plain(dataclasses.asdict(TrainConfig()))
            for name, new in new_config.items():
                if name in RESUME_MAY_CHANGE or name == "precision":
                    continue
                old = old_config.get(name, defaults[name])
                if old != new:
                    differences.append(f"{name}: {old!r} -> {new!r}")
        trained = int(state.get("epoch", 0))
        if self.config.epochs < trained:
            old_epochs = (state.get("train_config") or {}).get("epochs", trained)
            differences.append(
                f"epochs: {old_epochs!r} -> {self.config.epochs!r} ({trained} already trained)"
            )
        if "precision" in state and state["precision"] != self.precision:
            differences.append(f"precision: {state['precision']!r} -> {self.precision!r}")
        model_named = {"model", "model_overrides", "pretrained", "new_head"}
        if not any(d.split(":")[0] in model_named for d in differences):
            differences += _dict_differences(
                "model config", _plain(state["model_config"]), _plain(self.model.config.to_dict())
            )
        old_labels = list(state.get("labels") or [])
        if "labels" in state and old_labels != self.labels:
            what = "labels (order)" if sorted(old_labels) == sorted(self.labels) else "labels"
            differences.append(f"{what}: {old_labels} -> {self.labels}")
        if state.get("split_hash", "") != self.split_hash:
            differences.append(
                f"patient split: {str(state.get('split_hash'))[:12]!r} -> "
                f"{self.split_hash[:12]!r} (another split would leak test patients)"
            )
        old_meta = _plain(state.get("metadata") or {})
        new_meta = _plain(self.metadata)
        for key in sorted(new_meta):
            if key in _METADATA_MAY_CHANGE or key not in old_meta:
                continue
            old, new = old_meta[key], new_meta[key]
            if isinstance(old, dict) and isinstance(new, dict):
                differences += _dict_differences(key, old, new)
            elif old != new:
                differences.append(f"{key}: {old!r} -> {new!r}")
        if "world_size" in state and int(state["world_size"]) != self.dist.world_size:
            differences.append(f"world_size: {state['world_size']} -> {self.dist.world_size}")
        return differences

    def load_state_dict(self, state: dict[str, Any], source: str | os.PathLike[str]) -> None:
        """Restore a checkpoint of this very run.

        Raises:
            CheckpointError: If this run differs from the checkpoint's in anything but
                :data:`RESUME_MAY_CHANGE`; one line lists every difference (``old -> new``).
        """
        differences = self.resume_differences(state)
        if differences:
            raise ckpt.CheckpointError(
                f"cannot resume {source}: this run differs from the checkpoint's in "
                f"{'; '.join(differences)}. Only {', '.join(RESUME_MAY_CHANGE)} may change on "
                "resume (more epochs, not fewer); run with the checkpoint's settings, or start "
                "a new run in another out_dir (--out-dir)"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.best_metric = state.get("best_metric")
        self.epochs_without_improvement = int(state.get("epochs_without_improvement", 0))
        self.history = [EpochResult(**row) for row in state.get("history", [])]
        self._warn_other_thread_count(state)

    def _warn_other_thread_count(self, state: dict[str, Any]) -> None:
        """Warn when a CPU run resumes at another thread count than it was trained with.

        It continues the same recipe, but CPU kernels split their reductions by thread (the
        batch statistics of BatchNorm, for one), so the numbers from here on are not bitwise
        those of an uninterrupted run; the thread count is "how fast", so it is not refused.
        """
        trained = state.get("threads")
        now = torch.get_num_threads()
        if self.device.type != "cpu" or not isinstance(trained, int) or trained == now:
            return
        logger.warning(
            "resuming with %d CPU threads; the checkpoint was trained with %d, so the run "
            "continues the same recipe but not bitwise as an uninterrupted run would; set "
            "OMP_NUM_THREADS=%d for an exact resume",
            now,
            trained,
            trained,
        )

    def resume(self, resume: str | os.PathLike[str]) -> bool:
        """Continue from a checkpoint: ``"auto"`` (``out_dir/last.pt`` if it exists) or a path.

        Returns:
            True if a checkpoint was loaded (``"auto"`` with none is a fresh start).

        Raises:
            FileNotFoundError: If an explicit path does not exist.
            CheckpointError: If the checkpoint is corrupt or from another run.
        """
        if self.dist.is_main:
            ckpt.clean_temporary_files(self.out_dir)
        barrier()
        path = resume_path(self.out_dir, resume)
        if path is None:
            logger.info("no checkpoint in %s: starting a new run", self.out_dir)
            return False
        # Loaded on the CPU: load_state_dict copies weights and optimizer state to the
        # parameters' device, and the RNG states must stay CPU tensors.
        state = ckpt.load_checkpoint(path, map_location="cpu")
        self.load_state_dict(state, path)
        logger.info("resumed from %s at epoch %d (step %d)", path, self.epoch, self.step)
        return True

    # ------------------------------------------------------------------------ loop
    def fit(self, resume: str | os.PathLike[str] | None = None) -> TrainResult:
        """Train until ``config.epochs`` (or early stopping), validating after each epoch.

        Args:
            resume: ``None`` (fresh run; refuses to overwrite an existing ``last.pt``),
                ``"auto"`` or a checkpoint path.
        """
        if resume is not None:
            self.resume(resume)
        elif self.last_path.exists():
            raise FileExistsError(
                f"{self.last_path} exists: pass resume='auto' (--resume auto) to continue that "
                "run, or choose another out_dir"
            )
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.clean_temporary_files(self.out_dir)
            self._rewrite_log()
        stopped_early = False
        while self.epoch < self.config.epochs:
            result = self._run_epoch()
            self.epoch += 1
            self.history.append(result)
            improved = self._track_best(result)
            if self.dist.is_main:
                self._append_log(result)
                if improved:
                    # best.pt first, as before (a crash between the two leaves last.pt one
                    # epoch behind, and the resumed run redoes that epoch); then last.pt is
                    # the same state: a link to it, not a second write.
                    ckpt.save_checkpoint(self.state_dict(), self.best_path)
                    ckpt.link_checkpoint(self.best_path, self.last_path)
                else:
                    ckpt.save_checkpoint(self.state_dict(), self.last_path)
            barrier()
            logger.info(_format_epoch(result, self.config.epochs))
            patience = self.config.patience
            if patience is not None and self.epochs_without_improvement >= patience:
                logger.info("early stopping: no improvement for %d epochs", patience)
                stopped_early = True
                break
        return TrainResult(
            out_dir=self.out_dir,
            last_checkpoint=self.last_path,
            best_checkpoint=self.best_path if self.best_path.exists() else None,
            best_metric=self.best_metric,
            history=list(self.history),
            stopped_early=stopped_early,
        )

    def _run_epoch(self) -> EpochResult:
        config = self.config
        sampler = self.train_loader.sampler
        sampler.set_epoch(self.epoch)  # type: ignore[attr-defined]
        set_epoch = getattr(self.train_set, "set_epoch", None)
        if callable(set_epoch):  # random clips: this epoch's draws (the BN pass sees them too)
            set_epoch(self.epoch)
        self.net.train()
        lr = self.optimizer.param_groups[0]["lr"]
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
        bar = _progress(
            total=len(self.train_loader),
            desc=f"epoch {self.epoch + 1}/{config.epochs}",
            enabled=config.progress and self.dist.is_main,
        )
        start = time.perf_counter()
        accum = config.grad_accum
        self.optimizer.zero_grad(set_to_none=True)
        n_batches = len(self.train_loader)
        channels = loader_channels(self.train_loader)
        augment_rng = epoch_generator(config.seed, self.epoch, self.dist.rank)
        augmenting = self.augment.enabled
        for i, (_, (volumes, labels, scans, patients)) in enumerate(self.train_loader):
            # When augmenting, the layout is set once, after the augmentation's own copy.
            x = prepare_batch(volumes, self.device, self.channels_last and not augmenting, channels)
            # Kept for the finite check, which looks at the input only when a loss is not
            # finite (a NaN or infinite voxel always makes it so): no extra pass or device
            # sync per step. uint8 volumes are finite by construction.
            raw = x if volumes.dtype.is_floating_point else None
            if augmenting:
                x = self.augment(x, augment_rng)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last_3d)
            y = labels.to(self.device, non_blocking=True).long()
            last_micro = (i + 1) % accum == 0 or i + 1 == n_batches
            sync = (
                contextlib.nullcontext()
                if last_micro or not self.dist.enabled
                else self.net.no_sync()  # type: ignore[operator]
            )
            with sync:
                with autocast(self.device, self.precision):
                    logits = self.net(x)
                loss = cross_entropy(logits, y)
                loss_value = float(loss.detach())
                self._check_finite(loss_value, raw, scans, patients, i, lr)
                self.scaler.scale(loss / accum).backward()
            if last_micro:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
            totals += torch.tensor(
                [loss_value * len(y), float((logits.argmax(1) == y).sum()), float(len(y))],
                dtype=torch.float64,
            )
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{totals[0] / totals[2]:.4f}",
                    samples_s=f"{totals[2] * self.dist.world_size / max(elapsed, 1e-9):.1f}",
                )
                bar.update(1)
        if bar is not None:
            bar.close()
        if config.precise_bn:
            self._recompute_bn_statistics(config.precise_bn)
        self.scheduler.step()
        if self.dist.enabled:
            totals = all_reduce_sum(totals, self.device)
        seconds = time.perf_counter() - start
        val = self.validate()
        return EpochResult(
            epoch=self.epoch + 1,
            lr=lr,
            train_loss=float(totals[0] / totals[2]),
            train_accuracy=float(totals[1] / totals[2]),
            val_loss=val.get("loss", float("nan")),
            val_accuracy=val.get("accuracy", float("nan")),
            val_macro_f1=val.get("macro_f1", float("nan")),
            val_auroc=val.get("auroc", float("nan")),
            seconds=seconds,
            samples_per_second=float(totals[2]) / max(seconds, 1e-9),
        )

    def _check_finite(
        self,
        loss_value: float,
        inputs: torch.Tensor | None,
        scans: Sequence[str],
        patients: Sequence[str],
        batch: int,
        lr: float,
    ) -> None:
        """Stop on a NaN or infinite input or loss on any rank, naming the batch's scans.

        A non-finite voxel makes the loss non-finite (BatchNorm spreads it over the batch), so
        the input is examined only then: ``inputs`` (the float batch before augmentation, or
        ``None`` for uint8 data) names the samples at fault. Under DDP the flag is summed over
        the ranks at every micro-batch, so all ranks see a fault together and raise the same
        error; none is left waiting in the backward pass's all-reduce for a rank that stopped.
        """
        flag = torch.tensor([float(not math.isfinite(loss_value))])
        if self.dist.enabled:
            flag = all_reduce_sum(flag, self.device)
        if not flag.any():
            return
        bad_inputs = None if inputs is None else ~torch.isfinite(inputs).flatten(1).all(dim=1)
        input_bad = bad_inputs is not None and bool(bad_inputs.any())
        if input_bad and bad_inputs is not None:
            mask = bad_inputs.cpu().tolist()
            kept = [i for i, bad in enumerate(mask) if bad]
            names = _scan_names([scans[i] for i in kept], [patients[i] for i in kept])
        else:
            names = _scan_names(scans, patients)
        parts = gather_objects((input_bad, loss_value, names))
        where = f"at epoch {self.epoch + 1}, batch {batch + 1} (step {self.step + 1})"
        tail = f"the run stops and {self.best_path} is unchanged"
        with_bad_input = [n for bad, _, local in parts if bad for n in local]
        if with_bad_input:
            raise TrainingDivergedError(
                f"non-finite input {where}: scan(s) {_shorten(with_bad_input)} hold NaN or "
                "infinite values; check the data (the slices, the volume cache, a transform); "
                + tail
            )
        value = next(v for _, v, _ in parts if not math.isfinite(v))
        batch_scans = [n for _, _, local in parts for n in local]
        raise TrainingDivergedError(
            f"loss is {value} {where} on a batch of scan(s) {_shorten(batch_scans)} whose "
            f"input is finite: training diverged; lower the learning rate (--lr, now {lr:g}), "
            "try precision fp32, or check those scans; " + tail
        )

    def _recompute_bn_statistics(self, n_batches: int) -> None:
        """Precise BN: exact averages of batch statistics under the current weights."""
        if self._bn_loader is None:
            # Its own shuffled order (another seed), set per epoch: deterministic on resume.
            self._bn_loader = make_loader(
                self.train_set,
                self.config.batch_size,
                device=self.device,
                dist_info=self.dist,
                shuffle=True,
                seed=self.config.seed + 7919,
                workers=self.config.workers,
                drop_last="single",
                compact=True,
            )
        self._bn_loader.sampler.set_epoch(self.epoch)
        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the batches below
        was_training = self.model.training
        self.model.train()
        channels = loader_channels(self._bn_loader)
        try:
            with torch.no_grad():
                for i, (_, (volumes, *_rest)) in enumerate(self._bn_loader):
                    if i >= n_batches:
                        break
                    x = prepare_batch(volumes, self.device, self.channels_last, channels)
                    with autocast(self.device, self.precision):
                        self.model(x)
        finally:
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
            self.model.train(was_training)

    def predict(self, loader: Any = None) -> Predictions:
        """Predictions of the current model over ``loader`` (default: the validation set)."""
        loader = loader if loader is not None else self.valid_loader
        if loader is None:
            raise ValueError("no validation set to predict on")
        sync_buffers(self.model)
        return predict_loader(
            self.model,
            loader,
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
        )

    def validate(self) -> dict[str, float]:
        """Volume-level validation metrics: loss, accuracy, macro F1, macro AUROC."""
        if self.valid_loader is None:
            return {}
        return volume_metrics(self.predict(), len(self.labels))

    def _track_best(self, result: EpochResult) -> bool:
        monitor = self.config.monitor
        value = getattr(result, f"val_{monitor}")
        if not math.isfinite(value):
            # No validation set (or an undefined metric): the latest model is the best one.
            value = -result.train_loss if self.valid_loader is None else value
            if not math.isfinite(value):
                return False
        higher = MONITORS[monitor] or self.valid_loader is None
        better = (
            self.best_metric is None
            or (higher and value > self.best_metric)
            or (not higher and value < self.best_metric)
        )
        if better:
            self.best_metric = float(value)
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        return better

    # ------------------------------------------------------------------------- log
    @property
    def log_path(self) -> Path:
        return self.out_dir / "log.csv"

    def _rewrite_log(self) -> None:
        # On resume the log is rewritten from the checkpoint's history: rows of epochs
        # that ran after the checkpoint (and were lost with the crash) disappear.
        with atomic_open(self.log_path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=_LOG_FIELDS)
            writer.writeheader()
            for row in self.history:
                writer.writerow(dataclasses.asdict(row))

    def _append_log(self, result: EpochResult) -> None:
        with open(self.log_path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=_LOG_FIELDS).writerow(dataclasses.asdict(result))


_LOG_FIELDS = [f.name for f in dataclasses.fields(EpochResult)]


def _with_clip_sampling(train_set: Dataset, config: TrainConfig) -> Dataset:
    """The training set sampling clips as ``config.clip_sampling`` says.

    A data set that cannot draw clips is accepted as it is for ``"uniform"``; one that draws
    random clips by itself must be asked for them in the config, which checkpoints record.
    """
    own = getattr(train_set, "clip_sampling", None)
    switch = getattr(train_set, "with_clip_sampling", None)
    if config.clip_sampling == "uniform":
        if own not in (None, "uniform"):
            raise ValueError(
                f"the training set samples clips {own!r} but TrainConfig.clip_sampling is "
                f"'uniform': set clip_sampling={own!r} in the config (checkpoints record it "
                "and a resume compares it) instead of on the data set"
            )
        return train_set
    if not callable(switch):
        raise ValueError(
            f"clip_sampling={config.clip_sampling!r} needs a training set that draws clips "
            f"(a resnet3d.data.VolumeDataset), got a {type(train_set).__name__}"
        )
    out: Dataset = switch(config.clip_sampling, seed=config.seed)
    return out


def resume_path(out_dir: str | os.PathLike[str], resume: str | os.PathLike[str]) -> Path | None:
    """The checkpoint a ``resume`` argument names: ``"auto"`` is ``out_dir/last.pt`` if it
    exists (else ``None``: a fresh start); anything else is a path, returned as given."""
    if str(resume) == "auto":
        last = Path(out_dir) / "last.pt"
        return last if last.exists() else None
    return Path(resume)


def _plain(value: Any) -> Any:
    """``value`` as JSON has it (tuples as lists), so a checkpoint's copy compares equal."""
    return json.loads(json.dumps(value))


def _dict_differences(prefix: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``prefix.key: old -> new`` for every key whose value differs (missing: ``None``)."""
    keys = sorted(set(old) | set(new))
    return [
        f"{prefix}.{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def _scan_names(scans: Sequence[str], patients: Sequence[str]) -> list[str]:
    """``patient/scan`` of each sample, each scan once, in batch order."""
    return list(dict.fromkeys(f"{p}/{s}" for p, s in zip(patients, scans)))


def _shorten(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SCANS_SHOWN])
    more = len(names) - _SCANS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def volume_metrics(predictions: Predictions, num_classes: int) -> dict[str, float]:
    """Loss, accuracy, macro F1 and macro AUROC of volume-level predictions."""
    from ..metrics import accuracy, precision_recall_f1, roc_auc

    known = predictions.labels >= 0
    y_true = predictions.labels[known]
    probs = predictions.probs[known]
    if len(y_true) == 0:
        return {}
    y_pred = probs.argmax(axis=1)
    import warnings

    with warnings.catch_warnings():
        # Small validation sets miss classes; the metric is NaN then, and that is reported.
        warnings.simplefilter("ignore")
        _, _, f1, _ = precision_recall_f1(
            y_true, y_pred, num_classes=num_classes, average="macro", zero_division=0.0
        )
        auroc = roc_auc(y_true, probs, average="macro")
    return {
        "loss": float(predictions.loss) if predictions.loss is not None else float("nan"),
        "accuracy": float(accuracy(y_true, y_pred)),
        "macro_f1": float(f1),
        "auroc": float(auroc),
    }


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)


def _format_epoch(result: EpochResult, epochs: int) -> str:
    return (
        f"epoch {result.epoch}/{epochs}: train loss {result.train_loss:.4f} "
        f"acc {result.train_accuracy:.4f} | val loss {result.val_loss:.4f} "
        f"acc {result.val_accuracy:.4f} macro-F1 {result.val_macro_f1:.4f} "
        f"AUROC {result.val_auroc:.4f} | {result.samples_per_second:.1f} samples/s"
    )
