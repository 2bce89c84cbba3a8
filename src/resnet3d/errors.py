"""The library's own exception types: the one home of every error class ``resnet3d`` raises.

Every error that bad data on disk, a bad checkpoint or an unreachable Hub can cause derives from
:class:`Resnet3DError`, and also from the builtin that best describes it (``ValueError``,
``FileNotFoundError``, ``OSError``, ``ImportError``), so ``except ValueError`` keeps working
for callers that do not know this module. Plain misuse of an API (a negative size, an unknown
option name) raises the builtin ``ValueError``/``TypeError`` directly.

Each exception takes the message as its only positional argument and carries the offending
``path`` as an optional keyword. That keeps them re-raisable by PyTorch's ``DataLoader``, which
rebuilds a worker's exception as ``type(error)(message)`` in the main process: a bad slice met
in a worker still reaches the user as a :class:`CorruptSliceError` whose message names the file.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "CLIError",
    "CacheError",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConversionError",
    "CorruptSliceError",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "DiskFullError",
    "HubRequestError",
    "HubUnavailableError",
    "ImageTooLargeError",
    "InconsistentScanError",
    "InvalidExportError",
    "MissingDependencyError",
    "Resnet3DError",
    "TrainingDivergedError",
    "UnreadableTorchFileError",
    "UnsafeCheckpointError",
    "UnsupportedFormatError",
    "WeightsIntegrityError",
    "WeightsNotPublishedError",
]


class Resnet3DError(Exception):
    """Base class of every exception raised by ``resnet3d`` for bad input data.

    Args:
        message: What is wrong, naming the path and what was expected.
        path: The file or folder at fault, if there is one.
    """

    def __init__(self, message: str = "", path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)


class DatasetLayoutError(Resnet3DError, ValueError):
    """A data set on disk does not have the expected layout.

    Examples: no class folders, a scan folder without slices, a CSV with the wrong columns,
    an index that no longer matches the files, a split file that does not match the index.
    """


class DatasetNotFoundError(DatasetLayoutError, FileNotFoundError):
    """A data set root, scan or index file does not exist."""


class CorruptSliceError(Resnet3DError, ValueError):
    """A slice file cannot be decoded: empty, truncated, garbage or otherwise unreadable."""


class ImageTooLargeError(CorruptSliceError):
    """A slice declares more pixels than allowed (a decompression bomb); rejected unread."""


class InconsistentScanError(Resnet3DError, ValueError):
    """The slices of one scan do not fit together (different sizes, series or orientations)."""


class UnsupportedFormatError(Resnet3DError, ValueError):
    """A readable file in a format or variant that ``resnet3d`` does not handle."""


class CacheError(Resnet3DError, ValueError):
    """A volume cache is incomplete, from another version, or built with other settings."""


class MissingDependencyError(Resnet3DError, ImportError):
    """An optional dependency is needed for this file type; the message says what to install."""


# ----------------------------------------------------------------------------- files
class UnreadableTorchFileError(Resnet3DError, ValueError):
    """A file that ``torch.load`` cannot read: empty, truncated or not a PyTorch file."""


class UnsafeCheckpointError(UnreadableTorchFileError):
    """A PyTorch file whose unpickling would build arbitrary Python objects (refused unread)."""


class DiskFullError(Resnet3DError, OSError):
    """A write ran out of disk space; ``str()`` is the whole one-line message.

    ``errno`` is ``ENOSPC`` and ``filename`` the file that could not be written, as for the
    ``OSError`` it replaces.
    """

    def __init__(self, message: str = "", path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message, path=path)
        self.errno = errno.ENOSPC
        self.strerror = message
        self.filename = self.path

    def __str__(self) -> str:
        return str(self.strerror)


# ----------------------------------------------------------------------------- training
class CheckpointError(Resnet3DError, ValueError):
    """A checkpoint is corrupt, incomplete, or belongs to a different run."""


class TrainingDivergedError(Resnet3DError, ValueError, FloatingPointError):
    """A NaN or infinite input or loss stopped training; ``best`` is left as it was.

    A ``ValueError`` (the command line prints it as one line) and, as before, a
    ``FloatingPointError``. The message names the epoch, the batch, the step, the scans of
    the batch (``patient/scan``) and whether the input or the loss was not finite.
    """


# ----------------------------------------------------------------------------- weights
class HubUnavailableError(Resnet3DError, OSError):
    """The Hub cannot be reached (offline or network down) and the files are not cached."""


class HubRequestError(Resnet3DError, OSError):
    """The Hub answered but refused a request (authentication, permissions, a bad revision)."""


class WeightsNotPublishedError(Resnet3DError, FileNotFoundError):
    """A weights-table alias whose weights have not been published yet."""


class WeightsIntegrityError(Resnet3DError, OSError):
    """A downloaded file's hash is not the expected one (tampered or truncated download)."""


class InvalidExportError(Resnet3DError, ValueError):
    """An export folder or repo lacks ``config.json``/``model.safetensors`` or has bad ones."""


class CheckpointMismatchError(Resnet3DError, ValueError):
    """A state dict's keys or shapes do not match the model (strict loading)."""


class ConversionError(Resnet3DError, ValueError):
    """A checkpoint that cannot be converted exactly (or cannot be read safely)."""


# ----------------------------------------------------------------------------- command line
class CLIError(Exception):
    """A user-facing error of the command line: printed as one line, exit status 2.

    Not a :class:`Resnet3DError`: it is how the CLI reports a bad option, never raised by the
    library's functions.
    """
