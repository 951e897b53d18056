"""Throughput: 1,000 work orders x 3 chained trivial bash modules in one `workmill run`.

Builds a repo (maintenance, bootstrap and top-ups done beforehand, not timed),
then runs ``python -m workmill run --max-parallel 2`` in a subprocess through a
small wrapper that reports the wall time and the peak RSS of that process
(``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in the wrapper: the largest of the
workmill process and the bash processes it spawned). Prints module runs per
second, total wall and peak memory, and checks every work order COMPLETED.

    python bench/throughput.py [--work-orders 1000] [--modules 3] [--max-parallel 2]

``make_repo`` is also used by bench/vs_prefect.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from platform_factory import T1, T2, T3, build_repo
from workmill.backends import open_billing_store
from workmill.maintenance import run_maintenance
from workmill.repo import PlatformRepo

TRIVIAL = 'echo x > "$WM_OUTPUTS_DIR/o.txt"'
TENANTS = (T1, T2, T3)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def product_code(i: int) -> str:
    """A 3-character product code for the i-th module (unique up to 3,844 modules)."""
    return "P" + _BASE62[i // 62 % 62] + _BASE62[i % 62]


_MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(p.returncode, wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime)
sys.stderr.write(p.stderr[-2000:])
"""


@dataclass
class BenchModule:
    module_id: str
    step: str = TRIVIAL
    depends_on: list[str] = field(default_factory=list)


def chain(n: int, step: str = TRIVIAL) -> list[BenchModule]:
    return [
        BenchModule(module_id(i), step, [module_id(i - 1)] if i > 1 else [])
        for i in range(1, n + 1)
    ]


def independent(n: int, step: str = TRIVIAL) -> list[BenchModule]:
    return [BenchModule(module_id(i), step) for i in range(1, n + 1)]


def module_id(i: int) -> str:
    """Numeric ids 001-999 as `workmill new module` allocates them, Base62 beyond."""
    return f"{i:03d}" if i < 1000 else "Z" + _BASE62[i // 62 % 62] + _BASE62[i % 62]


def make_repo(
    root: Path,
    modules: Sequence[BenchModule],
    work_orders: int = 1,
    max_parallel: int = 2,
    credits_per_tenant: int = 1_000_000,
) -> PlatformRepo:
    """A repo whose only modules are ``modules`` (1 credit each), with ``work_orders``
    work orders (spread over three tenants) that each run all of them; maintained,
    bootstrapped and topped up, ready for ``workmill run``."""
    build_repo(root)
    shutil.rmtree(root / "modules")
    reg = ["module_id,category_id,name,status,digest"]
    pricing = ["module_id,product_code,price_credits,artifact_price_credits,active"]
    for i, m in enumerate(modules, start=1):
        d = root / "modules" / m.module_id
        d.mkdir(parents=True)
        spec = {
            "module_id": m.module_id,
            "name": f"M{m.module_id}",
            "version": "1",
            "timeout_minutes": 1,
            "outputs": [{"name": "o.txt", "format": "text"}],
        }
        if m.depends_on:
            spec["depends_on"] = m.depends_on
        (d / "module.yml").write_text(json.dumps(spec))
        (d / "validation.yml").write_text("reasons: []\n")
        action = {"runs": {"using": "composite", "steps": [{"shell": "bash", "run": m.step}]}}
        (d / "action.yml").write_text(json.dumps(action))
        reg.append(f"{m.module_id},02,M{m.module_id},active,")
        pricing.append(f"{m.module_id},{product_code(i)},1,0,true")
    (root / "maintenance-state/ids/module_registry.csv").write_text("\n".join(reg) + "\n")
    (root / "releases/billing-state-v1/pricing.csv").write_text("\n".join(pricing) + "\n")
    for n in range(1, work_orders + 1):
        tenant = TENANTS[n % len(TENANTS)]
        wo = {
            "work_order_id": f"Wo{n:06d}",
            "mode": "STRICT",
            "modules": [{"module_id": m.module_id} for m in modules],
        }
        (root / "tenants" / tenant / "workorders" / f"Wo{n:06d}.yml").write_text(json.dumps(wo))
    (root / "workmill.yml").write_text(f"max_parallel: {max_parallel}\n")
    repo = PlatformRepo.open(root)
    run_maintenance(repo)
    store = open_billing_store(repo)
    store.bootstrap(repo.templates_dir)
    for tenant in TENANTS:
        store.commit_with_retry(
            lambda s, t=tenant: s.topup(t, "AD", credits_per_tenant, f"bench-{t}")
        )
    return repo


def cli_env() -> dict[str, str]:
    """The environment for `python -m workmill` subprocesses: no fixed clock."""
    env = dict(os.environ)
    env.pop("WORKMILL_NOW", None)
    return env


def measured_cli(root: Path, *args: str) -> tuple[int, float, float, float, str]:
    """(exit code, wall s, peak RSS MiB, cpu s, stderr tail) of ``workmill *args``."""
    cmd = [sys.executable, "-m", "workmill", *args]
    p = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd],
        cwd=root,
        env=cli_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rc, wall, peak_kib, cpu = p.stdout.split()
    return int(rc), float(wall), int(peak_kib) / 1024, float(cpu), p.stderr


