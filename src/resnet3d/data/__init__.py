"""Scans on disk to tensors: slice, DICOM, NIfTI and video readers, the SliceStacker, the scan
index, its consistency checks, patient-level splits, the VolumeDataset, the uint8 cache and
the synthetic data.

Never imports the model code (tests/test_architecture.py checks it); names load on first use,
so ``resnet3d.data.readers`` does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._utils import lazy_attribute

# Public name -> module that defines it; loaded on first use.
_EXPORTS = {
    "CCII_CLASSES": "index",
    "CCII_CSV_COLUMNS": "index",
    "ScanIndex": "index",
    "ScanRecord": "index",
    "video_group": "index",
    "ISSUE_KINDS": "consistency",
    "ConsistencyReport": "consistency",
    "Issue": "consistency",
    "SPLIT_NAMES": "split",
    "Split": "split",
    "split_by_patient": "split",
    "ucf101_split": "split",
    "CLIP_SAMPLING": "dataset",
    "VolumeDataset": "dataset",
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
    "DEFAULT_MAX_BYTES": "readers",
    "DEFAULT_MAX_PIXELS": "readers",
    "DEFAULT_MAX_VOXELS": "readers",
    "MAX_BYTES_ENV": "readers",
    "MAX_VOXELS_ENV": "readers",
    "VIDEO_SUFFIXES": "readers",
    "ScanHeader": "readers",
    "check_scan_size": "readers",
    "decoded_image": "readers",
    "is_junk_name": "readers",
    "is_video_name": "readers",
    "natural_key": "readers",
    "normalize_mode": "readers",
    "open_image": "readers",
    "order_dicom": "readers",
    "read_dicom": "readers",
    "read_nifti": "readers",
    "read_slice": "readers",
    "size_limits": "readers",
    "sniff": "readers",
    "validate_scan": "readers",
}
__all__ = [
    "CACHE_FORMAT",
    "CACHE_VERSION",
    "CCII_CLASSES",
    "CCII_CSV_COLUMNS",
    "CLIP_SAMPLING",
    "DEFAULT_HU_RANGE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_VOXELS",
    "ISSUE_KINDS",
    "MAX_BYTES_ENV",
    "MAX_VOXELS_ENV",
    "SPLIT_NAMES",
    "VIDEO_SUFFIXES",
    "WINDOWS",
    "CacheBuildResult",
    "CacheVerifyResult",
    "ConsistencyReport",
    "Issue",
    "ScanFiles",
    "ScanHeader",
    "ScanIndex",
    "ScanRecord",
    "SliceStacker",
    "Split",
    "VolumeCache",
    "VolumeDataset",
    "apply_window",
    "build_cache",
    "check_scan_size",
    "convert_dtype",
    "decoded_image",
    "is_junk_name",
    "is_video_name",
    "list_slices",
    "load_scan",
    "natural_key",
    "normalize_mode",
    "open_image",
    "order_dicom",
    "read_dicom",
    "read_nifti",
    "read_slice",
    "resolve_window",
    "scan_files",
    "size_limits",
    "sniff",
    "source_fingerprint",
    "split_by_patient",
    "ucf101_split",
    "validate_scan",
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
    from .consistency import ISSUE_KINDS, ConsistencyReport, Issue
    from .dataset import CLIP_SAMPLING, VolumeDataset
    from .index import CCII_CLASSES, CCII_CSV_COLUMNS, ScanIndex, ScanRecord, video_group
    from .readers import (
        DEFAULT_MAX_BYTES,
        DEFAULT_MAX_PIXELS,
        DEFAULT_MAX_VOXELS,
        MAX_BYTES_ENV,
        MAX_VOXELS_ENV,
        VIDEO_SUFFIXES,
        ScanHeader,
        check_scan_size,
        decoded_image,
        is_junk_name,
        is_video_name,
        natural_key,
        normalize_mode,
        open_image,
        order_dicom,
        read_dicom,
        read_nifti,
        read_slice,
        size_limits,
        sniff,
        validate_scan,
    )
    from .split import SPLIT_NAMES, Split, split_by_patient, ucf101_split
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
