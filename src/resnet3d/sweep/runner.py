"""Run a sweep: plan the cells, share one patient split, run each cell in its own process.

Folder layout (``DIR`` is the sweep's folder)::

    DIR/plan.json               the cells of this sweep and their settings
    DIR/split.json              the patient split every cell trains and is tested on
    DIR/runs/<name>/cell.json   the cell's settings, status, timings, best validation accuracy
    DIR/runs/<name>/job.json    what the cell's process runs (data, split, runtime options)
    DIR/runs/<name>/cell.log    the cell process's output, every attempt appended
    DIR/runs/<name>/last.pt, best.pt, log.csv, split.json      as ``resnet3d train`` writes
    DIR/runs/<name>/eval/evaluation.json   the best checkpoint on the test patients, with
                                           bootstrap intervals (``resnet3d evaluate --ci``)

A rerun skips the cells that are done and resumes the others from their ``last.pt``, exactly
as ``resnet3d train --resume auto`` does. A cell's name ends with a hash of all its settings,
so a rerun with other settings makes new cells and never mixes their results; the folders of
cells that are no longer in the plan are left as they are.

Each cell runs in a fresh process (``python -m resnet3d.sweep.cell``; under ``torchrun``
with ``nproc > 1``), so memory is returned between cells and a crash stops only its cell.
The cells of a sweep run one after another, or several at a time with ``devices`` (one
process group per device group, pinned with ``CUDA_VISIBLE_DEVICES``). A killed sweep's cell
processes notice it within a second and stop.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .._utils import atomic_write_text
from ..data.volumes import SliceStacker
from ..engine.train import TrainConfig
from .grid import SweepCell, base_settings, expand_grid

__all__ = [
    "CELL_FILE",
    "PLAN_FILE",
    "STATUSES",
    "SweepEvent",
    "SweepResult",
    "read_cells",
    "sweep",
    "tiny_sweep",
]

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
SPLIT_FILE = "split.json"
RUNS_DIR = "runs"
CELL_FILE = "cell.json"
JOB_FILE = "job.json"
LOG_FILE = "cell.log"
EVAL_DIR = "eval"
EVALUATION_FILE = "evaluation.json"
LOCK_FILE = ".sweep.lock"
PLAN_FORMAT = 1

#: A cell's states, in ``cell.json``'s ``status``.
STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed")

#: Environment variable naming the sweep's process id; a cell process whose sweep is gone
#: stops (see :mod:`resnet3d.sweep.cell`).
PARENT_ENV = "RESNET3D_SWEEP_PID"

#: Volumes per forward pass when evaluating a cell (the result does not depend on it).
EVAL_BATCH_SIZE = 8

# The tiny sweep: a phantom data set, two depths of resnet10 for one epoch (seconds on a CPU).
TINY_TRAIN: dict[str, Any] = {
    "model": "resnet10",
    "epochs": 1,
    "batch_size": 2,
    "precision": "fp32",
    "workers": 0,
}
TINY_STACKER: dict[str, Any] = {"size": 32}
TINY_GRID = "depth=2,4"
TINY_FRACTIONS = (0.34, 0.33, 0.33)  # one patient per class in each split
TINY_PATIENTS = 9


@dataclass(frozen=True)
class SweepEvent:
    """A cell's state changed (or, at the start, is announced).

    Attributes:
        index: The cell's position in the plan, from 1.
        total: Cells in the plan.
        cell: The cell.
        record: Its ``cell.json`` content (``status``, ``train_seconds``...).
        seconds: Wall time of this attempt so far (``None`` before it starts).
    """

    index: int
    total: int
    cell: SweepCell
    record: dict[str, Any]
    seconds: float | None = None


@dataclass
class SweepResult:
    """What :func:`sweep` leaves behind.

    Attributes:
        out_dir: The sweep's folder.
        cells: The plan, in order.
        records: Each cell's ``cell.json`` by name (for a dry run: what is on disk, or
            ``queued``).
        report: What ``resnet3d.sweep.report.write_sweep_report`` returned, if it ran.
    """

    out_dir: Path
    cells: list[SweepCell]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: Any = None

    def names(self, status: str) -> list[str]:
        """Names of the cells in ``status``."""
        return [c.name for c in self.cells if self.records[c.name]["status"] == status]

    @property
    def failed(self) -> list[str]:
        """Names of the cells that failed."""
        return self.names("failed")


def sweep(
    data: str | os.PathLike[str] | None,
    out_dir: str | os.PathLike[str],
    *,
    grids: Iterable[str | Sequence[str] | Mapping[str, Any]] = (),
    paper: Iterable[str] = (),
    config: TrainConfig | None = None,
    stacker: SliceStacker | None = None,
    layout: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    split_seed: int = 0,
    split_file: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    devices: Sequence[str | int] | None = None,
    nproc: int = 1,
    dry_run: bool = False,
    on_event: Callable[[SweepEvent], None] | None = None,
) -> SweepResult:
    """Train and evaluate a grid of runs on one data set and one patient split.

    Every cell is a training run (:func:`~resnet3d.workflows.fit_from_folder`) with the base
    ``config`` and ``stacker`` and the grid's values on top, followed by an evaluation of its
    best checkpoint on the split's test patients (volume, scan and patient level, with
    bootstrap intervals). Rerunning the same call skips the cells that are done and resumes
    the others exactly; see the module's documentation for the folder layout. At the end,
    ``resnet3d.sweep.report.write_sweep_report(out_dir)`` tabulates the results.

    Args:
        data: The data set (as ``resnet3d train --data``); may be ``None`` for a dry run.
        out_dir: The sweep's folder.
        grids: Grids (see :func:`~resnet3d.sweep.expand_grid`), e.g.
            ``["depth=2,4,8 batch_size=8"]`` or ``[{"model": ["resnet18", "resnet34"]}]``.
        paper: Paper presets: ``depth``, ``batch``, ``models`` or ``all``.
        config: The base recipe (``out_dir`` and ``progress`` are ignored; ``device``,
            ``workers``, ``channels_last`` and ``compile`` say how every cell runs).
        stacker: The base preprocessing.
        layout: Data set layout (``auto``, ``ccii``, ``tree``, ``csv``).
        fractions: Train, valid, test shares of the shared split (when it is made here).
        split_seed: Seed of the shared split (when it is made here).
        split_file: A split to use (``split.json`` of ``resnet3d train`` or ``index
            --split``); its seed and fractions replace ``split_seed`` and ``fractions``.
        cache: A volume cache folder (``resnet3d build-volumes``).
        devices: Run cells in parallel: GPU indices (``[0, 1, 2, 3]``), one cell at a time
            on each group of ``nproc`` of them; ``"cpu"`` entries run CPU processes side by
            side. ``None``: one cell at a time on ``config.device``.
        nproc: Processes per cell (DDP under ``torchrun``); each gets ``batch_size``.
        dry_run: Plan only: nothing is written or run; the records say what is done.
        on_event: Called at the start with every cell's state and then at every change
            (the command line prints one line each).

    Returns:
        The :class:`SweepResult`; cells that failed are in ``result.failed`` (their error in
        ``cell.json`` and their output in ``cell.log``).

    Raises:
        ValueError: For an empty or invalid grid, an unknown preset, ``nproc < 1``,
            unavailable devices, a split that does not fit the data, or a cell folder
            holding another cell.
        FileExistsError: If another sweep is running in ``out_dir``.
    """
    config = config if config is not None else TrainConfig()
    stacker = stacker if stacker is not None else SliceStacker()
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an int >= 1 (processes per cell), got {nproc!r}")
    slots = _slots(devices, nproc, config.device)
    cells = expand_grid(grids, paper, base_settings(config, stacker, nproc=nproc))
    out = Path(out_dir)
    records = {cell.name: _read_record(out, cell) for cell in cells}
    result = SweepResult(out, cells, {})
    if dry_run:
        for cell in cells:
            result.records[cell.name] = records[cell.name] or _new_record(cell)
        _announce(result, on_event)
        return result
    if data is None:
        raise ValueError("a sweep needs a data set (data=..., --data ROOT)")

    out.mkdir(parents=True, exist_ok=True)
    busy = f"another sweep is running in {out} (it holds {out / LOCK_FILE}); wait for it"
    with file_lock(out / LOCK_FILE, busy + " or use another folder"):
        fractions, split_seed = _shared_split(data, out, layout, fractions, split_seed, split_file)
        runtime = {
            "device": config.device,
            "workers": config.workers,
            "channels_last": config.channels_last,
            "compile": config.compile,
        }
        plan = {
            "format": PLAN_FORMAT,
            "data": os.fspath(data),
            "split_file": SPLIT_FILE,
            "layout": layout,
            "split": {"seed": split_seed, "fractions": list(fractions)},
            "nproc": nproc,
            "runtime": runtime,
            "cells": [cell.to_dict() for cell in cells],
        }
        _write_json(out / PLAN_FILE, plan)
        job = {
            "data": os.fspath(Path(data).resolve()),
            "layout": layout,
            "cache": None if cache is None else os.fspath(Path(cache).resolve()),
            "fractions": list(fractions),
            "split_seed": split_seed,
            "runtime": runtime,
            "eval_batch_size": EVAL_BATCH_SIZE,
        }
        queue = []
        for cell in cells:
            record = records[cell.name]
            if not _is_done(out, cell, record):
                record = _prepare_cell(out, cell, job)
                queue.append(cell)
            result.records[cell.name] = record or _new_record(cell)
        _log_strays(out, cells)
        _announce(result, on_event)
        _run_queue(result, queue, slots, on_event)
        result.report = _write_report(out)
    return result


def tiny_sweep(
    out_dir: str | os.PathLike[str],
    *,
    grids: Iterable[str | Sequence[str] | Mapping[str, Any]] | None = None,
    config: TrainConfig | None = None,
    stacker: SliceStacker | None = None,
    **options: Any,
) -> SweepResult:
    """A sweep of seconds on a phantom data set: a smoke test of the whole machinery.

    Writes a 9-patient phantom (32 x 32 slices, 8 per scan) to ``out_dir/data`` once, then
    sweeps ``depth=2,4`` with resnet10, batch 2, one epoch, fp32, no loader workers and one
    patient per class in each split.

    Args:
        out_dir: The sweep's folder.
        grids: Grids in place of ``depth=2,4``.
        config: The base recipe in place of the tiny one.
        stacker: The base preprocessing in place of 32 x 32 slices.
        **options: Other :func:`sweep` arguments (``devices``, ``nproc``, ``dry_run``...).

    Returns:
        The :class:`SweepResult`.
    """
    data = Path(out_dir) / "data"
    grids = [TINY_GRID] if grids is None else list(grids)
    config = config if config is not None else TrainConfig(**TINY_TRAIN)
    stacker = stacker if stacker is not None else SliceStacker(**TINY_STACKER)
    if not options.get("dry_run"):
        expand_grid(grids, options.get("paper", ()), base_settings(config, stacker))  # errors first
        tiny_data(data)
    options.setdefault("fractions", TINY_FRACTIONS)
    return sweep(data, out_dir, grids=grids, config=config, stacker=stacker, **options)


def tiny_data(root: Path) -> Path:
    """The tiny sweep's phantom data set in ``root``, written unless it is there."""
    from ..data import phantom

    if (root / phantom.CSV_NAME).is_file():
        return root
    return phantom.write_dataset(
        root,
        patients=TINY_PATIENTS,
        size=TINY_STACKER["size"],
        seed=0,
        slices=(8, 8),
        scans_per_patient=(1, 1),
        masks=False,
        overwrite=True,  # replaces only an interrupted phantom
    )


