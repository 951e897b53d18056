"""workmill versus Prefect 3 on the same machine, in the same run (issue 7).

Three workloads, each task doing the same work on both sides:

- ``chain``: 40 sequential lightweight tasks (40 chained modules / 40 task calls in a row);
- ``independent``: 40 independent tasks, 2 at a time;
- ``sleep``: 10 independent tasks each sleeping 1 s, 2 workers (ideal: 5 s).

The work of one task is the same bash command on both sides
(``bash --noprofile --norc -eo pipefail -c 'echo x > "$WM_OUTPUTS_DIR/o.txt"'``,
preceded by ``sleep 1`` in the sleep workload). Prefect also runs a variant whose
task does that work as an in-process Python function (writes the file, or
``time.sleep(1)``): its best case.

workmill: a work order of those modules, built (maintenance, bootstrap, top-up)
before the clock starts, then ``run(RunContext(repo, RunOptions(max_parallel=2)))``
through the library; and ``python -m workmill run --max-parallel 2`` on a fresh
copy as a subprocess (wall time including interpreter start).

Prefect: a flow run in a subprocess of the venv's python with an ephemeral local
API server (``PREFECT_API_URL`` unset, ``PREFECT_HOME`` a temporary dir shared by
the run and initialised once beforehand, untimed), a ``ThreadPoolTaskRunner`` of 2
workers. Inside the subprocess a trivial flow runs first (starts the server), then
the clock runs around the benchmark flow call only ("flow"); the whole subprocess
is timed separately ("proc").

Which Prefect figure each ratio uses is printed with it:

- "flow" = Prefect's *warm flow body*: the wall time of the benchmark flow call
  inside a process whose Prefect is already up (interpreter started, ephemeral
  API server started by the warm-up flow). This is Prefect at its fastest and
  the figure issue 18's aim uses: the workmill **library** run (``run()`` in
  this process, repo built beforehand) must be >= 5x faster than Prefect's warm
  flow body, on ``chain`` and ``independent``, with the same bash work per task.
- "proc" = Prefect's *whole process* (interpreter start, server start, warm-up
  flow, benchmark flow): compared with the whole ``workmill run`` CLI process.
  Against this figure workmill looks far better; it is shown, never the aim.

The machine's load average is printed at the start and the end: figures taken
while other work runs are inflated (both sides alike, as runs interleave).

Prefect 3 is installed into bench/.venv-prefect on first use (never a workmill
dependency); FastAPI is held below 0.120 because newer FastAPI rejects the
``Body(min_items=...)`` that Prefect 3.8's server still uses.

    python bench/vs_prefect.py [--runs 5] [--workloads chain,independent,sleep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import TRIVIAL, BenchModule, chain, cli_env, independent, make_repo

from workmill.orchestrator import RunContext, RunOptions, run

VENV = Path(__file__).resolve().parent / ".venv-prefect"
PREFECT_REQ = ["prefect>=3,<4", "fastapi<0.120"]
WORKERS = 2
SLEEP_STEP = "sleep 1\n" + TRIVIAL
AIM_SPEEDUP = 5.0  # issue 18: the library run >= 5x Prefect's warm flow body
AIM_WORKLOADS = ("chain", "independent")

WORKLOADS: dict[str, tuple[str, Callable[[], list[BenchModule]], float | None]] = {
    # name: (what, modules, ideal wall in s)
    "chain": ("40 sequential tasks", lambda: chain(40), None),
    "independent": ("40 independent tasks, 2 workers", lambda: independent(40), None),
    "sleep": ("10 x sleep 1 s, 2 workers", lambda: independent(10, SLEEP_STEP), 5.0),
}

# The Prefect side: argv = workload, variant (bash|python), n, workers, out dir, bash step.
DRIVER = r"""
import json, os, subprocess, sys, time

workload, variant, n, workers, out, step = sys.argv[1:7]
n, workers = int(n), int(workers)
from prefect import flow, task
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner


def _dir(i):
    d = os.path.join(out, str(i))
    os.makedirs(d, exist_ok=True)
    return d


