"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (no pickled
objects), so loading never runs code. Writes go to a temporary file in the same folder that
is flushed, synced and then renamed over the target: a process killed at any point leaves
either the previous checkpoint or the new one, never half a file.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._utils import TMP_MARK, atomic_open, fsync_dir
from ..errors import CheckpointError, DiskFullError, UnreadableTorchFileError
from ..torch_files import load_torch_file

logger = logging.getLogger(__name__)

#: Bumped when the checkpoint layout changes incompatibly.
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "optimizer", "epoch", "step", "model_config")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically.

    Args:
        state: The checkpoint dict (tensors and plain Python values only).
        path: Target file; its folder is created if needed.

    Returns:
        The path written.

    Raises:
        OSError: If the write fails; a full disk says so in one line, naming the file and
            that the previous checkpoint (if any) is intact.
    """
    path = Path(path)
    try:
        with atomic_open(path, "wb", sync_dir=True) as handle:
            torch.save(state, handle)
    except BaseException as error:
        if _is_disk_full(error):
            raise _disk_full(path) from None
        raise
    return path


def link_checkpoint(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Make ``target`` hold the checkpoint in ``source`` without writing it a second time.

    An epoch that improves the monitored metric ends with the same state in ``best.pt`` and
    ``last.pt``; writing it twice doubled the checkpoint cost (about 400 MB a write for
    ResNet-18 with its optimizer). ``target`` becomes a hard link to ``source`` (a copy where
    the file system has no hard links), swapped in atomically like :func:`save_checkpoint`.
    Later saves replace either name with a new file, so the two never change together.

    Raises:
        DiskFullError: If a copy runs out of space (``target`` is left as it was).
    """
    source, target = Path(source), Path(target)
    tmp = target.with_name(f".{target.name}{TMP_MARK}{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if _is_disk_full(error):
            raise _disk_full(target) from None
        raise
    fsync_dir(target.parent)
    return target


def run_metadata(
    preprocessing: Mapping[str, Any],
    labels: Sequence[str],
    *,
    data: str | os.PathLike[str] | None = None,
    split_file: str | None = None,
    split_seed: int | None = None,
    fractions: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The ``metadata`` a training run stores in its checkpoints, in its one shape.

    :meth:`resnet3d.weights.cfg.PretrainedCfg.from_checkpoint` reads ``preprocessing`` and
    ``labels`` back, so evaluation, prediction and export prepare scans as training did; the
    split settings are compared on resume.

    Args:
        preprocessing: The ``SliceStacker`` spec (``stacker.to_dict()``).
        labels: Class names in output order.
        data: The data set the run trained on.
        split_file: The split file's name in the run folder.
        split_seed: The patient split's seed.
        fractions: The split's train/valid/test fractions.
    """
    metadata: dict[str, Any] = {"preprocessing": dict(preprocessing), "labels": list(labels)}
    if data is not None:
        metadata["data"] = os.fspath(data)
    if split_file is not None:
        metadata["split_file"] = split_file
    if fractions is not None:
        metadata["split"] = {"seed": split_seed, "fractions": [float(f) for f in fractions]}
    return metadata


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointError: If the file is truncated, not a checkpoint, holds pickled objects, or
            lacks required entries; the message names the path.
    """
    path = Path(path)
    try:
        state = load_torch_file(path, map_location=map_location)
    except UnreadableTorchFileError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a resnet3d checkpoint (got {type(state).__name__})")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not a resnet3d training checkpoint: missing {missing}")
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format_version']}, this resnet3d reads "
            f"format {FORMAT_VERSION}"
        )
    return state


def clean_temporary_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files left by writes that were killed; return what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in directory.iterdir():
        if candidate.name.startswith(".") and TMP_MARK in candidate.name and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    if removed:
        logger.info("removed %d temporary file(s) of an interrupted write", len(removed))
    return removed


def rng_state() -> dict[str, Any]:
    """Every RNG the loop uses, as plain tensors and lists (``weights_only``-safe)."""
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": _to_lists(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the RNGs saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    random.setstate(_to_tuples(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].cpu().numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def _disk_full(path: Path) -> DiskFullError:
    """The one-line error of a checkpoint write that ran out of space."""
    kept = f"the previous {path.name} is intact" if path.exists() else "nothing was kept"
    return DiskFullError(f"no space left on device while writing {path}; {kept}", path=path)


def _is_disk_full(error: BaseException) -> bool:
    # torch.save into a handle surfaces ENOSPC as OSError; its own file writer (given a path)
    # as RuntimeError "unexpected pos", kept here in case a future torch routes handles there.
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(error, RuntimeError) and "unexpected pos" in str(error)
