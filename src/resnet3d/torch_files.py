"""Reading pickled PyTorch files safely, with one-line errors.

Training checkpoints and converted third-party weights are read with
``torch.load(weights_only=True)``, which never runs code from the file. Its errors, though,
are pages long and, for a refused pickle, repeat PyTorch's advice that ``weights_only=False``
"will likely succeed": the wrong advice for a file nobody has vetted. :func:`load_torch_file`
turns each failure into one line that says what the file is (empty, truncated, not a PyTorch
file, not a safe checkpoint) and, for a refused pickle, how to convert one you trust.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import UnreadableTorchFileError, UnsafeCheckpointError

__all__ = ["UnreadableTorchFileError", "UnsafeCheckpointError", "load_torch_file"]

#: How to turn a trusted pickle into files this library reads; part of the refusal message.
CONVERT_HINT = (
    "if you trust its source, convert it once in a separate Python session: "
    "obj = torch.load(PATH, weights_only=False), then save its tensors with "
    "safetensors.torch.save_file(state_dict, 'model.safetensors') or "
    "torch.save(state_dict, 'weights.pt')"
)


def load_torch_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors.

    Args:
        path: The file.
        map_location: Where tensors go (default CPU).

    Returns:
        What the file holds: tensors, numbers, strings and plain containers only.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        UnsafeCheckpointError: If the file holds pickled objects other than tensors and plain
            containers; the message names the first one and how to convert a trusted file.
        UnreadableTorchFileError: If it is empty, truncated or not a PyTorch file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    size = file.stat().st_size
    if size == 0:
        raise UnreadableTorchFileError(
            f"{file} is empty (0 bytes): an interrupted copy or write? Copy or save it again"
        )
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _unsupported_global(error)
        if refused is None:
            raise UnreadableTorchFileError(
                f"{file} is not a PyTorch checkpoint ({size} bytes that torch.load cannot parse)"
            ) from None
        raise UnsafeCheckpointError(
            f"{file} is not a safe checkpoint: it holds pickled Python objects ({refused}), and "
            f"unpickling them can run arbitrary code, so it was not loaded; {CONVERT_HINT}"
        ) from None
    except (PermissionError, IsADirectoryError, MemoryError):
        raise  # their own messages say what is wrong, naming the file
    except Exception as error:
        # Arbitrary bytes make torch.load fail in many ways (RuntimeError from the zip reader,
        # EOFError, even IndexError from the unpickler): all mean the same to the user.
        raise UnreadableTorchFileError(
            f"cannot read {file} ({size} bytes): truncated, damaged or not a PyTorch "
            f"checkpoint ({_first_sentence(error)})"
        ) from None


def _unsupported_global(error: BaseException) -> str | None:
    # torch names the refused object as "Unsupported global: GLOBAL module.name was not ...".
    for line in str(error).splitlines():
        if "Unsupported global:" in line:
            text = line.split("Unsupported global:", 1)[1].strip()
            return text.split(" was not", 1)[0].strip()
    return None


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return text.splitlines()[0].split(". ", 1)[0].rstrip(".")