@task
def bash_work(i, prev=None):
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step],
        env={"WM_OUTPUTS_DIR": _dir(i), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return i


@task
def python_work(i, prev=None):
    if workload == "sleep":
        time.sleep(1)
    with open(os.path.join(_dir(i), "o.txt"), "w") as fh:
        fh.write("x\n")
    return i


work = bash_work if variant == "bash" else python_work


@flow(name="warm-up")
def warm_up():
    return 1


@flow(name=f"bench-{workload}-{variant}", task_runner=ThreadPoolTaskRunner(max_workers=workers))
def bench(n):
    if workload == "chain":
        prev = None
        for i in range(n):
            prev = work(i, prev)
        return prev
    futures = [work.submit(i) for i in range(n)]
    wait(futures)
    return [f.result() for f in futures]


warm_up()
t0 = time.perf_counter()
bench(n)
flow_s = time.perf_counter() - t0
done = sum(os.path.exists(os.path.join(out, str(i), "o.txt")) for i in range(n))
print("RESULT " + json.dumps({"flow_s": flow_s, "done": done}))
"""


def ensure_prefect() -> Path:
    """The venv's python, creating the venv and installing Prefect 3 when missing."""
    py = VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([py, "-c", "import prefect"], capture_output=True)
    if not ok or ok.returncode != 0:
        print(f"# installing Prefect 3 into {VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", *PREFECT_REQ], check=True)
    return py


def prefect_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="true",
        PREFECT_SERVER_EPHEMERAL_ENABLED="true",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    return env


