"""Load, save and publish weights: ``from_pretrained``, ``save_pretrained``, ``push_to_hub``.

An export is a folder (or a Hugging Face Hub repo) with three files:

- ``model.safetensors``: the state dict. Only safetensors are ever loaded as weights.
- ``config.json``: the architecture (:class:`~resnet3d.config.ResNet3DConfig`), the
  preprocessing spec (the ``volumes.SliceStacker`` arguments the model was trained with),
  the class labels, the metrics, the license and the library version.
- ``README.md``: the model card.

Loading is strict: a missing, unexpected or misshapen key is an error listing the keys.
Adapting a checkpoint is explicit and logged: ``num_classes`` re-initialises only the
classifier, ``in_channels`` changes only the first convolution (see :func:`adapt_input_conv`).

Name resolution in :func:`from_pretrained`, in this order:

1. a :class:`os.PathLike`, or a string that starts with ``./``, ``../``, ``/`` or ``~``: a
   local directory;
2. an alias from the weights table (:mod:`resnet3d.pretrained`);
3. a string shaped like a Hub repo id (``org/name``): that Hub repo;
4. any other string naming an existing directory: that directory.

So a directory in the working folder never shadows an alias or a repo id: to load a folder
called ``org/name`` or ``ccii-depth4``, write ``./org/name`` (a warning is logged when such a
folder exists beside an alias or repo id of the same name).

The Hub is reached through ``huggingface_hub`` (its cache, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT`` and tokens), all read when a function runs, not at
import. Each file is asked for once with a short timeout first, so an unreachable Hub means
the cache, or a clear error, within seconds (see :mod:`resnet3d._hub_probe`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._hub_probe import hub_timeout, network_errors, probe_hub
from ._utils import did_you_mean, env_flag
from ._version import __version__
from .errors import Resnet3DError
from .pretrained import (
    PREPROCESSING_KEYS,
    Metric,
    PretrainedEntry,
    get_pretrained,
    is_alias,
    list_pretrained,
    recipe_commands,
)

if TYPE_CHECKING:
    import torch
    from huggingface_hub import CommitInfo

    from .config import ResNet3DConfig
    from .resnet import ResNet3D

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "CheckpointMismatchError",
    "HubRequestError",
    "HubUnavailableError",
    "InvalidExportError",
    "WeightsIntegrityError",
    "WeightsNotPublishedError",
    "adapt_input_conv",
    "entry_from_export",
    "export_checkpoint",
    "from_pretrained",
    "load_export_config",
    "metrics_from_evaluation",
    "push_to_hub",
    "save_pretrained",
    "sha256_file",
    "upload_folder",
]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CARD_NAME = "README.md"
#: The files an export consists of, in the order they are written.
EXPORT_FILES = (WEIGHTS_NAME, MODEL_CARD_NAME, CONFIG_NAME)
#: Version of the ``config.json`` layout; bumped on incompatible changes.
FORMAT_VERSION = 1

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Keys of the first convolution: its input channels are the model's in_channels.
_FIRST_CONV = {"3d": "conv1.weight", "2plus1d": "conv1_s.weight"}
_MAX_LISTED = 12
# Where recipe_commands() puts an export; named in the not-published error.
RUN_HINT = "runs/{alias}/export"


# ----------------------------------------------------------------------------- errors
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


# ----------------------------------------------------------------------------- helpers
def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in chunks, so large files use little memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _git_blob_sha1(path: str | os.PathLike[str]) -> str:
    # The Hub's ETag of a file stored in git (not LFS) is its git blob id.
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _offline() -> bool:
    """Offline mode as the environment says *now* (huggingface_hub reads it once at import)."""
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE"):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _endpoint() -> str | None:
    """``HF_ENDPOINT`` as set now, or ``None`` for huggingface_hub's default."""
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def _listing(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _looks_like_path(name: str) -> bool:
    return (
        name in (".", "..")
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or os.path.isabs(name)
    )


# ----------------------------------------------------------------------------- config.json
def load_export_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an export's ``config.json``.

    Args:
        path: The ``config.json`` file, or the export folder holding it.

    Returns:
        The parsed dict, with ``"config"`` replaced by a validated
        :class:`~resnet3d.config.ResNet3DConfig` and ``"metrics"`` by :class:`Metric` objects.

    Raises:
        InvalidExportError: If the file is missing, is not JSON, or its content is invalid.
    """
    from .config import ResNet3DConfig

    file = Path(path)
    if file.is_dir():
        file = file / CONFIG_NAME
    if not file.is_file():
        raise InvalidExportError(
            f"missing {CONFIG_NAME}: {file} does not exist. An export holds {WEIGHTS_NAME}, "
            f"{CONFIG_NAME} and {MODEL_CARD_NAME}, as written by save_pretrained() or "
            "'resnet3d export'.",
            path=file,
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidExportError(f"{file} is not valid JSON: {error}", path=file) from None
    if not isinstance(data, dict):
        raise InvalidExportError(
            f"{file} must hold a JSON object, got {type(data).__name__}", path=file
        )
    if data.get("library_name", "resnet3d") != "resnet3d":
        raise InvalidExportError(
            f"{file} was written by {data.get('library_name')!r}, not resnet3d; use "
            "resnet3d.convert for other libraries' weights",
            path=file,
        )
    version = data.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InvalidExportError(
            f"{file} has format_version {version!r}; this resnet3d ({__version__}) reads "
            f"format_version <= {FORMAT_VERSION}. Upgrade resnet3d.",
            path=file,
        )
    raw = data.get("config")
    if not isinstance(raw, dict):
        raise InvalidExportError(
            f"{file} lacks the architecture: expected a 'config' object with ResNet3DConfig "
            f"fields, got {raw!r}",
            path=file,
        )
    try:
        config = ResNet3DConfig.from_dict(raw)
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{file}: invalid 'config': {error}", path=file) from None
    data["config"] = config

    labels = data.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InvalidExportError(
                f"{file}: 'labels' must be a list of strings, got {labels!r}", path=file
            )
        if config.num_classes and len(labels) != config.num_classes:
            raise InvalidExportError(
                f"{file}: {len(labels)} labels {labels} for a model with "
                f"num_classes={config.num_classes}",
                path=file,
            )
    preprocessing = data.get("preprocessing")
    if preprocessing is not None and not isinstance(preprocessing, dict):
        raise InvalidExportError(
            f"{file}: 'preprocessing' must be an object or null, got {preprocessing!r}", path=file
        )
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list):
        raise InvalidExportError(f"{file}: 'metrics' must be a list, got {metrics!r}", path=file)
    try:
        data["metrics"] = [Metric.from_dict(m) for m in metrics]
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{file}: invalid metric: {error}", path=file) from None
    return data


def _config_document(
    model: ResNet3D,
    *,
    preprocessing: Mapping[str, Any] | None,
    labels: Sequence[str] | None,
    metrics: Sequence[Metric],
    license: str | None,
    dataset: str | None,
    description: str | None,
    alias: str | None,
) -> dict[str, Any]:
    return {
        "library_name": "resnet3d",
        "library_version": __version__,
        "format_version": FORMAT_VERSION,
        "architecture": model.config.name or None,
        "config": model.config.to_dict(),
        "preprocessing": dict(preprocessing) if preprocessing is not None else None,
        "labels": list(labels) if labels is not None else None,
        "metrics": [m.to_dict() for m in metrics],
        "license": license,
        "dataset": dataset,
        "description": description,
        "alias": alias,
    }


# ----------------------------------------------------------------------------- weights
def adapt_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a first-convolution weight to another number of input channels.

    - To 1 channel: the filters are summed over the input channels, so a grey volume gives
      the response the original net gives to that volume repeated in every channel.
    - To ``C`` channels from ``C0``: the filters are repeated cyclically
      (``C0, C0, ...`` truncated to ``C``) and scaled by ``C0 / C``, so an input that repeats
      the original channels gives the original response (the output scale is kept).

    Args:
        weight: ``(out, C0, kD, kH, kW)`` convolution weight.
        in_channels: The new number of input channels ``C``.

    Returns:
        A new ``(out, C, kD, kH, kW)`` weight (``weight`` itself when ``C == C0``).

    Raises:
        ValueError: If ``in_channels < 1`` or ``weight`` is not 5-D.
    """
    if weight.ndim != 5:
        raise ValueError(f"expected a 5-D Conv3d weight, got shape {tuple(weight.shape)}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
    old = weight.shape[1]
    if in_channels == old:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / old)
    return weight.repeat(1, repeats, 1, 1, 1)[:, :in_channels] * (old / in_channels)


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module, source: str = "checkpoint"
) -> None:
    """Raise unless ``state_dict`` has exactly the model's keys with the model's shapes.

    Raises:
        CheckpointMismatchError: Listing missing, unexpected and misshapen keys.
    """
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in expected)
    misshapen = [
        f"{k}: {tuple(state_dict[k].shape)} in {source}, {tuple(expected[k].shape)} in model"
        for k in expected
        if k in state_dict and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or misshapen):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if misshapen:
        parts.append(f"{len(misshapen)} misshapen: {_listing(misshapen)}")
    raise CheckpointMismatchError(
        f"{source} does not match the model ({'; '.join(parts)}). Loading is strict; to change "
        "the classifier or the input channels pass num_classes= or in_channels=, and for other "
        "libraries' weights use resnet3d.convert."
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise InvalidExportError(
            f"missing weights: {path} does not exist (an export holds {WEIGHTS_NAME}; pickled "
            "checkpoints are never loaded as weights, convert them with 'resnet3d export')",
            path=path,
        )
    try:
        return load_file(os.fspath(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise InvalidExportError(
            f"cannot read {path} as safetensors ({error}); the file is truncated, corrupted or "
            "not a safetensors file",
            path=path,
        ) from None


# ----------------------------------------------------------------------------- Hub access
def _download_hint(repo_id: str, revision: str | None, files: Iterable[str], cache: Path) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f"hf download {repo_id} {' '.join(files)}{rev} --cache-dir {cache}"


def _hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    cache_dir: Path,
    local_files_only: bool,
    token: str | bool | None,
    alias: str | None,
) -> Path:
    """``hf_hub_download`` with the library's errors (one type for offline/unreachable).

    Online, the Hub is probed first with one short request (:mod:`resnet3d._hub_probe`): when
    it cannot be reached, only the cache is read, so no network fails in seconds instead of
    after huggingface_hub's retries.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    what = f"alias {alias!r} (repo {repo_id!r})" if alias else f"repo {repo_id!r}"
    where = f"{what} at revision {revision or 'main'!r}"
    endpoint, timeout = _endpoint(), hub_timeout()
    unavailable: tuple[type[BaseException], ...] = (
        LocalEntryNotFoundError,
        HfHubHTTPError,
        *network_errors(),
    )
    unreachable: BaseException | None = None
    # A pinned commit already in the cache needs no network (hf_hub_download would not ask
    # either); a branch or tag is asked for, since it may have moved.
    pinned_and_cached = (
        revision is not None
        and _HEX40.fullmatch(revision) is not None
        and isinstance(try_to_load_from_cache(repo_id, filename, cache_dir, revision), str)
    )
    if not local_files_only and not pinned_and_cached:
        unreachable = probe_hub(
            repo_id, filename, revision=revision, endpoint=endpoint, token=token, timeout=timeout
        )
        if unreachable is not None:
            logger.info(
                "the Hub at %s is unreachable (%s); reading the cache only",
                endpoint or "huggingface.co",
                unreachable,
            )
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only or unreachable is not None,
            token=token,
            endpoint=endpoint,
            etag_timeout=timeout,
            library_name="resnet3d",
            library_version=__version__,
        )
    except RemoteEntryNotFoundError:
        raise InvalidExportError(
            f"{where} has no {filename}; a resnet3d export holds {', '.join(EXPORT_FILES)}"
        ) from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{where}: revision not found on the Hub") from None
    except (RepositoryNotFoundError, GatedRepoError) as error:
        raise FileNotFoundError(
            f"{where}: repository not found or not accessible ({type(error).__name__}); check "
            "the name, or log in with 'hf auth login' for a private or gated repo"
        ) from None
    except unavailable as error:
        state = (
            "offline mode is on (HF_HUB_OFFLINE)" if local_files_only else "the Hub is unreachable"
        )
        hint = _download_hint(repo_id, revision, EXPORT_FILES[::2], cache_dir)
        raise HubUnavailableError(
            f"cannot load {where}: {state} and {filename} is not in the cache folder "
            f"{cache_dir}. Pre-download it where the Hub is reachable with:\n  {hint}\n"
            f"(huggingface-cli download takes the same arguments). "
            f"Cause: {unreachable or error}",
            path=cache_dir,
        ) from None
    return Path(path)


def _evict(path: Path) -> None:
    """Remove a cached file and, if it is a symlink into the Hub cache, its blob too."""
    targets = [path]
    if path.is_symlink():
        targets.append(Path(os.path.realpath(path)))
    for target in targets:
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:  # pragma: no cover - read-only caches
            logger.warning("could not remove bad cached file %s: %s", target, error)


def _verify_sha256(path: Path, expected: str, where: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        size = os.path.getsize(path)
        _evict(path)
        raise WeightsIntegrityError(
            f"{where}: sha256 of {path.name} ({size} bytes) is {actual}, expected {expected}. "
            "The file is tampered with or truncated; it was deleted from the cache so it is not "
            "used again. Retry the download.",
            path=path,
        )


def _verify_cached_blob(path: Path, where: str) -> None:
    """Check a Hub-cache file against its blob name (the Hub's ETag: sha256 or git blob id)."""
    real = Path(os.path.realpath(path))
    if real.parent.name != "blobs":
        return
    name = real.name
    if _HEX64.fullmatch(name):
        actual, kind = sha256_file(real), "sha256"
    elif _HEX40.fullmatch(name):
        actual, kind = _git_blob_sha1(real), "git blob sha1"
    else:
        return
    if actual != name:
        _evict(path)
        raise WeightsIntegrityError(
            f"{where}: cached {path.name} does not match its Hub hash ({kind} expected {name}, "
            f"actual {actual}); the file was deleted from the cache so it is not used again. "
            "Retry the download.",
            path=path,
        )


# ----------------------------------------------------------------------------- loading
def from_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
) -> ResNet3D:
    """Load a pretrained :class:`~resnet3d.resnet.ResNet3D`.

    Args:
        name_or_path: A weights-table alias (``"ccii-depth4"``, see
            :func:`resnet3d.pretrained.list_pretrained`), a Hub repo id (``"org/name"``), or a
            local export directory (``"./exports/run1"`` or a :class:`pathlib.Path`). See the
            module docstring for how a name is resolved.
        revision: Branch, tag or commit of a Hub repo. An alias is pinned to its table revision,
            so ``revision`` must be ``None`` or that commit.
        num_classes: Replace the classifier with a freshly initialised one with this many
            outputs (0 removes it); ``None`` keeps the checkpoint's. Logged.
        in_channels: Adapt the first convolution to this many input channels with
            :func:`adapt_input_conv`; ``None`` keeps the checkpoint's. Logged.
        cache_dir: The Hub cache folder; default ``HF_HUB_CACHE`` (``~/.cache/huggingface/hub``).
        local_files_only: Never touch the network; ``None`` follows ``HF_HUB_OFFLINE``.
        token: Hub token for private repos (default: the one ``hf auth login`` saved).

    Returns:
        The model in eval mode, with ``model.pretrained_cfg`` holding the preprocessing spec,
        labels, metrics, license and where the weights came from.

    Raises:
        ValueError: Unknown alias (closest names listed), a bad argument, or ``revision`` with
            an alias pinned to another commit.
        WeightsNotPublishedError: The alias's weights are not published yet (the message gives
            the commands that produce them).
        HubUnavailableError: Offline or unreachable Hub and the files are not cached (an
            ``OSError``).
        WeightsIntegrityError: The downloaded file's sha256 is not the table's (an ``OSError``).
        InvalidExportError: ``config.json`` or ``model.safetensors`` missing or invalid.
        CheckpointMismatchError: The weights' keys or shapes do not match the config.
        FileNotFoundError: A local directory, Hub repo or revision that does not exist.
    """
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
    if num_classes is not None and num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
    if in_channels is not None and in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    kind, target = _resolve_name(name_or_path)
    offline = _offline() if local_files_only is None else bool(local_files_only)
    cache = _cache_dir(cache_dir)
    source: dict[str, Any]
    entry: PretrainedEntry | None = None

    if kind == "dir":
        folder = Path(target).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no export directory {os.fspath(folder)!r}"
                + (" (it is a file)" if folder.exists() else "")
            )
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        source = {"source": "local", "path": os.fspath(folder.resolve())}
    else:
        if kind == "alias":
            entry = get_pretrained(str(target))
            if not entry.published:
                raise WeightsNotPublishedError(_not_published_message(entry))
            if revision is not None and revision != entry.revision:
                raise ValueError(
                    f"alias {entry.alias!r} is pinned to revision {entry.revision}; got "
                    f"revision={revision!r}. To load another revision, name the repo: "
                    f"from_pretrained({entry.repo_id!r}, revision={revision!r})"
                )
            repo_id, rev, filename = entry.repo_id, entry.revision, entry.filename
        else:
            repo_id, rev, filename = str(target), revision, WEIGHTS_NAME
        if repo_id is None:  # pragma: no cover - PretrainedEntry guarantees it when published
            raise ValueError(f"{name_or_path!r} has no repo id")
        where = (
            f"alias {entry.alias!r} (repo {repo_id!r} at {rev})" if entry else f"repo {repo_id!r}"
        )
        alias = entry.alias if entry else None
        config_path = _hub_download(
            repo_id,
            CONFIG_NAME,
            revision=rev,
            cache_dir=cache,
            local_files_only=offline,
            token=token,
            alias=alias,
        )
        _verify_cached_blob(config_path, where)
        weights_path = _hub_download(
            repo_id,
            filename,
            revision=rev,
            cache_dir=cache,
            local_files_only=offline,
            token=token,
            alias=alias,
        )
        if entry is not None and entry.sha256 is not None:
            _verify_sha256(weights_path, entry.sha256, where)
        else:
            _verify_cached_blob(weights_path, where)
        commit = weights_path.parent.name if _HEX40.fullmatch(weights_path.parent.name) else rev
        source = {"source": "hub", "repo_id": repo_id, "revision": commit}
        if entry is not None:
            source["alias"] = entry.alias
    return _load_export(
        config_path,
        weights_path,
        source=source,
        entry=entry,
        num_classes=num_classes,
        in_channels=in_channels,
    )


def _resolve_name(name: str | os.PathLike[str]) -> tuple[str, str | os.PathLike[str]]:
    """Classify ``name`` as ``"dir"``, ``"alias"`` or ``"repo"`` (rules in the module doc)."""
    if isinstance(name, os.PathLike):
        return "dir", name
    if not isinstance(name, str):
        raise TypeError(
            f"expected an alias, a repo id or a directory (str or PathLike), got {name!r}"
        )
    if not name.strip():
        raise ValueError("expected an alias, a repo id or a directory, got an empty string")
    if _looks_like_path(name):
        return "dir", name
    shadow = Path(name).is_dir()
    if is_alias(name) or _REPO_ID.fullmatch(name):
        kind = "alias" if is_alias(name) else "repo"
        if shadow:
            logger.warning(
                "%r is a %s and also a directory here; loading the %s. To load the directory, "
                "pass './%s'.",
                name,
                "weights-table alias" if kind == "alias" else "Hub repo id",
                kind,
                name,
            )
        return kind, name
    if shadow:
        return "dir", name
    raise ValueError(
        f"{name!r} is not a pretrained alias, not a Hub repo id ('org/name') and not a directory. "
        f"Known aliases: {list_pretrained()}." + did_you_mean(name, list_pretrained())
    )


def _not_published_message(entry: PretrainedEntry) -> str:
    commands = "\n".join(f"  {c}" for c in recipe_commands(entry))
    return (
        f"the weights of {entry.alias!r} ({entry.description or entry.architecture}) are not "
        "published yet, and resnet3d never substitutes random weights. Produce them with the "
        f"paper's recipe:\n{commands}\nthen load your export with "
        f"from_pretrained('./{RUN_HINT.format(alias=entry.alias)}') or "
        f"from_pretrained('YOUR_ORG/{entry.alias}'). Published aliases: "
        f"{list_pretrained(published_only=True) or 'none yet'}."
    )


def _load_export(
    config_path: Path,
    weights_path: Path,
    *,
    source: dict[str, Any],
    entry: PretrainedEntry | None,
    num_classes: int | None,
    in_channels: int | None,
) -> ResNet3D:
    from .resnet import ResNet3D

    meta = load_export_config(config_path)
    config: ResNet3DConfig = meta["config"]
    labels = meta.get("labels")
    preprocessing = meta.get("preprocessing")
    metrics: list[Metric] = meta["metrics"]
    license_ = meta.get("license")
    if entry is not None:
        # The table is the authority for an alias; the repo must agree on what matters.
        if config.name and config.name != entry.architecture:
            raise InvalidExportError(
                f"{config_path}: architecture {config.name!r} but the weights table says "
                f"{entry.architecture!r} for {entry.alias!r}",
                path=config_path,
            )
        if labels is not None and list(labels) != list(entry.labels):
            raise InvalidExportError(
                f"{config_path}: labels {labels} but the weights table says "
                f"{list(entry.labels)} for {entry.alias!r}",
                path=config_path,
            )
        labels, preprocessing = list(entry.labels), dict(entry.preprocessing)
        metrics, license_ = list(entry.metrics), entry.license

    state = _read_safetensors(weights_path)
    adapted: dict[str, Any] = {}
    if in_channels is not None and in_channels != config.in_channels:
        key = _FIRST_CONV[config.conv]
        if key not in state:
            check_state_dict(state, ResNet3D(config), source=os.fspath(weights_path))
        state[key] = adapt_input_conv(state[key], in_channels)
        changes: dict[str, Any] = {"in_channels": in_channels}
        if config.conv == "2plus1d" and config.stem_midplanes is None:
            # The default (2+1)D stem width depends on in_channels; keep the checkpoint's so
            # that only the first convolution's input side changes.
            from .stems import stem_midplanes

            changes["stem_midplanes"] = stem_midplanes(config)
        logger.info(
            "adapted %s from %d to %d input channels (%s)",
            key,
            config.in_channels,
            in_channels,
            "summed filters" if in_channels == 1 else "repeated filters, scaled",
        )
        adapted["in_channels"] = [config.in_channels, in_channels]
        config = config.replace(**changes)
        if isinstance(preprocessing, dict) and "channels" in preprocessing:
            preprocessing = {**preprocessing, "channels": in_channels}

    model = ResNet3D(config)
    check_state_dict(state, model, source=os.fspath(weights_path))
    model.load_state_dict(state, strict=True)

    if num_classes is not None and num_classes != config.num_classes:
        logger.info(
            "re-initialised the classifier: %d -> %d classes (the checkpoint's head is dropped)",
            config.num_classes,
            num_classes,
        )
        model.reset_classifier(num_classes)
        adapted["num_classes"] = [config.num_classes, num_classes]
        labels = None
    if adapted:
        # Numbers measured for the original weights do not describe the adapted model.
        metrics = []
    model.pretrained_cfg = {
        **source,
        "architecture": config.name or None,
        "preprocessing": preprocessing,
        "labels": list(labels) if labels is not None else None,
        "metrics": [m.to_dict() for m in metrics],
        "license": license_,
        "dataset": entry.dataset if entry is not None else meta.get("dataset"),
        "description": entry.description if entry is not None else meta.get("description"),
        "library_version": meta.get("library_version"),
        "adapted": adapted,
    }
    logger.info("loaded %s from %s", config.name or "model", source)
    return model.eval()


# ----------------------------------------------------------------------------- saving
def _as_metrics(metrics: Iterable[Metric | Mapping[str, Any]] | None) -> list[Metric]:
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
        metrics: :class:`~resnet3d.pretrained.Metric` objects or dicts
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
    metric_list = _as_metrics(metrics if metrics is not None else cfg.get("metrics"))
    license = license if license is not None else cfg.get("license")
    dataset = dataset if dataset is not None else cfg.get("dataset")
    description = description if description is not None else cfg.get("description")
    _check_metadata(model, preprocessing, labels)

    target = Path(save_directory).expanduser()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"cannot save into {os.fspath(target)!r}: it is a file")
    if target.is_dir() and not overwrite:
        _refuse_non_empty(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = _config_document(
        model,
        preprocessing=preprocessing,
        labels=labels,
        metrics=metric_list,
        license=license,
        dataset=dataset,
        description=description,
        alias=cfg.get("alias"),
    )
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
        _write_model_card(tmp / MODEL_CARD_NAME, model, document, metric_list)
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


def _refuse_non_empty(target: Path) -> None:
    """Raise ``FileExistsError`` if ``target`` holds anything: the library did not write it."""
    held = sorted(p.name for p in target.iterdir())
    if held:
        ours = ", ".join(EXPORT_FILES)
        raise FileExistsError(
            f"{os.fspath(target)} is not empty (it holds {_listing(held)}); nothing was "
            f"written. Choose an empty or new folder, or overwrite (--overwrite, "
            f"overwrite=True) to replace only {ours} and keep the rest"
        )


def _check_metadata(
    model: ResNet3D, preprocessing: Mapping[str, Any] | None, labels: Sequence[str] | None
) -> None:
    if labels is not None:
        if isinstance(labels, str) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"labels must be a sequence of strings, got {labels!r}")
        if model.num_classes and len(labels) != model.num_classes:
            raise ValueError(
                f"got {len(labels)} labels {list(labels)} for a model with "
                f"num_classes={model.num_classes}"
            )
    if preprocessing is not None:
        if not isinstance(preprocessing, Mapping):
            raise ValueError(f"preprocessing must be a dict, got {preprocessing!r}")
        unknown = [k for k in preprocessing if k not in PREPROCESSING_KEYS]
        if unknown:
            raise ValueError(
                f"unknown preprocessing keys {unknown}; allowed (SliceStacker arguments): "
                f"{list(PREPROCESSING_KEYS)}." + did_you_mean(str(unknown[0]), PREPROCESSING_KEYS)
            )
        channels = preprocessing.get("channels")
        if channels is not None and channels != model.config.in_channels:
            raise ValueError(
                f"preprocessing channels={channels} but the model takes "
                f"in_channels={model.config.in_channels}"
            )
        try:
            json.dumps(dict(preprocessing))
        except TypeError as error:
            raise ValueError(f"preprocessing must be JSON-able: {error}") from None


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


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _write_model_card(
    path: Path, model: ResNet3D, document: Mapping[str, Any], metrics: Sequence[Metric]
) -> None:
    """Write the model card (``README.md``) with Hub metadata front matter."""
    path.write_text(render_model_card(model, document, metrics), encoding="utf-8")


