"""The library's own exception types.

Every error that bad data on disk can cause derives from :class:`Resnet3DError`, and also from
the builtin that best describes it (``ValueError``, ``FileNotFoundError``, ``ImportError``), so
``except ValueError`` keeps working for callers that do not know this module.

Each exception takes the message as its only positional argument and carries the offending
``path`` as an optional keyword. That keeps them re-raisable by PyTorch's ``DataLoader``, which
rebuilds a worker's exception as ``type(error)(message)`` in the main process: a bad slice met
in a worker still reaches the user as a :class:`CorruptSliceError` whose message names the file.
"""

from __future__ import annotations

import os

__all__ = [
    "CacheError",
    "CorruptSliceError",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "ImageTooLargeError",
    "InconsistentScanError",
    "MissingDependencyError",
    "Resnet3DError",
    "UnsupportedFormatError",
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