def completed_work_orders(root: Path) -> dict[str, int]:
    """Status counts of the settled work orders, from a pulled copy of the billing state."""
    out = root.parent / "pulled"
    subprocess.run(
        [sys.executable, "-m", "workmill", "state", "pull", "--billing-state-dir", str(out)],
        cwd=root,
        env=cli_env(),
        check=True,
        capture_output=True,
    )
    counts: dict[str, int] = {}
    with (out / "workorders_log.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def one_run(args: argparse.Namespace) -> tuple[float, float, float, int]:
    """(wall s, peak RSS MiB, cpu s, COMPLETED count) of one run on a fresh repo."""
    with tempfile.TemporaryDirectory(prefix="wm-throughput-") as tmp:
        root = Path(tmp) / "repo"
        make_repo(root, chain(args.modules), args.work_orders, args.max_parallel)
        rc, wall, peak, cpu, err = measured_cli(
            root, "run", "--max-parallel", str(args.max_parallel)
        )
        if rc != 0:
            sys.exit(f"workmill run exited {rc}: {err}")
        return wall, peak, cpu, completed_work_orders(root).get("COMPLETED", 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-orders", type=int, default=1000)
    ap.add_argument("--modules", type=int, default=3, help="chained modules per work order")
    ap.add_argument("--max-parallel", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="repeat on fresh repos; medians")
    args = ap.parse_args()
    samples = [one_run(args) for _ in range(args.runs)]
    wall = statistics.median(s[0] for s in samples)
    peak = statistics.median(s[1] for s in samples)
    cpu = statistics.median(s[2] for s in samples)
    done = min(s[3] for s in samples)
    runs = args.work_orders * args.modules
    print(
        f"work orders {args.work_orders} x {args.modules} chained modules, "
        f"max_parallel {args.max_parallel}: {done} COMPLETED (median of {args.runs} runs; "
        f"walls {', '.join(f'{s[0]:.1f}' for s in samples)} s)"
    )
    print(f"total wall      {wall:8.1f} s   (cpu {cpu:.1f} s, workmill + bash)")
    print(f"module runs/s   {runs / wall:8.1f}     ({wall / runs * 1000:.1f} ms per module run)")
    print(f"peak RSS        {peak:8.1f} MiB")
    print(
        "SUMMARY "
        + json.dumps(
            {
                "bench": "throughput",
                "work_orders": args.work_orders,
                "module_runs": runs,
                "completed": done,
                "wall_s": round(wall, 2),
                "module_runs_per_s": round(runs / wall, 1),
                "peak_rss_mib": round(peak, 1),
            }
        )
    )
    if done != args.work_orders:
        sys.exit(f"only {done} of {args.work_orders} work orders COMPLETED")


if __name__ == "__main__":
    main()
