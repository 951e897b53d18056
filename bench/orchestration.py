"""Orchestration overhead: one work order of 40 chained trivial modules, one of 40 independent.

Prints the wall time of ``workmill run`` (library call, after maintenance and
bootstrap) and the overhead per module over spawning the modules' own bash
processes directly. Median of several runs. Usage: python bench/orchestration.py [--runs 5] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput
from throughput import chain, independent

from workmill.orchestrator import RunContext, RunOptions, run
from workmill.repo import PlatformRepo

N = 40
STEP = 'echo x > "$WM_OUTPUTS_DIR/o.txt"'


def make_repo(root: Path, chained: bool) -> PlatformRepo:
    modules = (chain if chained else independent)(N, STEP)
    return throughput.make_repo(root, modules, work_orders=1, credits_per_tenant=1000)


def direct(tmp: Path) -> float:
    """The modules' own work: N bash processes, one after the other."""
    out = tmp / "direct"
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    for _ in range(N):
        subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", STEP],
            env={"WM_OUTPUTS_DIR": str(out), "PATH": "/usr/bin:/bin"},
            check=True,
        )
    return time.perf_counter() - t0


def one(chained: bool, keep: bool = False) -> tuple[float, float]:
    with _Kept() if keep else tempfile.TemporaryDirectory() as d:
        repo = make_repo(Path(d) / "repo", chained)
        t0 = time.perf_counter()
        result = run(RunContext(repo, RunOptions(max_parallel=1 if chained else 2)))
        wall = time.perf_counter() - t0
        assert result.settled and result.settled[0].status == "COMPLETED", result.summary_rows()
        return wall, direct(Path(d))


class _Kept:
    """A temporary folder left in place (deleting files between runs slows the next run on
    filesystems mounted with ``discard``)."""

    def __enter__(self) -> str:
        return tempfile.mkdtemp(prefix="wm-orch-")

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="do not delete each run's folder")
    args = ap.parse_args()
    for chained in (True, False):
        walls, directs = zip(*(one(chained, args.keep) for _ in range(args.runs)), strict=True)
        w, dd = statistics.median(walls), statistics.median(directs)
        par = 1 if chained else 2
        ideal = dd / par
        print(
            f"{'chained' if chained else 'independent':>11} x{N} (max_parallel {par}): "
            f"wall {w * 1000:.0f} ms, bash alone {dd * 1000:.0f} ms (ideal {ideal * 1000:.0f} ms), "
            f"overhead {(w - ideal) / N * 1000:.1f} ms/module (median of {args.runs})"
        )


if __name__ == "__main__":
    main()
