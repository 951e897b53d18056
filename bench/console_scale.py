"""Wall time of ``workmill console build`` against 10^3 and 10^6 past transactions.

The history is ``run_scale.py``'s (per 10 transactions: 4 top-ups and 3 work
orders with SPEND, REFUND, items, log rows and a module run each; ≈0.3·n work
orders over 1,000 tenants and 24 months), written straight into partitions.
Each figure is the median of ``--runs`` builds of the library call the command
makes (``build_console``, process start-up excluded; "cpu s" adds the second
process that folds a big ledger), with the default options:
pages of 500 rows, the 50,000 most recent transactions and work orders listed,
500 work-order pages.

    python bench/console_scale.py [--sizes 1000,1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WORKMILL_NOW", "2026-11-23T12:00:00Z")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from run_scale import build_history  # noqa: E402

from platform_factory import build_repo  # noqa: E402
from workmill.console import build_console  # noqa: E402
from workmill.repo import PlatformRepo  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the ledger fold's)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,1000000")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} (figures on a busy machine are slower)")
    print(f"{'history':>10} {'wos':>8} {'pages':>6} {'site MB':>8} {'build s':>8} {'cpu s':>6}")
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            root = build_repo(Path(tmp) / "repo")
            subprocess.run(
                [sys.executable, "-m", "workmill", "maintenance"],
                cwd=root,
                check=True,
                capture_output=True,
            )
            build_history(root, n)
            out = Path(tmp) / "site"
            times, cpu = [], []
            for _ in range(args.runs):
                t0, c0 = time.perf_counter(), _cpu()
                report = build_console(PlatformRepo.open(root), out)
                times.append(time.perf_counter() - t0)
                cpu.append(_cpu() - c0)
            size = _size(out) / 1e6
            print(
                f"{n:>10} {report.work_orders:>8} {report.pages:>6} {size:>8.1f} "
                f"{statistics.median(times):>8.2f} {statistics.median(cpu):>6.2f}",
                flush=True,
            )
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