def render_model_card(
    model: ResNet3D, document: Mapping[str, Any], metrics: Sequence[Metric]
) -> str:
    """The model card text for ``model`` and its ``config.json`` ``document``."""
    config = model.config
    name = document.get("alias") or config.name or "resnet3d model"
    params = sum(p.numel() for p in model.parameters())
    front = ["---", "library_name: resnet3d"]
    if document.get("license"):
        front.append(f"license: {document['license']}")
    front += [
        "tags:",
        "  - resnet3d",
        "  - 3d-cnn",
        "  - medical-imaging",
        "  - computed-tomography",
        "---",
    ]
    lines = [*front, "", f"# {name}", ""]
    if document.get("description"):
        lines += [str(document["description"]), ""]
    lines += [
        "## Model",
        "",
        f"- Architecture: `{config.name or 'custom'}` ({config.block} blocks, layers "
        f"{_fmt(config.layers)}, widths {_fmt(config.widths)}, {config.conv} convolutions, "
        f"type-{config.shortcut} shortcuts), {params / 1e6:.2f}M parameters.",
        f"- Stem: kernel {_fmt(config.stem_kernel)}, stride {_fmt(config.stem_stride)}, "
        f"max pool {'yes' if config.stem_pool else 'no'}.",
        f"- Input: `(B, {config.in_channels}, D, H, W)`; output: "
        + (f"`(B, {config.num_classes})` logits." if config.num_classes else "pooled features."),
    ]
    labels = document.get("labels")
    if labels:
        lines.append(f"- Classes (output order): {', '.join(labels)}.")
    lines.append(f"- Written by resnet3d {document.get('library_version')}.")
    lines += ["", "## Preprocessing", ""]
    spec = document.get("preprocessing")
    if spec:
        lines += [
            "Build input volumes with `resnet3d.volumes.SliceStacker` configured as:",
            "",
            "| argument | value |",
            "|---|---|",
            *[f"| `{k}` | `{v!r}` |" for k, v in spec.items()],
        ]
    else:
        lines.append("Not recorded.")
    lines += ["", "## Training data", "", str(document.get("dataset") or "Not recorded."), ""]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["| metric | value | unit | split |", "|---|---|---|---|"]
        lines += [f"| {m.name} | {m.value:.4f} | {m.unit} | {m.split} |" for m in metrics]
    else:
        lines.append("No metrics recorded for these weights.")
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "import resnet3d",
        "",
        'model = resnet3d.from_pretrained("ORG/NAME")  # this repo',
        "print(model.pretrained_cfg['preprocessing'], model.pretrained_cfg['labels'])",
        "```",
        "",
        "## Intended use",
        "",
        "Research on 3D convolutional classification of CT volumes (and other volumetric data), "
        "reproduction of published results, and as a starting point for fine-tuning.",
        "",
        "## Limitations",
        "",
        "- **Research use only. Not a medical device and not for clinical decisions**: it has "
        "not been validated for diagnosis, screening or triage of any patient.",
        "- Results hold for data prepared exactly as above, from the population and scanners of "
        "the training data; other hospitals, scanners, reconstructions or slice spacings may "
        "change its behaviour without warning.",
        "- Metrics are for the split named in the table only.",
        "",
        "## Citation",
        "",
        "Li, Pei and Guo, *A 3D CNN Classification Model for Accurate Diagnosis of Coronavirus "
        "Disease 2019 using Computed Tomography Images*, medRxiv 10.1101/2021.01.21.21249999 "
        "(2021).",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- publishing
