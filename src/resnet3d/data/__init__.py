"""Scans on disk to tensors: slice, DICOM, NIfTI and video readers, the SliceStacker, the scan
index, patient-level splits, the VolumeDataset, the uint8 cache and the synthetic data.

Never imports the model code (tests/test_architecture.py checks it); names load on first use,
so resnet3d.data.readers does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._utils import lazy_attribute

# Public name -> module that defines it; loaded on first use.
_EXPORTS = {
    "CCII_CLASSES": "index",
    "CCII_CSV_COLUMNS": "index",
    "SPLIT_NAMES": "index",
    "ConsistencyReport": "index",
    "Issue": "index",
    "ScanIndex": "index",
    "ScanRecord": "index",
    "Split": "index",
    "VolumeDataset": "index",
    "split_by_patient": "index",
    "video_group": "index",
    "DEFAULT_HU_RANGE": "volumes",
    "WINDOWS": "volumes",
    "ScanFiles": "volumes",
    "SliceStacker": "volumes",
    "apply_window": "volumes",
    "convert_dtype": "volumes",
    "list_slices": "volumes",
    "load_scan": "volumes",
    "resolve_window": "volumes",
    "scan_files": "volumes",
    "CACHE_FORMAT": "cache",
    "CACHE_VERSION": "cache",
    "CacheBuildResult": "cache",
    "CacheVerifyResult": "cache",
    "VolumeCache": "cache",
    "build_cache": "cache",
    "source_fingerprint": "cache",
}
__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "CCII_CLASSES",
    "CCII_CSV_COLUMNS",
    "DEFAULT_HU_RANGE",
    "SPLIT_NAMES",
    "WINDOWS",
    "CacheBuildResult",
    "CacheVerifyResult",
    "ConsistencyReport",
    "Issue",
    "ScanFiles",
    "ScanIndex",
    "ScanRecord",
    "SliceStacker",
    "Split",
    "VolumeCache",
    "VolumeDataset",
    "apply_window",
    "build_cache",
    "convert_dtype",
    "list_slices",
    "load_scan",
    "resolve_window",
    "scan_files",
    "source_fingerprint",
    "split_by_patient",
    "video_group",
]

if TYPE_CHECKING:
    from .cache import (
        CACHE_FORMAT,
        CACHE_VERSION,
        CacheBuildResult,
        CacheVerifyResult,
        VolumeCache,
        build_cache,
        source_fingerprint,
    )
    from .index import (
        CCII_CLASSES,
        CCII_CSV_COLUMNS,
        SPLIT_NAMES,
        ConsistencyReport,
        Issue,
        ScanIndex,
        ScanRecord,
        Split,
        VolumeDataset,
        split_by_patient,
        video_group,
    )
    from .volumes import (
        DEFAULT_HU_RANGE,
        WINDOWS,
        ScanFiles,
        SliceStacker,
        apply_window,
        convert_dtype,
        list_slices,
        load_scan,
        resolve_window,
        scan_files,
    )


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _EXPORTS, name)


def __dir__() -> list[str]:
    return __all__