def read_cells(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``cell.json`` records of the cells in a sweep's ``plan.json`` (missing: skipped).

    Raises:
        FileNotFoundError: If ``out_dir`` has no ``plan.json``.
    """
    out = Path(out_dir)
    plan = json.loads((out / PLAN_FILE).read_text(encoding="utf-8"))
    records = []
    for entry in plan["cells"]:
        path = out / entry["folder"] / CELL_FILE
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
    return records


# ------------------------------------------------------------------------------- planning
def _slots(devices: Sequence[str | int] | None, nproc: int, device: str | None) -> list[Slot]:
    """Where cells run: one slot per group of ``nproc`` devices (one slot without devices)."""
    if devices is None:
        if nproc > 1 and _device_type(device) == "cuda":
            import torch

            count = torch.cuda.device_count()
            if nproc > count:
                raise ValueError(
                    f"nproc {nproc} needs {nproc} GPUs per cell; {count} are visible here"
                )
        return [Slot("", {}, device)]
    names = [str(d).strip() for d in devices]
    if not names or any(not n for n in names):
        raise ValueError(f"devices must list GPU indices or 'cpu', got {list(devices)!r}")
    if len(names) % nproc:
        raise ValueError(
            f"devices lists {len(names)} device(s), not a multiple of nproc {nproc} "
            "(each cell takes nproc of them)"
        )
    cpu = [n for n in names if n == "cpu"]
    if cpu and len(cpu) != len(names):
        raise ValueError(f"devices mixes 'cpu' and GPUs: {names}")
    if cpu:
        if device is not None and _device_type(device) != "cpu":
            raise ValueError(f"devices {names} run on the CPU; device {device!r} is not the CPU")
        return [Slot("cpu", {}, "cpu") for _ in range(len(names) // nproc)]
    if device is not None and device != "cuda":
        raise ValueError(
            f"devices {names} choose the GPUs; leave device out (or 'cuda'), not {device!r}"
        )
    from ..engine.device import check_device

    for name in names:
        if not name.isdigit():
            raise ValueError(f"devices: {name!r} is not a GPU index (0, 1, ...) or 'cpu'")
        check_device(f"cuda:{name}")
    if len(set(names)) != len(names):
        raise ValueError(f"devices lists a GPU twice: {names}")
    groups = [names[i : i + nproc] for i in range(0, len(names), nproc)]
    return [
        Slot(f"cuda {','.join(g)}", {"CUDA_VISIBLE_DEVICES": ",".join(g)}, "cuda") for g in groups
    ]


@dataclass(frozen=True)
class Slot:
    """A place to run one cell at a time: its label, extra environment and device."""

    label: str
    env: dict[str, str]
    device: str | None


def _device_type(device: str | None) -> str:
    from ..engine.device import resolve_device

    return resolve_device(device).type


def _shared_split(
    data: str | os.PathLike[str],
    out: Path,
    layout: str,
    fractions: Sequence[float],
    split_seed: int,
    split_file: str | os.PathLike[str] | None,
) -> tuple[tuple[float, ...], int]:
    """Make or check ``out/split.json``; return the fractions and seed the cells must pass."""
    from ..data.index import ScanIndex
    from ..workflows import load_or_make_split

    target = out / SPLIT_FILE
    created = False
    if split_file is not None:
        source = Path(split_file)
        if not source.is_file():
            raise FileNotFoundError(f"split file {source} does not exist")
        text = source.read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except ValueError:
            raise ValueError(f"split file {source} is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != "resnet3d-split":
            raise ValueError(f"split file {source} is not a resnet3d split (split.json)")
        if target.is_file():
            saved = json.loads(target.read_text(encoding="utf-8"))
            if saved.get("hash") != doc.get("hash") or saved.get("patients") != doc.get("patients"):
                raise ValueError(
                    f"{target} holds another split than {source}: this sweep's cells were "
                    "trained on it; use another sweep folder for a new split"
                )
        else:
            atomic_write_text(target, text)
            created = True
        fractions = tuple(float(f) for f in doc.get("fractions", fractions))
        split_seed = int(doc["seed"]) if doc.get("seed") is not None else split_seed
    try:
        index = ScanIndex.from_path(data, layout)
        load_or_make_split(index, out, fractions, split_seed)
    except BaseException:
        if created:
            target.unlink(missing_ok=True)
        raise
    return tuple(float(f) for f in fractions), split_seed


def _read_record(out: Path, cell: SweepCell) -> dict[str, Any] | None:
    """The cell's ``cell.json``, checked to be this cell's; ``None`` if there is none."""
    path = out / cell.folder / CELL_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        logger.warning("%s is not valid JSON: the cell starts over from its checkpoints", path)
        return None
    if not isinstance(record, dict) or record.get("settings") != cell.settings:
        raise ValueError(
            f"{path} belongs to a cell with other settings than {cell.label()}: a cell "
            "folder holds one cell's results; move that folder away or use another sweep folder"
        )
    return record


def _new_record(cell: SweepCell) -> dict[str, Any]:
    return {
        "name": cell.name,
        "settings": cell.settings,
        "varied": cell.varied,
        "status": "queued",
        "train_seconds": None,
        "samples_per_second": None,
        "best_val_accuracy": None,
        "epochs": 0,
        "started": None,
        "finished": None,
        "error": None,
    }


def _is_done(out: Path, cell: SweepCell, record: dict[str, Any] | None) -> bool:
    folder = out / cell.folder
    return (
        record is not None
        and record.get("status") == "done"
        and (folder / EVAL_DIR / EVALUATION_FILE).is_file()
    )


def _prepare_cell(out: Path, cell: SweepCell, job: dict[str, Any]) -> dict[str, Any]:
    """Folder, shared split, job and a ``queued`` record for a cell that is to run."""
    folder = out / cell.folder
    folder.mkdir(parents=True, exist_ok=True)
    shared = (out / SPLIT_FILE).read_text(encoding="utf-8")
    own = folder / SPLIT_FILE
    if not own.is_file():
        atomic_write_text(own, shared)
    elif own.read_text(encoding="utf-8") != shared:
        raise ValueError(
            f"{own} is not the sweep's split {out / SPLIT_FILE}: the cell was trained on other "
            "patients; move that cell folder away to train it again on the sweep's split"
        )
    _write_json(folder / JOB_FILE, {"name": cell.name, "settings": cell.settings, **job})
    fresh = _new_record(cell)
    fresh.update(_training_stats(folder / "log.csv"))  # what an interrupted attempt trained
    _write_json(folder / CELL_FILE, fresh)
    return fresh


def _log_strays(out: Path, cells: Sequence[SweepCell]) -> None:
    runs = out / RUNS_DIR
    planned = {cell.name for cell in cells}
    strays = sorted(p.name for p in runs.iterdir() if p.is_dir() and p.name not in planned)
    if strays:
        logger.info(
            "%d folder(s) in %s are cells of other settings, not in this plan; left as they "
            "are: %s",
            len(strays),
            runs,
            ", ".join(strays[:5]) + (" ..." if len(strays) > 5 else ""),
        )


def _announce(result: SweepResult, on_event: Callable[[SweepEvent], None] | None) -> None:
    if on_event is None:
        return
    total = len(result.cells)
    for i, cell in enumerate(result.cells, 1):
        on_event(SweepEvent(i, total, cell, result.records[cell.name]))


# -------------------------------------------------------------------------------- running
@dataclass
class _Running:
    cell: SweepCell
    index: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


def _run_queue(
    result: SweepResult,
    queue: Sequence[SweepCell],
    slots: Sequence[Slot],
    on_event: Callable[[SweepEvent], None] | None,
) -> None:
    """Run the queued cells, at most one per slot at a time, until all have ended."""
    out = result.out_dir
    positions = {cell.name: i for i, cell in enumerate(result.cells, 1)}
    total = len(result.cells)
    pending = list(queue)
    running: dict[int, _Running] = {}
    nproc = int(result.cells[0].settings["nproc"]) if result.cells else 1

    def emit(cell: SweepCell, seconds: float | None) -> None:
        if on_event is not None:
            record = result.records[cell.name]
            on_event(SweepEvent(positions[cell.name], total, cell, record, seconds))

    try:
        while pending or running:
            for slot_index, slot in enumerate(slots):
                if slot_index in running or not pending:
                    continue
                cell = pending.pop(0)
                record = {**result.records[cell.name], "status": "running"}
                record.update(started=_now(), finished=None, error=None)
                result.records[cell.name] = record
                _write_json(out / cell.folder / CELL_FILE, record)
                running[slot_index] = _start(out, cell, slot, nproc, positions[cell.name])
                logger.debug("started %s on %s", cell.name, slot.label or "the default device")
                emit(cell, 0.0)
            time.sleep(0.2)
            for slot_index, job in list(running.items()):
                code = job.process.poll()
                if code is None:
                    continue
                del running[slot_index]
                job.log.close()
                seconds = time.monotonic() - job.started
                result.records[job.cell.name] = _finish(out, job.cell, code, seconds)
                emit(job.cell, seconds)
    except BaseException:
        # Interrupted (Ctrl-C) or failed here: stop the cells, which resume on a rerun.
        for job in running.values():
            _stop(job.process)
            job.log.close()
            record = {**result.records[job.cell.name], "status": "queued"}
            _write_json(out / job.cell.folder / CELL_FILE, record)
        raise


def _start(out: Path, cell: SweepCell, slot: Slot, nproc: int, index: int) -> _Running:
    folder = out / cell.folder
    module = ["-m", "resnet3d.sweep.cell", str(folder)]
    if slot.device is not None:
        module += ["--device", slot.device]
    if nproc > 1:
        launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        command = [sys.executable, *launcher, *module]
    else:
        command = [sys.executable, *module]
    env = {**os.environ, **slot.env, PARENT_ENV: str(os.getpid())}
    log = open(folder / LOG_FILE, "ab")  # noqa: SIM115  (closed when the process ends)
    log.write(f"--- {_now()} {' '.join(command)}\n".encode())
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return _Running(cell, index, process, log, time.monotonic())


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _finish(out: Path, cell: SweepCell, code: int, seconds: float) -> dict[str, Any]:
    """The cell's record after its process ended with ``code``, written to ``cell.json``."""
    folder = out / cell.folder
    record = json.loads((folder / CELL_FILE).read_text(encoding="utf-8"))
    record.update(_training_stats(folder / "log.csv"))
    record["finished"] = _now()
    evaluation = folder / EVAL_DIR / EVALUATION_FILE
    if code == 0 and evaluation.is_file():
        record.update(status="done", error=None)
    else:
        record.update(status="failed", error=_error_line(folder / LOG_FILE, code))
    logger.debug("%s %s after %.1f s", cell.name, record["status"], seconds)
    _write_json(folder / CELL_FILE, record)
    return dict(record)


def _training_stats(log_csv: Path) -> dict[str, Any]:
    """Epochs, training seconds, samples per second and best validation accuracy of a log."""
    if not log_csv.is_file():
        return {}
    with open(log_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [float(r["seconds"]) for r in rows]
    samples = sum(float(r["samples_per_second"]) * s for r, s in zip(rows, seconds))
    accuracies = [float(r["val_accuracy"]) for r in rows]
    finite = [a for a in accuracies if math.isfinite(a)]
    total = sum(seconds)
    return {
        "epochs": len(rows),
        "train_seconds": total if rows else None,
        "samples_per_second": samples / total if total > 0 else None,
        "best_val_accuracy": max(finite) if finite else None,
    }


def _error_line(log: Path, code: int) -> str:
    """The cell's one-line error from its log, or how its process ended."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.is_file() else []
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
        if line.startswith("--- "):  # the start of this attempt
            break
    if code < 0:
        return f"the cell's process was killed by signal {-code}; see {log}"
    if code == 0:
        return f"the cell's process ended without writing its evaluation; see {log}"
    return f"the cell's process ended with status {code}; see {log}"


def _write_report(out: Path) -> Any:
    try:
        from . import report
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.report":
            raise
        logger.info("no sweep report: resnet3d.sweep.report is not installed")
        return None
    return report.write_sweep_report(out)


# -------------------------------------------------------------------------------- helpers
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


@contextlib.contextmanager
def file_lock(path: Path, busy: str, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``; released when the process ends).

    Args:
        path: The lock file (created if missing).
        busy: The message of the error when another process holds it.
        wait_seconds: How long to wait for the lock before that error.

    Raises:
        FileExistsError: If the lock is still held by another process after the wait.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FileExistsError(busy) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
