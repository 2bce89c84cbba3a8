"""Fetching export files from the Hugging Face Hub, with integrity checks.

The Hub is reached through ``huggingface_hub`` (its cache, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT`` and tokens), all read when a function runs, not at
import. Each file is asked for once with a short timeout first, so an unreachable Hub means
the cache, or a clear error, within seconds (see :mod:`resnet3d.weights.probe`). Every file
read from the cache is checked against its hash (the weights table's sha256, or the Hub's
own blob name); a bad one is deleted so that it is not used again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .._utils import env_flag, sha256_file
from .._version import __version__
from ..errors import HubUnavailableError, InvalidExportError, WeightsIntegrityError
from .export_format import EXPORT_FILES
from .probe import hub_timeout, network_errors, probe_hub

__all__ = [
    "hub_cache_dir",
    "hub_download",
    "hub_endpoint",
    "hub_offline",
    "verify_cached_blob",
    "verify_sha256",
]

logger = logging.getLogger(__name__)

HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _git_blob_sha1(path: str | os.PathLike[str]) -> str:
    # The Hub's ETag of a file stored in git (not LFS) is its git blob id.
    size = os.path.getsize(path)
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def hub_offline() -> bool:
    """Offline mode as the environment says *now* (huggingface_hub reads it once at import)."""
    if env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE"):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_endpoint() -> str | None:
    """``HF_ENDPOINT`` as set now, or ``None`` for huggingface_hub's default."""
    value = os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


def hub_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def _download_hint(repo_id: str, revision: str | None, files: Iterable[str], cache: Path) -> str:
    rev = f" --revision {revision}" if revision else ""
    return f"hf download {repo_id} {' '.join(files)}{rev} --cache-dir {cache}"


def hub_download(
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

    Online, the Hub is probed first with one short request (:mod:`resnet3d.weights.probe`): when
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
    endpoint, timeout = hub_endpoint(), hub_timeout()
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
        and HEX40.fullmatch(revision) is not None
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


def verify_sha256(path: Path, expected: str, where: str) -> None:
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


def verify_cached_blob(path: Path, where: str) -> None:
    """Check a Hub-cache file against its blob name (the Hub's ETag: sha256 or git blob id)."""
    real = Path(os.path.realpath(path))
    if real.parent.name != "blobs":
        return
    name = real.name
    if _HEX64.fullmatch(name):
        actual, kind = sha256_file(real), "sha256"
    elif HEX40.fullmatch(name):
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
