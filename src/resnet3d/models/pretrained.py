"""Building models from published weights: ``from_pretrained``, and checking an export
against the model it describes before ``upload_folder`` / ``push_to_hub`` publish it.

Name resolution in :func:`from_pretrained`, in this order:

1. a :class:`os.PathLike`, or a string that starts with ``./``, ``../``, ``/`` or ``~``: a
   local directory;
2. an alias from the weights table (:mod:`resnet3d.weights.table`);
3. a string shaped like a Hub repo id (``org/name``): that Hub repo;
4. any other string naming an existing directory: that directory.

So a directory in the working folder never shadows an alias or a repo id: to load a folder
called ``org/name`` or ``ccii-depth4``, write ``./org/name`` (a warning is logged when such a
folder exists beside an alias or repo id of the same name).

Loading is strict: a missing, unexpected or misshapen key is an error listing the keys.
Adapting a checkpoint is explicit and logged: ``num_classes`` re-initialises only the
classifier, ``in_channels`` changes only the first convolution (see
:func:`resnet3d.weights.state_dict.adapt_input_conv`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .._utils import did_you_mean
from ..errors import (
    InvalidExportError,
    WeightsNotPublishedError,
)
from ..weights.download import (
    HEX40,
    hub_cache_dir,
    hub_download,
    hub_offline,
    verify_cached_blob,
    verify_sha256,
)
from ..weights.export_format import (
    CONFIG_NAME,
    REPO_ID,
    WEIGHTS_NAME,
    document_cfg,
    read_export_config,
)
from ..weights.state_dict import FIRST_CONV, adapt_input_conv, check_state_dict, read_safetensors
from ..weights.table import (
    PretrainedEntry,
    get_pretrained,
    is_alias,
    list_pretrained,
    recipe_commands,
)
from ..weights.upload import upload_export
from .config import ResNet3DConfig
from .registry import check_architecture
from .resnet import ResNet3D
from .stems import stem_midplanes

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

__all__ = ["from_pretrained", "load_export_config", "upload_folder"]

logger = logging.getLogger(__name__)

# Where recipe_commands() puts an export; named in the not-published error.
RUN_HINT = "runs/{alias}/export"


def _looks_like_path(name: str) -> bool:
    return (
        name in (".", "..")
        or name.startswith(("./", "../", "~", ".\\", "..\\"))
        or os.path.isabs(name)
    )


def load_export_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an export's ``config.json`` and check its architecture against the model code.

    Args:
        path: The ``config.json`` file, or the export folder holding it.

    Returns:
        The parsed dict (:func:`resnet3d.weights.export_format.read_export_config`), with
        ``"config"`` replaced by a validated :class:`~resnet3d.models.config.ResNet3DConfig`.

    Raises:
        InvalidExportError: If the file is missing, is not JSON, or its content is invalid.
    """
    data = read_export_config(path)
    file = Path(path) / CONFIG_NAME if Path(path).is_dir() else Path(path)
    try:
        data["config"] = ResNet3DConfig.from_dict(data["config"])
    except (TypeError, ValueError) as error:
        raise InvalidExportError(f"{file}: invalid 'config': {error}", path=file) from None
    return data


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
    """Load a pretrained :class:`~resnet3d.models.resnet.ResNet3D`.

    Args:
        name_or_path: A weights-table alias (``"ccii-depth4"``, see
            :func:`resnet3d.weights.table.list_pretrained`), a Hub repo id (``"org/name"``), or a
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
    offline = hub_offline() if local_files_only is None else bool(local_files_only)
    cache = hub_cache_dir(cache_dir)
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
            # A published entry has its repo id (PretrainedEntry.published).
            repo_id, rev, filename = cast(str, entry.repo_id), entry.revision, entry.filename
        else:
            repo_id, rev, filename = str(target), revision, WEIGHTS_NAME
        where = (
            f"alias {entry.alias!r} (repo {repo_id!r} at {rev})" if entry else f"repo {repo_id!r}"
        )
        alias = entry.alias if entry else None
        config_path = hub_download(
            repo_id,
            CONFIG_NAME,
            revision=rev,
            cache_dir=cache,
            local_files_only=offline,
            token=token,
            alias=alias,
        )
        verify_cached_blob(config_path, where)
        weights_path = hub_download(
            repo_id,
            filename,
            revision=rev,
            cache_dir=cache,
            local_files_only=offline,
            token=token,
            alias=alias,
        )
        if entry is not None and entry.sha256 is not None:
            verify_sha256(weights_path, entry.sha256, where)
        else:
            verify_cached_blob(weights_path, where)
        commit = weights_path.parent.name if HEX40.fullmatch(weights_path.parent.name) else rev
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
    if is_alias(name) or REPO_ID.fullmatch(name):
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
    meta = load_export_config(config_path)
    config: ResNet3DConfig = meta["config"]
    cfg = document_cfg(meta).replace(**source)
    if entry is not None:
        # The table is the authority for an alias; the repo must agree on what matters.
        try:
            check_architecture(entry.architecture, config, source=os.fspath(config_path))
        except ValueError as error:
            raise InvalidExportError(
                f"{error} (the weights table says {entry.architecture!r} for {entry.alias!r})",
                path=config_path,
            ) from None
        if cfg.labels is not None and list(cfg.labels) != list(entry.labels):
            raise InvalidExportError(
                f"{config_path}: labels {list(cfg.labels)} but the weights table says "
                f"{list(entry.labels)} for {entry.alias!r}",
                path=config_path,
            )
        cfg = cfg.replace(
            labels=entry.labels,
            preprocessing=dict(entry.preprocessing),
            metrics=entry.metrics,
            license=entry.license,
            dataset=entry.dataset,
            description=entry.description,
        )
    preprocessing = cfg.preprocessing

    state = read_safetensors(weights_path)
    adapted: dict[str, Any] = {}
    if in_channels is not None and in_channels != config.in_channels:
        key = FIRST_CONV[config.conv]
        if key not in state:
            check_state_dict(state, ResNet3D(config), source=os.fspath(weights_path))
        state[key] = adapt_input_conv(state[key], in_channels)
        changes: dict[str, Any] = {"in_channels": in_channels}
        if config.conv == "2plus1d" and config.stem_midplanes is None:
            # The default (2+1)D stem width depends on in_channels; keep the checkpoint's so
            # that only the first convolution's input side changes.
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
        if preprocessing is not None and "channels" in preprocessing:
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
    model.pretrained_cfg = cfg.replace(
        architecture=config.name or None,
        preprocessing=preprocessing,
        labels=cfg.labels if "num_classes" not in adapted else None,
        # Numbers measured for the original weights do not describe an adapted model.
        metrics=() if adapted else cfg.metrics,
        adapted=adapted,
    )
    logger.info("loaded %s from %s", config.name or "model", source)
    return model.eval()


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
    """Check an export folder against the model it describes, then upload it in one commit.

    Its ``config.json`` must be valid and its weights must load strictly into the
    architecture it describes; then :func:`resnet3d.weights.upload.upload_export` uploads it
    (the arguments and errors are that function's).

    Raises:
        InvalidExportError: If the folder is not a valid export.
        CheckpointMismatchError: If its weights do not fit its architecture.
    """
    path = Path(folder).expanduser()
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id):
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
    return upload_export(
        path,
        repo_id,
        revision=revision,
        private=private,
        token=token,
        commit_message=commit_message,
        create_pr=create_pr,
    )
