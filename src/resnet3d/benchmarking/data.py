"""Input pipeline throughput: PNG decoding against the uint8 volume cache, with N workers.

On a phantom data set (:func:`resnet3d.data.phantom.write_dataset`, 8-bit gray PNG slices in the
CC-CCII layout) or a given one, this measures volumes/s of:

* the data set itself, item after item in this process (``raw``: one core, no DataLoader),
  once as ``dataset[i]`` gives items (gray repeated to 3 channels) and once in the compact
  form the trainer's loader moves (``load_batch([i], compact=True)``: gray as one channel);
* the DataLoader that :class:`resnet3d.engine.train.Trainer` uses
  (:func:`resnet3d.engine.loader.make_loader` with ``compact=True``) with 0, 1, 2... workers,
  after one untimed epoch (worker start-up, page cache);

once decoding PNG slices on the fly and once reading a cache built by
:func:`resnet3d.data.cache.build_cache` (``resnet3d build-volumes``). Volumes are uint8, the
cheapest host-to-device transfer; the trainer scales them and repeats gray to the
stacker's channels on the device.

From these it answers how many workers keep a training run fed::

    workers = ceil(training samples/s / volumes/s of one worker)
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._utils import usable_cpus
from .environment import describe, environment
from .report import fmt, markdown_table

__all__ = ["DataBenchResult", "bench_data", "workers_needed"]

logger = logging.getLogger(__name__)

#: The issue's example: one H100 at 40% of its dense bf16 peak on resnet18 at the paper input.
H100_BF16_PEAK = 989e12
RESNET18_PAPER_FWD_BWD_FLOP = 270.18e9


def workers_needed(train_rate: float, per_worker_rate: float) -> int:
    """DataLoader workers that deliver ``train_rate`` samples/s: ``ceil(R / r)``.

    Args:
        train_rate: Samples per second the model consumes.
        per_worker_rate: Volumes per second one worker produces.

    Returns:
        At least 1.

    Raises:
        ValueError: If a rate is not positive.
    """
    if not (train_rate > 0 and per_worker_rate > 0):
        raise ValueError(f"rates must be positive, got {train_rate!r} and {per_worker_rate!r}")
    return max(1, math.ceil(train_rate / per_worker_rate))


@dataclass
class DataBenchResult:
    """Rows (one per source and loader setting), the feeding estimate and the environment."""

    settings: dict[str, Any]
    environment: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    transfer: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "benchmark": "data",
            "settings": self.settings,
            "environment": self.environment,
            "rows": self.rows,
            "summary": self.summary,
            "transfer": self.transfer,
        }

    def to_markdown(self) -> str:
        """The throughput table, the targets and the workers estimate with its formula."""
        s = self.settings
        lines = [
            f"Machine: {describe(self.environment)}.",
            "",
            f"Data: {s['data']}; {s['n_volumes']} volumes of {s['depth']} slices "
            f"({s['n_slices']} slices, {s['size']} x {s['size']}), uint8, the trainer's "
            f"DataLoader (compact batches: gray as one channel) with batch {s['batch']}; "
            f"{s['epochs']} timed epochs after one untimed; best epoch. `vs raw`: against "
            "`dataset[i]` in process.",
            "",
        ]
        header = ["source", "loader", "volumes/s", "slices/s", "per worker (volumes/s)", "vs raw"]
        rows = []
        for r in self.rows:
            rows.append(
                [
                    r["source"],
                    _loader_name(r),
                    r["volumes_per_s"],
                    r["slices_per_s"],
                    r["per_worker_volumes_per_s"],
                    "-" if r["vs_raw"] is None else f"{fmt(r['vs_raw'])}x",
                ]
            )
        lines.append(markdown_table(header, rows, "llrrrr"))
        m = self.summary
        lines += [
            "",
            "| check | measured | goal |",
            "|---|---:|---:|",
            f"| cache / PNG decode, per core | {fmt(m['cache_vs_decode_per_core'])}x | >= 10x |",
            f"| DataLoader overhead over raw decode (0 workers) | "
            f"{_pct(m['loader_overhead_decode'])} | <= 10% |",
            f"| DataLoader overhead over raw cache reads (0 workers) | "
            f"{_pct(m['loader_overhead_cache'])} | <= 10% |",
            f"| same, against in-process compact reads (decode / cache) | "
            f"{_pct(m['loader_overhead_decode_compact'])} / "
            f"{_pct(m['loader_overhead_cache_compact'])} | <= 10% |",
        ]
        lines += [
            "",
            "Workers to keep training fed: `workers = ceil(R / r1)`, R = training "
            "samples/s, r1 = volumes/s of one worker (measured above).",
            "",
        ]
        frows = [
            [
                f["label"],
                f["train_rate"],
                f["slices_per_s"],
                f["workers_decode"],
                f["workers_cache"],
            ]
            for f in m["feeding"]
        ]
        lines.append(
            markdown_table(
                [
                    "training rate R",
                    "samples/s",
                    "slices/s needed",
                    "workers (decode)",
                    "workers (cache)",
                ],
                frows,
                "lrrrr",
            )
        )
        if self.transfer:
            lines += ["", "Host to device, pinned batch, scaled to float32 on the device:", ""]
            lines.append(
                markdown_table(
                    ["dtype on the wire", "ms per batch", "GB/s"],
                    [[t["dtype"], t["ms"], t["gb_per_s"]] for t in self.transfer],
                    "lrr",
                )
            )
        return "\n".join(lines)


def _rate(fn: Any, epochs: int) -> tuple[float, int]:
    """Best items/s over ``epochs`` runs of ``fn`` (which returns the items it produced)."""
    best = 0.0
    items = 0
    for _ in range(epochs):
        start = time.perf_counter()
        items = fn()
        best = max(best, items / (time.perf_counter() - start))
    return best, items


def bench_data(
    data: str | os.PathLike[str] | None = None,
    *,
    patients: int = 6,
    slices: int = 32,
    size: int = 512,
    depth: int = 4,
    workers: Sequence[int] | None = None,
    batch: int = 4,
    epochs: int = 2,
    train_rate: float | None = None,
    train_batch: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> DataBenchResult:
    """Measure the input pipeline and estimate the workers that feed a training run.

    Args:
        data: A CC-CCII-style folder to read; default a phantom data set written to a
            temporary folder (``patients`` patients, one scan of ``slices`` slices each).
        patients: Phantom patients (at least 3, one per class).
        slices: Slices per phantom scan.
        size: Slice height and width (phantom and stacker).
        depth: Slices per volume.
        workers: DataLoader worker counts to time; default 0 up to the usable CPUs.
        batch: DataLoader batch size.
        epochs: Timed epochs per setting (after one untimed).
        train_rate: Training samples/s to feed; default measured here: ``resnet3d train``'s
            default step for resnet18 on ``(3, depth, size, size)`` volumes, batch
            ``train_batch``, on ``device``.
        train_batch: Batch of that measurement; default 32 on CUDA (the paper's), 2 on CPU.
        device: Device of the training-rate measurement (and of the transfer test on CUDA).
        seed: Phantom seed.

    Returns:
        The :class:`DataBenchResult`.

    Raises:
        ValueError: For bad sizes or counts.
        FileNotFoundError: If ``data`` does not exist.
    """
    from ..data.cache import build_cache
    from ..data.dataset import VolumeDataset
    from ..data.index import ScanIndex
    from ..data.volumes import SliceStacker
    from ..engine.distributed import DistInfo
    from ..engine.loader import make_loader

    device = torch.device(device)
    if epochs < 1 or batch < 1:
        raise ValueError(f"epochs and batch must be >= 1, got {epochs} and {batch}")
    worker_counts = list(workers) if workers is not None else list(range(usable_cpus() + 1))
    if any(w < 0 for w in worker_counts):
        raise ValueError(f"worker counts must be >= 0, got {worker_counts}")
    with tempfile.TemporaryDirectory(prefix="resnet3d-bench-data-") as tmp:
        if data is None:
            from ..data.phantom import write_dataset

            root = write_dataset(
                Path(tmp) / "phantom",
                patients=patients,
                size=size,
                slices=slices,
                scans_per_patient=1,
                masks=False,
                seed=seed,
            )
            source = f"phantom ({patients} scans of {slices} slices, 8-bit gray PNG)"
        else:
            root = Path(data)
            if not root.exists():
                raise FileNotFoundError(f"data set not found: {root}")
            source = os.fspath(root)
        index = ScanIndex.from_path(root, check_duplicates=False)
        # One decoding thread: the rates are per core, and workers are the parallelism.
        stacker = SliceStacker(depth=depth, size=size, dtype="uint8", threads=1)
        cache_dir = Path(tmp) / "cache"
        start = time.perf_counter()
        build_cache(index, cache_dir, stacker)
        build_s = time.perf_counter() - start
        datasets = {
            "PNG decode": VolumeDataset(index, stacker),
            "uint8 cache": VolumeDataset(index, stacker, cache=cache_dir),
        }
        n_volumes = len(datasets["PNG decode"])
        if n_volumes == 0:
            raise ValueError(f"{root}: no volume of depth {depth}; use more slices per scan")
        result = DataBenchResult(
            settings={
                "data": source,
                "n_scans": len(index),
                "n_slices": sum(r.n_slices for r in index),
                "n_volumes": n_volumes,
                "depth": depth,
                "size": size,
                "batch": batch,
                "workers": worker_counts,
                "epochs": epochs,
                "cache_build_s": build_s,
                "device": str(device),
            },
            environment=environment(device),
        )
        raw_rates: dict[str, float] = {}
        compact_rates: dict[str, float] = {}
        for name, dataset in datasets.items():

            def raw(ds: Any = dataset) -> int:
                for i in range(len(ds)):
                    ds[i]
                return len(ds)

            def raw_compact(ds: Any = dataset) -> int:
                for i in range(len(ds)):
                    ds.load_batch([i], compact=True)
                return len(ds)

            raw()  # untimed: page cache, file lists
            rate, _ = _rate(raw, epochs)
            raw_rates[name] = rate
            result.rows.append(_data_row(name, None, rate, depth, rate))
            compact_rates[name], _ = _rate(raw_compact, epochs)
            row = _data_row(name, None, compact_rates[name], depth, rate)
            result.rows.append({**row, "form": "compact"})
            for w in worker_counts:
                loader = make_loader(
                    dataset,
                    batch,
                    device=torch.device("cpu"),
                    dist_info=DistInfo(),
                    shuffle=True,
                    workers=w,
                    compact=True,
                )

                def run(dl: Any = loader) -> int:
                    n = 0
                    for _, (volumes, *_rest) in dl:
                        n += len(volumes)
                    return n

                run()  # untimed: starts the persistent workers
                rate, _ = _rate(run, epochs)
                result.rows.append(_data_row(name, w, rate, depth, raw_rates[name]))
                del loader
        rate_source = "given"
        if train_rate is None:
            train_batch = train_batch or (32 if device.type == "cuda" else 2)
            train_rate = _measure_train_rate((3, depth, size, size), train_batch, device)
            rate_source = (
                f"measured: resnet3d train default step, resnet18, batch {train_batch}, "
                f"{device.type}"
            )
        result.summary = _summary(result, raw_rates, train_rate, rate_source, depth)
        for key, source in (("decode", "PNG decode"), ("cache", "uint8 cache")):
            rate0 = _loader0(result, source)
            result.summary[f"loader_overhead_{key}_compact"] = (
                None if rate0 is None else 1 - rate0 / compact_rates[source]
            )
        if device.type == "cuda":
            result.transfer = _transfer(device, (batch, 3, depth, size, size))
    return result


def _pct(fraction: float | None) -> str:
    """A fraction as a percentage; ``-`` when not measured (no 0-worker run)."""
    return "-" if fraction is None else f"{fmt(100 * fraction)}%"


def _loader_name(row: dict[str, Any]) -> str:
    if row["workers"] is not None:
        return f"{row['workers']} workers"
    return "raw, compact (in process)" if row["form"] == "compact" else "raw (in process)"


def _loader0(result: DataBenchResult, source: str) -> float | None:
    for row in result.rows:
        if row["source"] == source and row["workers"] == 0:
            return float(row["volumes_per_s"])
    return None


def _data_row(
    source: str, workers: int | None, rate: float, depth: int, raw: float
) -> dict[str, Any]:
    per_worker = rate / workers if workers else rate
    return {
        "source": source,
        "form": "items" if workers is None else "compact",
        "workers": workers,
        "volumes_per_s": rate,
        "slices_per_s": rate * depth,
        "per_worker_volumes_per_s": per_worker,
        "vs_raw": None if workers is None else rate / raw,
    }


def _one_worker_rate(result: DataBenchResult, source: str, raw: float) -> float:
    for row in result.rows:
        if row["source"] == source and row["workers"] == 1:
            return float(row["volumes_per_s"])
    return raw  # no 1-worker run: one core's raw rate


def _summary(
    result: DataBenchResult,
    raw: dict[str, float],
    train_rate: float,
    rate_source: str,
    depth: int,
) -> dict[str, Any]:
    overhead = {}
    for key, source in (("decode", "PNG decode"), ("cache", "uint8 cache")):
        rate0 = _loader0(result, source)
        overhead[key] = None if rate0 is None else 1 - rate0 / raw[source]
    r1_decode = _one_worker_rate(result, "PNG decode", raw["PNG decode"])
    r1_cache = _one_worker_rate(result, "uint8 cache", raw["uint8 cache"])
    h100 = 0.4 * H100_BF16_PEAK / RESNET18_PAPER_FWD_BWD_FLOP
    feeding = []
    for label, rate in (
        (f"this machine ({rate_source})", train_rate),
        ("one H100 at 40% of dense bf16 peak, resnet18, paper input", h100),
    ):
        feeding.append(
            {
                "label": label,
                "train_rate": rate,
                "slices_per_s": rate * depth,
                "workers_decode": workers_needed(rate, r1_decode),
                "workers_cache": workers_needed(rate, r1_cache),
            }
        )
    return {
        "decode_slices_per_s_per_core": raw["PNG decode"] * depth,
        "cache_slices_per_s_per_core": raw["uint8 cache"] * depth,
        "cache_vs_decode_per_core": raw["uint8 cache"] / raw["PNG decode"],
        "loader_overhead_decode": overhead["decode"],
        "loader_overhead_cache": overhead["cache"],
        "one_worker_volumes_per_s": {"decode": r1_decode, "cache": r1_cache},
        "train_rate": train_rate,
        "train_rate_source": rate_source,
        "formula": "workers = ceil(R / r1); R = training samples/s, r1 = volumes/s of one worker",
        "feeding": feeding,
    }


def _measure_train_rate(
    shape: tuple[int, int, int, int], batch: int, device: torch.device
) -> float:
    from .train import bench_train

    result = bench_train(
        "resnet18",
        inputs=["x".join(map(str, shape))],
        batch=batch,
        variants=["default"],
        device=device,
        warmup=1,
        calls=2,
        passes=1,
    )
    return float(result.rows[0]["samples_per_s"])


def _transfer(device: torch.device, shape: tuple[int, ...]) -> list[dict[str, Any]]:
    from ..engine.loader import prepare_batch
    from .timing import time_blocked

    u8 = torch.randint(0, 256, shape, dtype=torch.uint8).pin_memory()
    f32 = u8.float().div_(255).pin_memory()
    timings = time_blocked(
        {
            "uint8": lambda: prepare_batch(u8, device, False),
            "float32": lambda: prepare_batch(f32, device, False),
        },
        warmup=2,
        calls=20,
        passes=2,
        device=device,
    )
    out = []
    for name, tensor in (("uint8", u8), ("float32", f32)):
        seconds = timings[name].median
        out.append(
            {
                "dtype": name,
                "ms": seconds * 1e3,
                "gb_per_s": tensor.numel() * tensor.element_size() / seconds / 1e9,
            }
        )
    return out
