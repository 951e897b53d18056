"""Time restoring a large cached output versus recomputing it by copying.

Usage: python bench/cache_restore.py [--size-mb 1024] [--runs 5] [--dir DIR]

"Recompute" is approximated by the cheapest possible recomputation, copying the
bytes (a real module is slower); "restore" is workmill's verified restore
(reflink or hard link, then sha256 of every byte). Prints the median of each
and their ratio, then deletes everything it created.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workmill import clock
from workmill.cache import CacheRequest, LocalCacheBackend, lookup_and_restore, store
from workmill.cache.local import place_file

BLOCK = 64 * 1024 * 1024


def make_output(path: Path, size_mb: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(BLOCK)
    left = size_mb * 1024 * 1024
    with path.open("wb") as fh:
        while left > 0:
            fh.write(block[: min(left, BLOCK)])
            left -= min(left, BLOCK)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument(
        "--dir", type=Path, default=None, help="scratch directory (default: a temp dir)"
    )
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="wm-bench-cache.", dir=args.dir))
    try:
        src = work / "run" / "outputs"
        make_output(src / "big.bin", args.size_mb)
        backend = LocalCacheBackend(work / "cache")
        req = CacheRequest("Ab12Cd", "001", "1.0.0", "a" * 64, {"bench": True}, {})
        now = clock.now()
        t0 = time.perf_counter()
        store(backend, req, src, retention_days=1, now=now)
        save_s = time.perf_counter() - t0

        copy_times, restore_times, place_times, method = [], [], [], "?"
        entry_file = backend.entry_dir(req.key) / "files" / "big.bin"
        for i in range(args.runs):
            dest = work / f"copy{i}"
            dest.mkdir()
            t0 = time.perf_counter()
            shutil.copyfile(src / "big.bin", dest / "big.bin")
            copy_times.append(time.perf_counter() - t0)
            shutil.rmtree(dest)

            dest = work / f"restore{i}" / "outputs"
            t0 = time.perf_counter()
            hit = lookup_and_restore(backend, req, dest, now=now)
            restore_times.append(time.perf_counter() - t0)
            if hit is None:
                print("error: restore missed", file=sys.stderr)
                return 1
            method = hit.files[0].method
            shutil.rmtree(dest.parent)

            dest = work / f"place{i}"
            dest.mkdir()
            t0 = time.perf_counter()
            place_file(entry_file, dest / "big.bin")
            place_times.append(time.perf_counter() - t0)
            shutil.rmtree(dest)

        copy_med = statistics.median(copy_times)
        restore_med = statistics.median(restore_times)
        print(f"output size:        {args.size_mb} MiB, {args.runs} runs, medians")
        print(f"save (one time):    {save_s:.3f} s")
        print(f"recompute (copy):   {copy_med:.3f} s")
        print(f"restore (verified): {restore_med:.3f} s  [{method} + sha256 of every byte]")
        print(f"  of which placing: {statistics.median(place_times):.6f} s  (no verification)")
        print(f"ratio copy/restore: {copy_med / restore_med:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
