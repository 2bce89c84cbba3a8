"""Shared test setup: deterministic, single-threaded-friendly, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The Hub must never be reached from tests; tests that exercise download code build their own
# cache or loopback server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_net = pytest.mark.skip(reason="needs network access (never in CI)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "network" in item.keywords:
            item.add_marker(skip_net)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's main command, run once per test session (about 3 minutes on 2 cores).

    Returns the demo's output folder (``run/``, ``export/``, ``eval/``, ``data/``,
    ``demo-summary.json``); tests that need a model trained on the phantom share it.
    """
    from resnet3d.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    return out
