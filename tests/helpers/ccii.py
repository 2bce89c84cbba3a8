"""Tiny CC-CCII data sets on disk: noise PNG slices in ``class/patient/scan/`` folders."""

from __future__ import annotations

import csv
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from resnet3d.constants import CCII_CSV_COLUMNS

#: class -> patient -> scan -> number of slices
Layout = Mapping[str, Mapping[str, Mapping[str, int]]]


def make_ccii(
    root: Path,
    layout: Layout,
    *,
    size: int = 6,
    rgb: bool = False,
    rgb_scans: Collection[str] = (),
    name: str = "{i}.png",
    csv_rows: bool = True,
    seed: int = 0,
) -> Path:
    """Write noise PNG slices in the CC-CCII layout, with its ``unzip_filenames.csv``.

    Args:
        root: The data set folder (created).
        layout: Which scans to write and how many slices each has.
        size: Slice height and width.
        rgb: Every slice RGB (else 8-bit gray).
        rgb_scans: Scan ids whose slices are RGB when the others are gray.
        name: Slice file name, formatted with the slice number ``i``.
        csv_rows: Write ``unzip_filenames.csv`` (one row per scan).
        seed: The noise's seed.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for label, patients in layout.items():
        for patient, scans in patients.items():
            for scan, n in scans.items():
                folder = root / label / patient / scan
                folder.mkdir(parents=True)
                shape = (size, size, 3) if rgb or scan in rgb_scans else (size, size)
                for i in range(n):
                    noise = rng.integers(0, 256, shape, dtype=np.uint8)
                    Image.fromarray(noise).save(folder / name.format(i=i))
                rows.append(["x.zip", label, patient, scan, n])
    if csv_rows:
        with open(root / "unzip_filenames.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([CCII_CSV_COLUMNS, *rows])
    return root