class PrefectSide:
    def __init__(self, py: Path, tmp: Path) -> None:
        self.py = py
        self.tmp = tmp
        self.driver = tmp / "prefect_driver.py"
        self.driver.write_text(DRIVER)
        self.env = prefect_env(tmp / "prefect-home")
        self.count = 0

    def version(self) -> str:
        return subprocess.run(
            [self.py, "-c", "import prefect; print(prefect.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def one(self, workload: str, variant: str, n: int, step: str) -> tuple[float, float]:
        """(flow body s, whole subprocess s) of one flow run in a fresh subprocess."""
        self.count += 1
        out = self.tmp / f"prefect-out-{self.count}"
        t0 = time.perf_counter()
        p = subprocess.run(
            [self.py, str(self.driver), workload, variant, str(n), str(WORKERS), str(out), step],
            cwd=self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
        )
        proc_s = time.perf_counter() - t0
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode != 0 or not lines:
            sys.exit(f"prefect {workload}/{variant} failed ({p.returncode}):\n{p.stderr[-3000:]}")
        res = json.loads(lines[-1].removeprefix("RESULT "))
        if res["done"] != n:
            sys.exit(f"prefect {workload}/{variant}: only {res['done']} of {n} tasks wrote output")
        return res["flow_s"], proc_s


def quiesce() -> None:
    """Let the previous measurement's disk writes and deletions land before the next one starts
    (on a filesystem mounted with ``discard`` they otherwise slow whichever side runs next)."""
    os.sync()
    time.sleep(0.5)


def workmill_library(tmp: Path, modules: list[BenchModule]) -> float:
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        repo = make_repo(Path(d) / "repo", modules, max_parallel=WORKERS)
        t0 = time.perf_counter()
        result = run(RunContext(repo, RunOptions(max_parallel=WORKERS)))
        wall = time.perf_counter() - t0
        statuses = [s.status for s in result.settled]
        if statuses != ["COMPLETED"]:
            sys.exit(f"workmill library run: {result.summary_rows()}")
        return wall


def workmill_cli(tmp: Path, modules: list[BenchModule]) -> float:
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        root = Path(d) / "repo"
        make_repo(root, modules, max_parallel=WORKERS)
        cmd = [sys.executable, "-m", "workmill", "run", "--max-parallel", str(WORKERS), "--json"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=root, env=cli_env(), capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0 or '"COMPLETED"' not in p.stdout:
            sys.exit(f"workmill run (CLI) exited {p.returncode}: {p.stdout[-2000:]}{p.stderr}")
        return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="repetitions (median is reported)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--no-cli", action="store_true", help="skip the `workmill run` CLI timing")
    args = ap.parse_args()
    names = [w for w in args.workloads.split(",") if w]
    for w in names:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")

    py = ensure_prefect()
    with tempfile.TemporaryDirectory(prefix="wm-vs-prefect-") as tmpname:
        tmp = Path(tmpname)
        pf = PrefectSide(py, tmp)
        print(f"# Prefect {pf.version()}; {os.cpu_count()} CPUs; median of {args.runs} runs")
        print(f"# load average at start: {_load()}")
        t0 = time.perf_counter()
        pf.one("chain", "python", 1, TRIVIAL)  # creates Prefect's database: untimed
        print(f"# Prefect home initialised in {time.perf_counter() - t0:.1f} s (untimed)")
        # series name -> workload -> samples; repetitions interleave the sides so drift
        # on a shared machine hits both alike
        samples: dict[str, dict[str, list[float]]] = {}

        def add(series: str, workload: str, value: float) -> None:
            samples.setdefault(series, {}).setdefault(workload, []).append(value)

        for rep in range(args.runs):
            for w in names:
                modules = WORKLOADS[w][1]()
                n, step = len(modules), modules[0].step
                quiesce()
                add("workmill lib", w, workmill_library(tmp, modules))
                if not args.no_cli:
                    quiesce()
                    add("workmill CLI", w, workmill_cli(tmp, modules))
                for variant in ("bash", "python"):
                    quiesce()
                    flow_s, proc_s = pf.one(w, variant, n, step)
                    add(f"prefect {variant} flow", w, flow_s)
                    add(f"prefect {variant} proc", w, proc_s)
            print(f"# run {rep + 1}/{args.runs} done", flush=True)

    med = {s: {w: statistics.median(v) for w, v in d.items()} for s, d in samples.items()}
    print(f"# load average at end: {_load()}")
    report(names, med, args.runs)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(names: list[str], med: dict[str, dict[str, float]], runs: int) -> None:
    series = list(med)
    print()
    print(f"{'wall s (median)':<34}" + "".join(f"{w:>13}" for w in names))
    for s in series:
        print(f"{s:<34}" + "".join(f"{med[s][w]:>13.3f}" for w in names))
    print()
    print("ratio workmill/Prefect (lower is better; x = how many times faster workmill is)")
    print("  'flow' = Prefect's warm flow body (Prefect already up); 'proc' = its whole process")
    pairs = [
        ("workmill lib", "prefect bash flow"),
        ("workmill lib", "prefect python flow"),
    ]
    if "workmill CLI" in med:
        pairs += [("workmill CLI", "prefect bash proc"), ("workmill CLI", "prefect python proc")]
    summary: dict[str, object] = {"bench": "vs_prefect", "runs": runs}
    for a, b in pairs:
        cells = []
        for w in names:
            r = med[a][w] / med[b][w]
            cells.append(f"{r:>6.3f} {1 / r:>5.1f}x")
            summary[f"{w}: {a} / {b}"] = round(r, 3)
        print(f"{a + ' / ' + b:<44}" + "".join(f"{c:>15}" for c in cells))
    for w in names:
        if w in AIM_WORKLOADS:
            x = med["prefect bash flow"][w] / med["workmill lib"][w]
            verdict = "met" if x >= AIM_SPEEDUP else "NOT met"
            print(
                f"AIM {w}: workmill library run {x:.1f}x faster than Prefect's warm flow body "
                f"(same bash task; aim >= {AIM_SPEEDUP:.0f}x): {verdict}"
            )
            summary[f"{w}: aim x warm flow body"] = round(x, 2)
    for w in names:
        ideal = WORKLOADS[w][2]
        if ideal:
            lib = med["workmill lib"][w]
            print(
                f"{w}: ideal {ideal:.1f} s, workmill lib {lib:.3f} s = "
                f"{(lib / ideal - 1) * 100:+.1f} % over ideal (aim: within 10 %)"
            )
            summary[f"{w}: workmill lib over ideal %"] = round((lib / ideal - 1) * 100, 1)
    for s in series:
        for w in names:
            summary[f"{w}: {s} s"] = round(med[s][w], 3)
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
