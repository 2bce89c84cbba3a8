"""What a benchmark ran on: CPU and its vector units, GPU, versions, threads, allocator.

Timings are meaningless without the machine they came from; every benchmark result carries
:func:`environment`. The memory allocator is part of it because glibc's ``malloc`` with
its default settings adds 1.2-1.45x to fp32 CPU training compared with tcmalloc (big,
short-lived activation buffers are returned to the OS and faulted in again on every step);
whether :func:`resnet3d.engine.malloc.tune_malloc` changed those settings is recorded too.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from typing import Any

import torch

from .._utils import usable_cpus
from ..engine.malloc import allocator, malloc_tuned

__all__ = [
    "allocator",
    "cpu_flags",
    "cpu_model",
    "describe",
    "environment",
]

#: The CPU flags that decide which kernels PyTorch can use for fp32 and bf16.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
)


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if ":" not in line:
                    if info:
                        break  # the first processor's block is enough
                    continue
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`RELEVANT_FLAGS` the CPU reports (all ``False`` where unknown)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return {name: name in flags for name in RELEVANT_FLAGS}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """A JSON-able description of the machine, the software and the load.

    Args:
        device: The device the benchmark runs on; a CUDA device adds its name, capability,
            memory and the CUDA/cuDNN versions.

    Returns:
        Keys ``time``, ``python``, ``torch``, ``resnet3d``, ``monai``, ``torchvision``,
        ``cpu`` (model, usable and logical CPUs, flags, native bf16), ``torch_threads``,
        ``allocator``, ``malloc_tuned``, ``load_average`` and, on CUDA, ``gpu``.
    """
    from ..engine.device import cpu_has_fast_bf16

    device = torch.device(device)
    try:
        load: list[float] | None = [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        load = None
    env: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "resnet3d": _version("resnet3d"),
        "monai": _version("monai"),
        "torchvision": _version("torchvision"),
        "cpu": {
            "model": cpu_model(),
            "usable_cpus": usable_cpus(),
            "logical_cpus": os.cpu_count(),
            "flags": cpu_flags(),
            "native_bf16": cpu_has_fast_bf16(),
            "torch_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "torch_threads": torch.get_num_threads(),
        "allocator": allocator(),
        "malloc_tuned": malloc_tuned(),
        "load_average": load,
        "device": str(device),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        env["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_bytes": props.total_memory,
            "multiprocessors": props.multi_processor_count,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
    return env


def describe(env: dict[str, Any]) -> str:
    """One line naming the machine, e.g. for a table caption."""
    cpu = env["cpu"]
    flags = [k for k, v in cpu["flags"].items() if v and k in ("avx2", "avx512f", "amx_bf16")]
    text = (
        f"{cpu['model']}, {cpu['usable_cpus']} CPUs ({', '.join(flags) or 'no AVX2'}; native "
        f"bf16: {'yes' if cpu['native_bf16'] else 'no'}), torch {env['torch']} with "
        f"{env['torch_threads']} threads, allocator {env['allocator']}"
        f"{' (tuned)' if env.get('malloc_tuned') else ''}"
    )
    if env.get("load_average"):
        text += f", 1-minute load average {env['load_average'][0]:.2f} at start"
        if env.get("load_average_end"):
            text += f" and {env['load_average_end'][0]:.2f} at the end"
    if "gpu" in env:
        gpu = env["gpu"]
        text = f"{gpu['name']} (CUDA {gpu['cuda']}, cuDNN {gpu['cudnn']}); host: " + text
    return text