def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
) -> CommitInfo:
    """Upload an export folder to a Hub repo (created if needed) in one commit.

    The folder is checked first: its ``config.json`` must be valid and its weights must load
    strictly into the architecture it describes.

    Args:
        folder: An export written by :func:`save_pretrained` or ``resnet3d export``.
        repo_id: ``"org/name"``.
        revision: Branch to commit to (default ``main``).
        private: Visibility for a new repo (``None``: the Hub's default).
        token: Hub token (default: the one ``hf auth login`` saved).
        commit_message: Default ``"Upload resnet3d export"``.
        create_pr: Open a pull request instead of committing to the branch.

    Returns:
        huggingface_hub's ``CommitInfo`` (``.oid`` is the commit to pin in the weights table).

    Raises:
        InvalidExportError: If the folder is not a valid export.
        HubUnavailableError: If offline mode is on or the Hub cannot be reached.
        HubRequestError: If the Hub refuses the upload (e.g. no or a wrong token).
        ValueError: If ``repo_id`` is not ``"org/name"``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    path = Path(folder).expanduser()
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    # Validates config.json and the weights (strict keys) before anything leaves the machine.
    _load_export(
        path / CONFIG_NAME,
        path / WEIGHTS_NAME,
        source={"source": "local", "path": os.fspath(path)},
        entry=None,
        num_classes=None,
        in_channels=None,
    )
    if _offline():
        raise HubUnavailableError(
            f"cannot push {path} to {repo_id!r}: offline mode is on (HF_HUB_OFFLINE); unset it "
            "where the Hub is reachable"
        )
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(
        endpoint=_endpoint(), token=token, library_name="resnet3d", library_version=__version__
    )
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.fspath(path / name))
        for name in EXPORT_FILES
        if (path / name).is_file()
    ]
    # The upload only reads the folder, so whatever fails here, the export is as it was.
    intact = f"{os.fspath(path)} is intact; run the push again"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message or "Upload resnet3d export",
            revision=revision,
            create_pr=create_pr,
        )
    except HfHubHTTPError as error:
        raise HubRequestError(
            f"the Hub refused to push {os.fspath(path)} to {repo_id!r}: "
            f"{_first_line(error)}; {intact} once that is fixed (token: hf auth login or HF_TOKEN)"
        ) from None
    except network_errors() as error:
        raise HubUnavailableError(
            f"cannot reach the Hugging Face Hub ({_endpoint() or 'huggingface.co'}: "
            f"{_first_line(error)}); nothing was uploaded, {intact} when online"
        ) from None
    logger.info("pushed %s to %s at commit %s", path, repo_id, info.oid)
    return info


def push_to_hub(
    model: ResNet3D,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    **save_kwargs: Any,
) -> CommitInfo:
    """Save ``model`` with :func:`save_pretrained` into a temporary folder and upload it.

    Args:
        model: The model.
        repo_id: ``"org/name"``.
        revision: Branch to commit to (default ``main``).
        private: Visibility for a new repo.
        token: Hub token.
        commit_message: The commit message.
        create_pr: Open a pull request instead of committing.
        **save_kwargs: ``preprocessing``, ``labels``, ``metrics``, ``license``, ``dataset``,
            ``description`` for :func:`save_pretrained`.

    Returns:
        huggingface_hub's ``CommitInfo``.
    """
    with tempfile.TemporaryDirectory(prefix="resnet3d-push-") as tmp:
        folder = save_pretrained(model, Path(tmp) / "export", **save_kwargs)
        return upload_folder(
            folder,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message,
            create_pr=create_pr,
        )


def entry_from_export(
    folder: str | os.PathLike[str], *, alias: str, repo_id: str, revision: str
) -> PretrainedEntry:
    """The weights-table entry for an export pushed to ``repo_id`` at commit ``revision``.

    The sha256 is computed from the folder's ``model.safetensors``; preprocessing, labels,
    metrics and license come from its ``config.json``. Register it with
    :func:`resnet3d.pretrained.register_pretrained` or paste its fields into the table.

    Raises:
        InvalidExportError: If the folder is not a valid export.
        ValueError: If ``revision`` is not a 40-hex commit or another field is invalid.
    """
    path = Path(folder)
    meta = load_export_config(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise InvalidExportError(f"missing weights: {weights} does not exist", path=weights)
    config: ResNet3DConfig = meta["config"]
    return PretrainedEntry(
        alias=alias,
        architecture=config.name or meta.get("architecture") or "custom",
        preprocessing=meta.get("preprocessing") or {},
        labels=tuple(meta.get("labels") or ()),
        description=meta.get("description") or "",
        repo_id=repo_id,
        revision=revision,
        sha256=sha256_file(weights),
        metrics=tuple(meta["metrics"]),
        license=meta.get("license"),
        dataset=meta.get("dataset") or "",
    )


# ----------------------------------------------------------------------------- export
_EVAL_MACRO = ("precision", "recall", "f1", "auroc")


def metrics_from_evaluation(
    path: str | os.PathLike[str], *, split: str | None = None
) -> tuple[list[Metric], list[str] | None]:
    """Read the metrics of an ``evaluation.json`` written by ``resnet3d evaluate``.

    For each level (volume, scan, patient) it takes the accuracy and the macro precision,
    recall, F1 and AUROC, all fractions. The split text says which data and level they were
    measured on, e.g. ``"test split, patient level (n=44)"``.

    Args:
        path: The JSON file: ``{"split": ..., "labels": [...], "levels": {level: report}}``,
            or a single ``ClassificationReport.to_dict()``.
        split: Which data was evaluated (e.g. ``"CC-CCII test"``), used as given. Default: the
            file's ``"split"`` entry (``resnet3d evaluate`` records its ``--split``; a patient
            split's name ``"test"`` reads ``"test split"``), else ``"split not recorded"``
            (with a warning).

    Returns:
        The metrics and the labels the file names (``None`` if it names none).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InvalidExportError: If the file is not such a JSON document.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"evaluation JSON not found: {file}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidExportError(f"{file} is not valid JSON: {error}", path=file) from None
    if not isinstance(doc, dict):
        raise InvalidExportError(f"{file} must hold a JSON object", path=file)
    split = split or _split_text(doc.get("split"), file)
    levels = doc.get("levels")
    if levels is None and "accuracy" in doc:
        levels = {str(doc.get("level", "volume")): doc}
    if not isinstance(levels, dict) or not levels:
        raise InvalidExportError(
            f"{file} is not an evaluation report: expected {{'labels': [...], 'levels': "
            "{'volume': {...}, 'scan': {...}}} as written by 'resnet3d evaluate --out-dir', or a "
            "single report with 'accuracy' and 'macro'",
            path=file,
        )
    metrics = []
    for level, report in levels.items():
        if not isinstance(report, dict):
            raise InvalidExportError(f"{file}: level {level!r} is not an object", path=file)
        where = f"{split}, {level} level" + (
            f" (n={report['n_samples']})" if "n_samples" in report else ""
        )
        values = [("accuracy", report.get("accuracy"))]
        macro = report.get("macro") or {}
        values += [(f"macro_{name}", macro.get(name)) for name in _EVAL_MACRO]
        for name, value in values:
            # Undefined values (None, e.g. AUROC with one class present) are left out.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(name=f"{level}_{name}", value=value, split=where))
    labels = doc.get("labels")
    return metrics, (list(labels) if isinstance(labels, list) else None)


