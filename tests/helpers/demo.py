"""The ``demo_run`` fixture's log, and how CI hands the suite a demo it has already run."""

from __future__ import annotations

from pathlib import Path

# A finished demo's folder to use instead of running the demo again: CI sets it to the one
# the README's main command has just written in its own fresh environment (same code, default
# options), which saves the suite three minutes. What that demo printed is DEMO_LOG beside it.
DEMO_ENV = "RESNET3D_TEST_DEMO"
DEMO_LOG = "demo.log"


def demo_log(demo_folder: Path) -> str:
    """What the demo that wrote ``demo_folder`` (the ``demo_run`` fixture) printed."""
    return (demo_folder.parent / DEMO_LOG).read_text()
