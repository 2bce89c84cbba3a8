"""Is the Hub reachable? One short metadata request, so that no network fails in seconds.

``huggingface_hub.hf_hub_download`` (2.x) retries a failed metadata request five times with
a 60 s timeout and growing sleeps when the file is not cached: about 23 s before an error on
a machine without network, and minutes where packets are dropped. :func:`probe_hub` asks
once, with a short timeout (:data:`HUB_TIMEOUT_S`, or ``HF_HUB_ETAG_TIMEOUT``), so the caller
can go straight to the cache, and to its clear error, when the Hub cannot be reached.
"""

from __future__ import annotations

import logging
import os
import sys

from .._version import __version__

__all__ = ["HUB_TIMEOUT_S", "hub_timeout", "network_errors", "probe_hub"]

logger = logging.getLogger(__name__)

#: Seconds to wait for the Hub to connect and answer one metadata request. The Hub answers
#: in well under a second where it is reachable; ``HF_HUB_ETAG_TIMEOUT`` (huggingface_hub's
#: setting for the same request) overrides it.
HUB_TIMEOUT_S = 5.0


def hub_timeout() -> float:
    """The metadata timeout in seconds: ``HF_HUB_ETAG_TIMEOUT`` when set (read now), else
    :data:`HUB_TIMEOUT_S`. A value that is not a positive number is ignored with a warning."""
    raw = os.environ.get("HF_HUB_ETAG_TIMEOUT", "").strip()
    if not raw:
        return HUB_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        logger.warning(
            "HF_HUB_ETAG_TIMEOUT=%r is not a positive number of seconds; using %s",
            raw,
            HUB_TIMEOUT_S,
        )
        return HUB_TIMEOUT_S
    return value


def network_errors() -> tuple[type[BaseException], ...]:
    """The exception types of a request that never reached the Hub (refused, timed out, no
    route, DNS), for whichever HTTP client this huggingface_hub uses."""
    # requests (huggingface_hub < 1.0) raises OSErrors; httpx (1.x) and httpx2 (2.x) raise
    # their TransportError, which is not one. Only clients already imported are looked at:
    # huggingface_hub imports its own before any request is made.
    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx", "httpx2"):
        error = getattr(sys.modules.get(name), "TransportError", None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


def probe_hub(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    endpoint: str | None,
    token: str | bool | None,
    timeout: float | None = None,
) -> BaseException | None:
    """Ask the Hub for one file's metadata, once, without retries.

    Args:
        repo_id: ``"org/name"``.
        filename: The file in the repo.
        revision: Branch, tag or commit (``None``: ``main``).
        endpoint: The Hub's URL (``None``: huggingface_hub's default).
        token: Hub token, as for ``hf_hub_download``.
        timeout: Seconds for the connection and the answer; default :func:`hub_timeout`.

    Returns:
        The network error when the Hub could not be reached, else ``None``: an HTTP answer,
        even an error status (no such repo, 5xx), means it was reached, and the caller's
        download reports it.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    try:
        get_hf_file_metadata(
            url,
            token=token,
            timeout=hub_timeout() if timeout is None else timeout,
            library_name="resnet3d",
            library_version=__version__,
        )
    except HfHubHTTPError:
        # Checked first: with huggingface_hub < 1.0 an HTTP error is an OSError too.
        return None
    except Exception as error:
        # Anything but a failed connection (a reply that is not the Hub's, say) is left to
        # the download, which reports it with its own error.
        return error if isinstance(error, network_errors()) else None
    return None
