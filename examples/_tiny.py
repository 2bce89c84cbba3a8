"""Shared by the examples' ``--tiny`` modes: a small phantom data set to run on any CPU."""

from __future__ import annotations

from pathlib import Path

from resnet3d.data import phantom


def tiny_dataset(out: Path, patients: int = 9, size: int = 32) -> Path:
    """A 9-patient phantom in the CC-CCII layout (one 8-slice scan each), written once."""
    if (out / "unzip_filenames.csv").exists():
        return out
    return phantom.write_dataset(
        out, patients=patients, size=size, seed=0, slices=(8, 8), scans_per_patient=(1, 1)
    )
