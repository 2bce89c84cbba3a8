"""Slices per second: naive Pillow loop vs SliceStacker (1 thread, all threads) vs cache reads.

Writes one synthetic chest-CT scan (``resnet3d.data.phantom``; plain noise-free synthetic slices
if the phantom is unavailable) as 8-bit gray PNG slices, then times, side by side in one
process and on the same warm files (OS page cache):

* naive: ``np.asarray(PIL.Image.open(path))`` per slice, one thread (decode only);
* ``SliceStacker.read`` with 1 and N threads: list + sniff + decode + checks, uint8 slices
  (the like-for-like comparison with the naive loop);
* ``SliceStacker.load``: the same plus stacking into float32 ``(N, 3, 4, H, W)`` volumes;
* ``build_cache``: decode once, write uint8 ``.npy``;
* ``VolumeCache.load``: the whole scan's volumes from the memory map, uint8 and float32;
* the cost of the cache's integrity checks, as a second table next to what they guard: the
  sha256 of the scan's ``.npy`` (what ``--verify``, a rerun and ``verify=True`` reads pay),
  writing the ``.npy`` with and without hashing it on the way, the source fingerprint
  (``stat`` of every slice: what the first read of a scan pays), a rerun of ``build_cache``
  that keeps the scan (fingerprint + re-hash) and ``VolumeCache.verify``.

Usage::

    python benchmarks/bench_volumes.py                # 512 x 512, 128 slices
    python benchmarks/bench_volumes.py --quick        # CI: 64 x 64, 16 slices
    python benchmarks/bench_volumes.py --json out.json
    python benchmarks/bench_volumes.py --size 256 --slices 64 --repeat 5   # a quick look

Best of ``--repeat`` runs is reported; the first (cold) run of each method is discarded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from resnet3d.data.cache import (  # the two private names: the exact write and hash paths
    VolumeCache,
    _save_npy_atomic,
    _sha256_file,
    build_cache,
    source_fingerprint,
)
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker, default_threads, list_slices


def write_scan(root: Path, n_slices: int, size: int) -> tuple[Path, str]:
    """Write one scan in the CC-CCII layout; return (scan folder, source description)."""
    scan = root / "NCP" / "1" / "100"
    scan.mkdir(parents=True)
    try:
        from resnet3d.data.phantom import generate_scan

        slices = generate_scan("NCP", seed=0, n_slices=n_slices, size=size, return_hu=False).slices
        source = "resnet3d.data.phantom.generate_scan (lung-windowed 8-bit gray)"
    except ImportError:  # pragma: no cover - phantom not installed
        yy, xx = np.mgrid[0:size, 0:size]
        disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.4 * size) ** 2).astype(np.uint8)
        slices = np.stack([disk * (60 + i % 100) for i in range(n_slices)])
        source = "synthetic disks (phantom unavailable)"
    for i, sl in enumerate(slices):
        Image.fromarray(sl).save(scan / f"{i:04d}.png")
    return scan, source


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: page cache, imports, thread start-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


FINGERPRINT = "source fingerprint (stat of every slice)"
FIRST_OPEN = "first open, default (size + fingerprint)"
STAT_ONLY = (FINGERPRINT, FIRST_OPEN)  # rows that read no .npy bytes: no rate


def write_plain(path: Path, array: np.ndarray) -> None:
    """What writing a scan cost before checksums: write, fsync, rename."""
    tmp = path.with_name(path.name + ".plain")
    with open(tmp, "wb") as fh:
        np.lib.format.write_array(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def time_checks(
    index: ScanIndex, cache_dir: Path, stacker: SliceStacker, prepared: np.ndarray, repeat: int
) -> dict[str, float]:
    """Seconds of each integrity check on the benchmark's one scan (and the .npy's size)."""
    row = index[0]
    npy = cache_dir / "slices" / "NCP" / "1" / "100.npy"
    scratch = cache_dir.with_name("scratch") / "scan.npy"
    scratch.parent.mkdir(exist_ok=True)
    key = row.key

    def first_open(verify: bool) -> Callable[[], object]:
        return lambda: VolumeCache(cache_dir, verify=verify).slices(key)

    return {
        "sha256 of the .npy (page cache)": best_time(lambda: _sha256_file(npy), repeat),
        "write .npy, no hash (write + fsync + rename)": best_time(
            lambda: write_plain(scratch, prepared), repeat
        ),
        "write .npy + sha256 on the way (build_cache)": best_time(
            lambda: _save_npy_atomic(scratch, prepared), repeat
        ),
        FINGERPRINT: best_time(lambda: source_fingerprint(row.path), repeat),
        FIRST_OPEN: best_time(first_open(False), repeat),
        "first open, verify=True (+ sha256)": best_time(first_open(True), repeat),
        "build_cache rerun, scan kept (fingerprint + sha256)": best_time(
            lambda: build_cache(index, cache_dir, stacker), repeat
        ),
        "VolumeCache.verify() (sha256 + fingerprint)": best_time(
            lambda: VolumeCache(cache_dir).verify(), repeat
        ),
        "npy bytes": float(npy.stat().st_size),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="slice height and width")
    parser.add_argument("--slices", type=int, default=128, help="slices in the scan")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="default: usable CPUs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for CI")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.slices, args.repeat = 64, 16, 1
    threads = args.threads or default_threads()

    with tempfile.TemporaryDirectory(prefix="bench_volumes_") as tmp:
        root = Path(tmp) / "data"
        scan, source = write_scan(root, args.slices, args.size)
        paths = list_slices(scan)
        n = len(paths)
        one = SliceStacker(depth=args.depth, size=args.size, threads=1)
        many = one.replace(threads=threads)
        index = ScanIndex.from_ccii(root, classes=("NCP",), check_duplicates=False)
        cache_dir = Path(tmp) / "cache"

        def naive() -> object:
            return [np.asarray(Image.open(p)) for p in paths]

        def build() -> object:
            return build_cache(index, cache_dir, one, overwrite=True)

        build()
        cache = VolumeCache(cache_dir)
        key = index[0].key

        def cache_read() -> object:
            return cache.load(key, stacker=one)

        def rebuild() -> object:
            for f in cache_dir.rglob("*.npy"):
                f.unlink()
            return build_cache(index, cache_dir, many)

        u8_one = one.replace(dtype="uint8")
        u8_many = many.replace(dtype="uint8")
        results = {
            "naive loop (Image.open + np.asarray), 1 thread": best_time(naive, args.repeat),
            "SliceStacker.read -> uint8 slices, 1 thread": best_time(
                lambda: u8_one.read(scan), args.repeat
            ),
            f"SliceStacker.read -> uint8 slices, {threads} threads": best_time(
                lambda: u8_many.read(scan), args.repeat
            ),
            f"SliceStacker.load -> float32 volumes, {threads} threads": best_time(
                lambda: many.load(scan), args.repeat
            ),
            f"build_cache, {threads} threads (decode + write .npy)": best_time(
                rebuild, args.repeat
            ),
            "VolumeCache.load -> uint8 volumes": best_time(
                lambda: cache.load(key, stacker=u8_one), args.repeat
            ),
            "VolumeCache.load -> float32 volumes": best_time(cache_read, args.repeat),
        }
        volumes = one.load(scan)
        checks = time_checks(index, cache_dir, many, u8_many.read(scan), args.repeat)
        checks_base = {
            "build_cache": results[f"build_cache, {threads} threads (decode + write .npy)"],
            "VolumeCache.load uint8": results["VolumeCache.load -> uint8 volumes"],
        }

    print(f"scan: {n} slices of {args.size} x {args.size}, {source}")
    machine = platform.processor() or platform.machine()
    print(
        f"output: {tuple(volumes.shape)} {volumes.dtype}; machine: {machine}, "
        f"{os.cpu_count()} CPUs, {threads} threads used; best of {args.repeat}"
    )
    print()
    print("| method | seconds | slices/s | vs naive |")
    print("|---|---:|---:|---:|")
    base = results["naive loop (Image.open + np.asarray), 1 thread"]
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.4f} | {n / seconds:,.0f} | {base / seconds:.2f}x |")
    print()
    npy_bytes = checks.pop("npy bytes")
    print(f"integrity checks (the scan's .npy is {npy_bytes / 2**20:.1f} MiB)")
    print()
    print("| check | seconds | .npy MiB/s | / build_cache | / VolumeCache.load uint8 |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in checks.items():
        ratios = " | ".join(f"{seconds / base:.3f}" for base in checks_base.values())
        rate = f"{npy_bytes / 2**20 / seconds:,.0f}" if name not in STAT_ONLY else "-"
        print(f"| {name} | {seconds:.4f} | {rate} | {ratios} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "slices": n,
                    "size": args.size,
                    "threads": threads,
                    "source": source,
                    "seconds": results,
                    "slices_per_second": {k: n / v for k, v in results.items()},
                    "integrity_seconds": checks,
                    "npy_bytes": npy_bytes,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
