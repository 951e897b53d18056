"""Orchestration overhead: one work order of 40 chained trivial modules, one of 40 independent.

Prints the wall time of ``workmill run`` (library call, after maintenance and
bootstrap) and the overhead per module over spawning the modules' own bash
processes directly. Median of several runs. Usage: python bench/orchestration.py [--runs 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from platform_factory import T1, build_repo
from workmill.maintenance import run_maintenance
from workmill.orchestrator import RunContext, RunOptions, run
from workmill.repo import PlatformRepo
from workmill.state import BillingStore

N = 40
STEP = 'echo x > "$WM_OUTPUTS_DIR/o.txt"'


def make_repo(root: Path, chained: bool) -> PlatformRepo:
    build_repo(root)
    shutil.rmtree(root / "modules")
    reg = ["module_id,category_id,name,status,digest"]
    pricing = ["module_id,product_code,price_credits,artifact_price_credits,active"]
    for i in range(1, N + 1):
        mid = f"{i:03d}"
        d = root / "modules" / mid
        d.mkdir(parents=True)
        spec = {
            "module_id": mid,
            "name": f"M{mid}",
            "version": "1",
            "timeout_minutes": 1,
            "outputs": [{"name": "o.txt", "format": "text"}],
        }
        if chained and i > 1:
            spec["depends_on"] = [f"{i - 1:03d}"]
        (d / "module.yml").write_text(json.dumps(spec))
        (d / "validation.yml").write_text("reasons: []\n")
        action = {"runs": {"using": "composite", "steps": [{"shell": "bash", "run": STEP}]}}
        (d / "action.yml").write_text(json.dumps(action))
        reg.append(f"{mid},02,M{mid},active,")
        pricing.append(f"{mid},P{i:02d},1,0,true")
    (root / "maintenance-state/ids/module_registry.csv").write_text("\n".join(reg) + "\n")
    (root / "releases/billing-state-v1/pricing.csv").write_text("\n".join(pricing) + "\n")
    wo = {
        "work_order_id": "Bench001",
        "mode": "STRICT",
        "modules": [{"module_id": f"{i:03d}"} for i in range(1, N + 1)],
    }
    (root / "tenants" / T1 / "workorders" / "Bench001.yml").write_text(json.dumps(wo))
    (root / "workmill.yml").write_text("max_parallel: 2\n")
    repo = PlatformRepo.open(root)
    run_maintenance(repo)
    store = BillingStore.open(repo)
    store.bootstrap(repo.templates_dir)
    store.commit_with_retry(lambda s: s.topup(T1, "AD", 1000, "bench"))
    return repo


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
