"""Run every bench script in bench/ and print one summary of their key figures.

Each script runs in its own subprocess, one after the other (never two at once:
they would skew each other on a 2-core machine); its output is kept and its key
lines (the figures, not the progress notes starting with ``#``) are gathered in
one summary at the end, with each script's own wall time and exit code.

    python bench/run_all.py                  # everything, full sizes (about 60-90 min, quiet machine)
    python bench/run_all.py --quick          # smaller sizes and fewer runs (about 15-20 min)
    python bench/run_all.py --skip vs_prefect,throughput
    python bench/run_all.py --only orchestration,runner_overhead
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Script:
    name: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    what: str


SCRIPTS = (
    Script(
        "maintenance_scale",
        (),
        ("--sizes", "100x500"),
        "maintenance/validate wall and peak memory by repo size",
    ),
    Script(
        "ledger_scale",
        (),
        ("--sizes", "1000,100000", "--runs", "5"),
        "one top-up / small commit versus ledger history size",
    ),
    Script(
        "cache_restore",
        (),
        ("--size-mb", "128", "--runs", "3"),
        "verified cache restore versus recompute-by-copy",
    ),
    Script(
        "run_scale",
        (),
        ("--sizes", "1000,100000", "--runs", "3"),
        "plan + settle of 3 work orders versus ledger history size",
    ),
    Script(
        "verify_scale",
        (),
        ("--sizes", "1000,10000,100000", "--runs", "5"),
        "`ledger verify` vs `hledger check` / `bean-check`: wall and peak RSS",
    ),
    Script(
        "console_scale",
        (),
        ("--sizes", "1000,100000", "--runs", "2"),
        "`workmill console build` versus ledger history size",
    ),
    Script(
        "usage_scale",
        (),
        ("--sizes", "1000,100000", "--runs", "5"),
        "`workmill usage` of the current month versus ledger history size",
    ),
    Script(
        "release_assets",
        (),
        ("--sizes", "1000,100000", "--rounds", "4"),
        "assets in the billing-state release(s) versus history size (GitHub caps a release at 1,000)",
    ),
    Script(
        "startup",
        (),
        ("--runs", "3"),
        "start-up, one-module run, 40 x fib(10) chain, 200-module fan-out against their floors",
    ),
    Script("runner_overhead", (), ("--runs", "20"), "runner overhead around one bash step"),
    Script("orchestration", (), ("--runs", "3"), "40 chained / 40 independent modules"),
    Script(
        "throughput",
        (),
        ("--work-orders", "200"),
        "1,000 work orders x 3 modules in one `workmill run`",
    ),
    Script("vs_prefect", (), ("--runs", "3"), "workmill versus Prefect 3"),
    Script(
        "dashboard_race",
        (),
        ("--rounds", "5"),
        "concurrent dashboard writers against a fake GitHub: lost updates",
    ),
)
# a script listed here but not (or no longer) in bench/ is left out, never a failure
SCRIPTS = tuple(s for s in SCRIPTS if (BENCH / f"{s.name}.py").is_file())
# a bench script added later still runs, with its defaults
SCRIPTS += tuple(
    Script(p.stem, (), (), "(not described in run_all.py)")
    for p in sorted(BENCH.glob("*.py"))
    if p.stem not in {s.name for s in SCRIPTS} | {"run_all"}
)
NAMES = [s.name for s in SCRIPTS]


def key_lines(name: str, stdout: str) -> list[str]:
    """The lines worth keeping: figures, not progress notes or machine-readable lines."""
    lines = [ln.rstrip() for ln in stdout.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("#") and not ln.startswith("SUMMARY ")]
    if name == "vs_prefect":  # keep the ratio block and the ideal line, not the raw table
        start = next((i for i, ln in enumerate(lines) if ln.startswith("ratio ")), 0)
        table = [ln for ln in lines[:start] if ln.startswith(("wall s", "workmill", "prefect"))]
        return table + lines[start:]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer runs")
    ap.add_argument("--skip", default="", help=f"comma-separated, from: {','.join(NAMES)}")
    ap.add_argument("--only", default="", help="comma-separated; run just these")
    ap.add_argument("--log-dir", type=Path, default=None, help="also keep each script's output")
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    only = {s for s in args.only.split(",") if s}
    for s in skip | only:
        if s not in NAMES:
            ap.error(f"unknown bench {s!r} (choose from {', '.join(NAMES)})")
    chosen = [s for s in SCRIPTS if s.name not in skip and (not only or s.name in only)]
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)

    results: list[tuple[Script, tuple[str, ...], int, float, list[str]]] = []
    for s in chosen:
        extra = s.quick if args.quick else s.full
        cmd = [sys.executable, str(BENCH / f"{s.name}.py"), *extra]
        print(f"== {s.name} {' '.join(extra)}", flush=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        sys.stdout.write(p.stdout)
        if p.returncode != 0:
            sys.stdout.write(p.stderr[-3000:])
        if args.log_dir:
            (args.log_dir / f"{s.name}.log").write_text(p.stdout + p.stderr)
        print(f"-- {s.name}: exit {p.returncode} in {wall:.0f} s\n", flush=True)
        results.append((s, extra, p.returncode, wall, key_lines(s.name, p.stdout)))

    print("=" * 78)
    print("SUMMARY (" + ("quick" if args.quick else "full") + " sizes)")
    print("=" * 78)
    failed = 0
    for s, extra, rc, wall, lines in results:
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        failed += rc != 0
        print(f"\n[{s.name}] {s.what} — {status}, {wall:.0f} s")
        print(f"  $ python bench/{s.name}.py {' '.join(extra)}".rstrip())
        for ln in lines:
            print(f"  {ln}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
