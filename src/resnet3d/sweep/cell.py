"""One sweep cell in its own process: train (resuming from ``last.pt``), then evaluate.

::

    python -m resnet3d.sweep.cell CELL_DIR [--device DEVICE]

runs what ``CELL_DIR/job.json`` (written by :func:`resnet3d.sweep.sweep`) describes:
:func:`~resnet3d.workflows.fit_from_folder` with ``resume="auto"`` in ``CELL_DIR``, then
:func:`~resnet3d.workflows.evaluate_model` of the best checkpoint on the test patients of
``CELL_DIR/split.json``, written to ``CELL_DIR/eval/evaluation.json`` (bootstrap intervals,
no plots). Under ``torchrun`` every rank trains and rank 0 evaluates. The sweep writes
``cell.json``; this process only trains and evaluates, so running it by hand on a cell folder
is safe.

On an error the last line printed is ``error: <one-line message>`` (the sweep records it),
after the traceback. The process holds ``CELL_DIR/.cell.lock`` while it works, and stops
within a second once the sweep that started it (``RESNET3D_SWEEP_PID``) is gone, so a killed
sweep leaves no training behind.

For tests of restarts, ``RESNET3D_SWEEP_TEST_KILL_AFTER_EPOCHS=N`` makes a one-process cell
train ``N`` epochs (its checkpoints written) and then kill its sweep and itself with
``SIGKILL``: what a crash or ``kill -9`` at that point leaves behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .grid import SweepCell
from .runner import EVAL_DIR, JOB_FILE, PARENT_ENV, SPLIT_FILE, file_lock

logger = logging.getLogger(__name__)

KILL_AFTER_EPOCHS_ENV = "RESNET3D_SWEEP_TEST_KILL_AFTER_EPOCHS"
LOCK_FILE = ".cell.lock"
_LOCK_WAIT_SECONDS = 60.0  # a killed sweep's cell process takes about a second to stop


def run_cell(folder: str | os.PathLike[str], device: str | None = None) -> None:
    """Train and evaluate the cell in ``folder`` (see the module's documentation).

    Args:
        folder: The cell's folder, holding ``job.json`` and ``split.json``.
        device: The device, in place of the job's (the sweep's slot for this cell).

    Raises:
        FileNotFoundError: If ``folder`` has no ``job.json``.
        ValueError: For anything training or evaluation refuses.
    """
    from ..engine.distributed import destroy_distributed
    from ..workflows import fit_from_folder

    cell_dir = Path(folder)
    job_path = cell_dir / JOB_FILE
    if not job_path.is_file():
        raise FileNotFoundError(f"{job_path} does not exist: not a sweep cell folder")
    job = json.loads(job_path.read_text(encoding="utf-8"))
    cell = SweepCell(job["name"], job["settings"], {})
    runtime = {**job["runtime"], "progress": False}
    if device is not None:
        runtime["device"] = device
    config = cell.train_config(os.fspath(cell_dir), runtime)
    stacker = cell.stacker()
    kill_after = _kill_after_epochs()
    if kill_after is not None:
        config = dataclasses.replace(config, epochs=min(kill_after, config.epochs))
    main = _rank() == 0
    busy = f"another process is training {cell_dir} (it holds {cell_dir / LOCK_FILE})"
    lock = file_lock(cell_dir / LOCK_FILE, busy + "; stop it or wait", _LOCK_WAIT_SECONDS)
    with lock if main else contextlib.nullcontext():
        try:
            fit_from_folder(
                job["data"],
                config,
                stacker,
                layout=job["layout"],
                fractions=job["fractions"],
                split_seed=job["split_seed"],
                resume="auto",
                cache=job["cache"],
            )
        except BaseException:
            destroy_distributed(wait=False)
            raise
        destroy_distributed()
        if kill_after is not None:
            _kill_sweep_and_self()
        if main:
            _evaluate(cell_dir, job, runtime)


def _evaluate(cell_dir: Path, job: dict[str, Any], runtime: dict[str, Any]) -> None:
    """The best checkpoint (``last.pt`` without one) on the split's test patients."""
    from ..data.dataset import VolumeDataset
    from ..data.index import ScanIndex
    from ..data.split import Split
    from ..workflows import align_to_model, evaluate_model, model_from_checkpoint, stacker_for

    best = cell_dir / "best.pt"
    model = model_from_checkpoint(best if best.is_file() else cell_dir / "last.pt")
    index = align_to_model(ScanIndex.from_path(job["data"], job["layout"]), model)
    test = Split.from_json(cell_dir / SPLIT_FILE, index).test
    dataset = VolumeDataset(test, stacker_for(model), cache=job["cache"])
    evaluation = evaluate_model(
        model,
        dataset,
        out_dir=cell_dir / EVAL_DIR,
        plots=False,
        batch_size=job["eval_batch_size"],
        device=runtime["device"],
        precision="fp32",
        workers=runtime["workers"],
        ci=True,
        split="test",
    )
    logger.info("test split:\n%s", evaluation.summary())


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _kill_after_epochs() -> int | None:
    value = os.environ.get(KILL_AFTER_EPOCHS_ENV, "").strip()
    return int(value) if value else None


def _kill_sweep_and_self() -> None:
    parent = os.environ.get(PARENT_ENV)
    logger.warning(
        "%s: killing the sweep and this cell (a test of restarts)", KILL_AFTER_EPOCHS_ENV
    )
    sys.stdout.flush()
    sys.stderr.flush()
    if parent:
        os.kill(int(parent), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_sweep() -> None:
    """Stop this process (exit status 3) once the sweep that started it is gone."""
    sweep_pid = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not sweep_pid:
        return
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            gone = os.getppid() != parent  # our parent (the sweep, or torchrun) ended
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:
                pass
            if gone:
                os._exit(3)

    threading.Thread(target=watch, name="sweep-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one cell; the exit status is 0, or 2 after an ``error: ...`` line."""
    parser = argparse.ArgumentParser(prog="python -m resnet3d.sweep.cell")
    parser.add_argument("cell_dir", type=Path, help="the cell's folder (holding job.json)")
    parser.add_argument("--device", default=None, help="device, in place of the job's")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if _rank() == 0 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _watch_sweep()
    try:
        run_cell(args.cell_dir, args.device)
    except Exception as error:
        logger.exception("the cell failed")
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"error: {message}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
