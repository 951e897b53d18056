"""Whole-process costs an operator sees, each against the floor it cannot beat.

Paired runs (one measurement of each side per round, so drift on a shared
machine hits both alike), medians of ``--runs`` rounds, the ratio from the same rounds:

- start-up: ``workmill --version`` and ``workmill -h`` against ``python3 -c pass``
  (aim ≤ 6×) and ``pip --version`` (a peer CLI);
- one module: a whole ``workmill run`` of one work order with one trivial bash module
  (aim ≤ 150 ms), against one ``bash -c`` of the same step;
- Windmill's engine benchmark: 40 chained Python tasks computing fib(10), a whole
  ``workmill run`` against the same 40 ``python3`` processes in a shell loop
  (aim ≤ 1.4×);
- fan-out: 200 independent trivial modules at max_parallel 2 against
  ``xargs -P2`` running the same 200 bash steps (aim ≤ 2×);
- breakdown (``--only breakdown``): where a one-module run's time goes — the
  interpreter, the libraries the run path cannot do without (click, PyYAML,
  filelock, pydantic with one model built), workmill's own run-path modules, and
  the run itself — wall and CPU, each part as a difference of paired medians.

Repos are built (maintenance, bootstrap, top-up) before the clock starts, and
workmill's sources are compiled to bytecode first, as ``pip install`` does (a
``PYTHONDONTWRITEBYTECODE`` environment would otherwise have every timed process
compile them again).

    python bench/startup.py [--runs 5] [--only startup,one,fib,fanout,breakdown]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import TRIVIAL, chain, cli_env, independent, make_repo

FIB = (
    "python3 -c 'import os\n"
    "def f(n): return n if n < 2 else f(n - 1) + f(n - 2)\n"
    'open(os.environ["WM_OUTPUTS_DIR"] + "/o.txt", "w").write(str(f(10)))\''
)
WORKMILL = shutil.which("workmill") or "workmill"


def timed(cmd: list[str], cwd: Path | None = None, shell: bool = False) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd if not shell else cmd[0],
        cwd=cwd,
        env=cli_env(),
        shell=shell,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def paired(runs: int, sides: dict[str, Callable[[], float]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(runs):
        for name, fn in sides.items():
            os.sync()
            samples[name].append(fn())
    return {k: statistics.median(v) for k, v in samples.items()}


def report(title: str, medians: dict[str, float], floor: str, aim: str) -> None:
    print(f"\n{title}  (aim: {aim})")
    for name, s in medians.items():
        ratio = s / medians[floor]
        print(f"  {name:<34} {s * 1000:9.1f} ms   {ratio:6.2f}× {floor}")


def run_on_fresh_copy(template: Path, work: Path) -> Callable[[], float]:
    """A ``workmill run`` on a fresh copy of a built repo (each run processes its work orders)."""
    counter = iter(range(10**6))

    def go() -> float:
        root = work / f"run{next(counter)}"
        shutil.copytree(template, root, symlinks=True)
        return timed([WORKMILL, "run", "--max-parallel", "2"], cwd=root)

    return go


def bench_startup(runs: int, _tmp: Path) -> None:
    m = paired(
        runs,
        {
            "python3 -c pass": lambda: timed([sys.executable, "-c", "pass"]),
            "workmill --version": lambda: timed([WORKMILL, "--version"]),
            "workmill -h": lambda: timed([WORKMILL, "-h"]),
            "pip --version": lambda: timed([sys.executable, "-m", "pip", "--version"]),
        },
    )
    report("start-up", m, "python3 -c pass", "--version and -h ≤ 6× python3 -c pass")


def bench_one(runs: int, tmp: Path) -> None:
    template = tmp / "one"
    make_repo(template, chain(1), work_orders=1)
    out = tmp / "one-out"
    out.mkdir()
    step = f"WM_OUTPUTS_DIR={out} bash --noprofile --norc -c '{TRIVIAL}'"
    m = paired(
        runs,
        {
            "bash step alone": lambda: timed([step], shell=True),
            "workmill run (1 module)": run_on_fresh_copy(template, tmp / "one-runs"),
        },
    )
    report("one module, whole process", m, "bash step alone", "workmill run ≤ 150 ms")


def against_floor(
    runs: int, template: Path, floor: tuple[str, str], name: str, title: str, aim: str
) -> None:
    """A whole ``workmill run`` of ``template`` against a shell command doing the same work."""
    floor_name, floor_cmd = floor
    m = paired(
        runs,
        {
            floor_name: lambda: timed([floor_cmd], shell=True),
            name: run_on_fresh_copy(template, template.with_name(template.name + "-runs")),
        },
    )
    report(title, m, floor_name, aim)


def bench_fib(runs: int, tmp: Path) -> None:
    template = tmp / "fib"
    make_repo(template, chain(40, FIB), work_orders=1, max_parallel=1)
    out = tmp / "fib-out"
    out.mkdir()
    loop = f"for i in $(seq 40); do WM_OUTPUTS_DIR={out} bash -c {_quote(FIB)}; done"
    floor = ("40 python3 processes (bash loop)", loop)
    against_floor(
        runs, template, floor, "workmill run (40 chained fib)", "40 × fib(10) chain", "≤ 1.4×"
    )


def bench_fanout(runs: int, tmp: Path) -> None:
    template = tmp / "fan"
    make_repo(template, independent(200), work_orders=1, max_parallel=2)
    out = tmp / "fan-out"
    out.mkdir()
    xargs = (
        f"seq 200 | WM_OUTPUTS_DIR={out} xargs -P2 -I{{}} "
        f"bash --noprofile --norc -c {_quote(TRIVIAL)}"
    )
    floor = ("xargs -P2 (200 bash steps)", xargs)
    title = "fan-out, 200 independent, 2 workers"
    against_floor(runs, template, floor, "workmill run (200 independent)", title, "≤ 2×")


# What the run path cannot do without: the CLI framework, the YAML parser, the state
# lock, and pydantic with one strict model built (specs and records are pydantic models).
LIGHT_LIBRARIES = "import click, yaml, filelock"
LIBRARIES = f"""
{LIGHT_LIBRARIES}
from pydantic import BaseModel, ConfigDict, Field
class M(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(1, ge=0)
M(n=1)
"""


def timed_cpu(cmd: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall s, CPU s of the process and its children) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(cmd, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def bench_breakdown(runs: int, tmp: Path) -> None:
    template = tmp / "breakdown"
    make_repo(template, chain(1), work_orders=1)
    counter = iter(range(10**6))

    def whole_run() -> tuple[float, float]:
        root = tmp / "breakdown-runs" / f"run{next(counter)}"
        shutil.copytree(template, root, symlinks=True)
        return timed_cpu([WORKMILL, "run"], cwd=root)

    py = sys.executable
    sides: dict[str, Callable[[], tuple[float, float]]] = {
        "python3 -c pass": lambda: timed_cpu([py, "-c", "pass"]),
        "+ click, yaml, filelock": lambda: timed_cpu([py, "-c", LIGHT_LIBRARIES]),
        "+ pydantic (one model built)": lambda: timed_cpu([py, "-c", LIBRARIES]),
        "+ workmill's run-path modules": lambda: timed_cpu([py, "-c", "import workmill.cli._run"]),
        "+ the run (workmill run, 1 module)": whole_run,
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    for _ in range(runs):
        for name, fn in sides.items():
            os.sync()
            samples[name].append(fn())
    print("\none-module run, where the time goes  (aim: whole run ≤ 150 ms)")
    print(f"  {'':<46} {'wall':>9} {'CPU':>9}   {'part wall':>9} {'part CPU':>9}")
    prev = (0.0, 0.0)
    for name, got in samples.items():
        med = (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        part = (med[0] - prev[0], med[1] - prev[1])
        print(
            f"  {name:<46} {med[0] * 1000:7.1f}ms {med[1] * 1000:7.1f}ms"
            f"   {part[0] * 1000:7.1f}ms {part[1] * 1000:7.1f}ms"
        )
        prev = med


def precompile() -> None:
    """Bytecode for workmill's sources, as an installed package has."""
    import workmill

    compileall.compile_dir(str(Path(workmill.__file__).parent), quiet=1)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


BENCHES = {
    "startup": bench_startup,
    "one": bench_one,
    "fib": bench_fib,
    "fanout": bench_fanout,
    "breakdown": bench_breakdown,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default=",".join(BENCHES))
    args = ap.parse_args()
    precompile()
    with tempfile.TemporaryDirectory(prefix="wm-startup-") as d:
        for name in args.only.split(","):
            BENCHES[name](args.runs, Path(d))


if __name__ == "__main__":
    main()
