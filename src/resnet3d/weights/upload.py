"""Publishing an export folder on the Hugging Face Hub, in one commit."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import HubRequestError, HubUnavailableError
from .download import hub_endpoint, hub_offline
from .export_format import EXPORT_FILES, REPO_ID, read_export_config
from .probe import network_errors
from .save import save_pretrained

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

    from ..models.resnet import ResNet3D

__all__ = ["push_to_hub", "upload_export"]

logger = logging.getLogger(__name__)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def upload_export(
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

    Only ``config.json`` is checked here (it must be a valid export config);
    :func:`resnet3d.models.pretrained.upload_folder` also loads the weights strictly into the
    architecture they describe before calling this.

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
    if not isinstance(repo_id, str) or not REPO_ID.fullmatch(repo_id):
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    read_export_config(path)  # before anything leaves the machine
    if hub_offline():
        raise HubUnavailableError(
            f"cannot push {path} to {repo_id!r}: offline mode is on (HF_HUB_OFFLINE); unset it "
            "where the Hub is reachable"
        )
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(
        endpoint=hub_endpoint(), token=token, library_name="resnet3d", library_version=__version__
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
            f"{first_line(error)}; {intact} once that is fixed (token: hf auth login or HF_TOKEN)"
        ) from None
    except network_errors() as error:
        raise HubUnavailableError(
            f"cannot reach the Hugging Face Hub ({hub_endpoint() or 'huggingface.co'}: "
            f"{first_line(error)}); nothing was uploaded, {intact} when online"
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
        return upload_export(
            folder,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message,
            create_pr=create_pr,
        )