def _split_text(recorded: Any, file: Path) -> str:
    """How the model card names the data an ``evaluation.json`` was measured on."""
    if isinstance(recorded, str) and recorded.strip():
        name = recorded.strip()
        # resnet3d evaluate records its --split: a patient split's name, or "all".
        if name in ("train", "valid", "test"):
            return f"{name} split"
        return "all scans (no split)" if name == "all" else name
    logger.warning(
        "%s does not record which split it evaluated (written before resnet3d evaluate "
        "recorded it); pass split= (CLI: --split) to name it in the model card",
        file,
    )
    return f"split not recorded ({file.name})"


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
    from .checkpoint import load_checkpoint
    from .config import ResNet3DConfig
    from .convert import strip_prefixes
    from .resnet import ResNet3D

    target = Path(out_dir).expanduser()
    if target.is_dir() and not overwrite:
        _refuse_non_empty(target)  # before reading a checkpoint that may be large
    state = load_checkpoint(checkpoint)
    try:
        config = ResNet3DConfig.from_dict(state["model_config"])
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{checkpoint}: invalid model_config: {error}") from None
    model = ResNet3D(config)
    weights = strip_prefixes(state["model"])
    check_state_dict(weights, model, source=os.fspath(checkpoint))
    model.load_state_dict(weights, strict=True)
    metadata = state.get("metadata") or {}
    labels = state.get("labels") or metadata.get("labels") or None
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
        preprocessing=metadata.get("preprocessing") or None,
        labels=labels,
        metrics=metrics,
        license=license,
        dataset=dataset,
        description=description,
        overwrite=overwrite,
    )
