"""Blocked timing: warm-up, then calls back to back, in several interleaved passes.

Timing two large models alternately, call by call, gives outliers of up to 8x on small
shared machines (caches, the allocator and frequency scaling all follow the last model).
:func:`time_blocked` therefore times each configuration in *blocks*: one untimed call to
re-warm it, then ``calls`` timed calls back to back. Passes repeat the blocks of every
configuration in turn, so slow drift of the machine (other jobs starting or stopping)
shows up in every configuration alike and in the pass-to-pass spread.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Timing", "synchronize", "time_blocked"]

logger = logging.getLogger(__name__)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU, where calls are synchronous)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Per-call wall times of one configuration, grouped by pass.

    Attributes:
        passes: Seconds of every timed call, one list per pass.
        first_call_s: Seconds of the very first call (includes compilation, cuDNN autotuning
            and allocator growth); not part of the statistics.
        peak_memory_bytes: Largest ``torch.cuda.max_memory_allocated`` over the blocks
            (CUDA only, else ``None``).
        resident_memory_bytes: ``torch.cuda.memory_allocated`` at the start of the block
            with the peak (weights of every model alive, CUDA only, else ``None``).
        error: Why the configuration stopped (e.g. ``"OutOfMemoryError: ..."``), when
            :func:`time_blocked` was told to record failures; ``None`` if it ran.
    """

    passes: list[list[float]] = field(default_factory=list)
    first_call_s: float | None = None
    peak_memory_bytes: int | None = None
    resident_memory_bytes: int | None = None
    error: str | None = None

    @property
    def times(self) -> list[float]:
        """All timed calls, pass after pass."""
        return [t for p in self.passes for t in p]

    @property
    def n(self) -> int:
        """Number of timed calls."""
        return len(self.times)

    @property
    def ok(self) -> bool:
        """Whether there are timed calls and no error."""
        return self.error is None and self.n > 0

    @property
    def median(self) -> float:
        """Median seconds per call over every timed call (NaN if none)."""
        times = self.times
        return statistics.median(times) if times else float("nan")

    @property
    def min(self) -> float:
        """Fastest call in seconds (NaN if none)."""
        times = self.times
        return min(times) if times else float("nan")

    @property
    def pass_medians(self) -> list[float]:
        """Median seconds per call of each pass."""
        return [statistics.median(p) for p in self.passes if p]

    @property
    def spread(self) -> float:
        """Slowest over fastest pass median (1.0: the passes agree; large: a noisy machine)."""
        medians = self.pass_medians
        return max(medians) / min(medians) if medians else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with the raw times."""
        return {
            "median_s": self.median,
            "min_s": self.min,
            "n": self.n,
            "pass_medians_s": self.pass_medians,
            "spread": self.spread,
            "first_call_s": self.first_call_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "resident_memory_bytes": self.resident_memory_bytes,
            "error": self.error,
            "times_s": self.passes,
        }


def time_blocked(
    fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 2,
    calls: int = 10,
    passes: int = 2,
    device: torch.device | str = "cpu",
    record_errors: bool = False,
) -> dict[str, Timing]:
    """Time several configurations in blocks, interleaving the blocks across passes.

    Every configuration first gets ``warmup`` untimed calls (the first one is timed on its
    own as ``first_call_s``: compilation, autotuning). Then, for each pass, each
    configuration in turn runs one untimed call and ``calls`` timed ones back to back.

    Args:
        fns: Configuration name -> a callable running one call (one batch).
        warmup: Untimed calls per configuration before the passes (at least 1).
        calls: Timed calls per block.
        passes: Blocks per configuration.
        device: Synchronised after every call, so that each time covers its own work.
        record_errors: If a configuration raises (out of memory, a compiler error), store
            the error in its :class:`Timing`, drop it from the later passes and go on with
            the others, instead of raising. For long one-shot runs (a lent GPU).

    Returns:
        Configuration name -> :class:`Timing`.

    Raises:
        ValueError: If ``warmup``, ``calls`` or ``passes`` is below 1, or ``fns`` is empty.
    """
    for name, value in (("warmup", warmup), ("calls", calls), ("passes", passes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not fns:
        raise ValueError("nothing to time: fns is empty")
    device = torch.device(device)
    cuda = device.type == "cuda"
    results = {name: Timing() for name in fns}

    def guarded(name: str, work: Callable[[], None]) -> None:
        if not record_errors:
            work()
            return
        try:
            work()
        except Exception as error:  # recorded, reported in the results, never silent
            results[name].error = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            logger.warning("%s failed, dropped from the timing: %s", name, results[name].error)
            if cuda:
                torch.cuda.empty_cache()

    for name, fn in fns.items():
        logger.info("warming up %s", name)

        def warm(name: str = name, fn: Callable[[], object] = fn) -> None:
            for i in range(warmup):
                start = time.perf_counter()
                fn()
                synchronize(device)
                if i == 0:
                    results[name].first_call_s = time.perf_counter() - start

        guarded(name, warm)
    for p in range(passes):
        for name, fn in fns.items():
            if results[name].error is not None:
                continue
            logger.debug("pass %d/%d: %s", p + 1, passes, name)

            def block(timing: Timing = results[name], fn: Callable[[], object] = fn) -> None:
                fn()  # re-warm after the other configurations' blocks
                synchronize(device)
                resident = 0
                if cuda:
                    resident = torch.cuda.memory_allocated(device)
                    torch.cuda.reset_peak_memory_stats(device)
                times = []
                for _ in range(calls):
                    start = time.perf_counter()
                    fn()
                    synchronize(device)
                    times.append(time.perf_counter() - start)
                timing.passes.append(times)
                if cuda:
                    peak = torch.cuda.max_memory_allocated(device)
                    if timing.peak_memory_bytes is None or peak > timing.peak_memory_bytes:
                        timing.peak_memory_bytes = peak
                        timing.resident_memory_bytes = resident

            guarded(name, block)
    return results
