"""Shared test setup: deterministic, single-threaded-friendly, no network."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from tests.helpers.demo import DEMO_ENV, DEMO_LOG

# The Hub must never be reached from tests; tests that exercise download code build their own
# cache or loopback server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


# Seconds for a test that uses the demo_run fixture: the demo plus the test itself.
DEMO_TIMEOUT = 900


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_net = pytest.mark.skip(reason="needs network access (never in CI)")
    for item in items:
        if "demo_run" in getattr(item, "fixturenames", ()):
            # The per-test timeout counts fixture setup, and whichever test first asks for
            # the demo runs it (1-3 minutes idle, 7 on a busy 2-core machine); the tests of
            # the demo's model explain dozens of scans (up to 6 minutes busy).
            item.add_marker(pytest.mark.timeout(DEMO_TIMEOUT))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "network" in item.keywords:
            item.add_marker(skip_net)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main command, run once per test session (about 3 minutes on 2 cores).

    Returns the demo's output folder (``run/``, ``export/``, ``eval/``, ``data/``,
    ``demo-summary.json``); tests that need a model trained on the phantom share it. What it
    printed is in ``demo_run.parent / DEMO_LOG`` (``tests.helpers.demo.demo_log``). With
    ``RESNET3D_TEST_DEMO`` set (CI), it is the demo that folder holds.
    """
    given = os.environ.get(DEMO_ENV)
    if given:
        out = Path(given)
        if not (out / "demo-summary.json").is_file() or not (out.parent / DEMO_LOG).is_file():
            pytest.fail(
                f"{DEMO_ENV}={given} is not a finished demo (no demo-summary.json or "
                f"no {DEMO_LOG} beside it); unset it to run the demo here"
            )
        return out

    from resnet3d.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out), "--no-progress"])
    (out.parent / DEMO_LOG).write_text(printed.getvalue())
    assert code == 0, printed.getvalue()[-3000:]
    return out
