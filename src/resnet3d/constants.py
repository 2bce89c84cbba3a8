"""Facts that several rooms need, in one home (stdlib only).

- CC-CCII (Zhang et al. 2020): its classes in the order the models output them, and the
  columns of its ``unzip_filenames.csv``.
- The data set layouts an index reads, the compute precisions a run can ask for, and the
  channels-last settings: one list each, shared by the library and every CLI command.
"""

from __future__ import annotations

__all__ = [
    "CCII_CLASSES",
    "CCII_CSV_COLUMNS",
    "CHANNELS_LAST_CHOICES",
    "LAYOUTS",
    "PRECISIONS",
]

#: CC-CCII's classes in the order the models output them (the paper's order).
CCII_CLASSES: tuple[str, ...] = ("NCP", "CP", "Normal")
#: Columns of CC-CCII's ``unzip_filenames.csv``.
CCII_CSV_COLUMNS: tuple[str, ...] = ("zip_file", "label", "patient_id", "scan_id", "n_slice")
#: Data set layouts: ``ccii`` (class/patient/scan folders + unzip_filenames.csv), ``tree``
#: (class/scan), ``csv`` (a list of scans); ``auto`` detects which.
LAYOUTS: tuple[str, ...] = ("auto", "ccii", "tree", "csv")
#: Compute precisions: ``auto`` picks bf16 where it is correct and faster, else fp32.
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32")
#: Memory-layout settings (``channels_last_3d``): ``auto`` uses it where it is faster.
CHANNELS_LAST_CHOICES: tuple[str, ...] = ("auto", "on", "off")
