"""Time of ``workmill usage`` for the current month against 10^3 and 10^6 past transactions.

The history is ``run_scale.build_history`` (spread over the 24 months up to 2026-11,
written straight into partitions); the current month (2026-12) then gets the same
small activity at every size: 3 rounds of 3 real work orders through plan → execute →
settle. Timed: reading the head manifest's entries of the month and computing the
report (the library call behind ``workmill usage --month 2026-12``), median of
``--runs``. The report reads only the month's partitions and only their lines of the
manifest, so its cost follows the month's own volume, not the history; for contrast
the last history month (2026-11, which grows with n) is timed too. Aim: the
current-month ratio 10^6 / 10^3 at most 1.5.

    python bench/usage_scale.py [--sizes 1000,1000000] [--runs 7]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["WORKMILL_NOW"] = "2026-12-15T12:00:00Z"
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from run_scale import build_history, compiled_repo, measure  # noqa: E402

from workmill import usage  # noqa: E402
from workmill.state import BillingStore  # noqa: E402


def time_usage(store: BillingStore, month: str, runs: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = len(usage.report(usage.month_state(store, month), month))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,1000000")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    current: dict[int, float] = {}
    print(
        f"{'history':>10} {'usage 2026-12 ms':>17} {'rows':>5} {'usage 2026-11 ms':>17} {'rows':>5}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = compiled_repo(Path(tmp))
            store = build_history(root, n)
            measure(root, 3)  # this month's activity: 9 work orders
            # time as in a fresh `workmill usage` process: what building the history left
            # behind is kept out of the cyclic GC's way
            gc.collect()
            gc.freeze()
            now_ms, now_rows = time_usage(store, "2026-12", args.runs)
            old_ms, old_rows = time_usage(store, "2026-11", max(1, args.runs // 2))
            gc.unfreeze()
            current[n] = now_ms
            print(
                f"{n:>10} {now_ms * 1000:>17.1f} {now_rows:>5} {old_ms * 1000:>17.1f} "
                f"{old_rows:>5}",
                flush=True,
            )
    lo, hi = min(sizes), max(sizes)
    print(f"ratio {hi}/{lo} (current month): {current[hi] / current[lo]:.2f}")


if __name__ == "__main__":
    main()
