"""What workmill adds around one trivial bash step, with and without the sandbox.

Measures the median wall time of ``run_module`` (workspace, environment, step
agent, interpretation, log capture, output contract, manifest) on a one-step
action ``echo hi > $WM_OUTPUTS_DIR/o.txt`` under ``sandbox: none`` and
``sandbox: bwrap``, against ``bash --noprofile --norc -eo pipefail script``
run with subprocess; prints the three medians and the sandbox's cost (the
bwrap/none ratio and difference). The runs are interleaved so machine load
hits all alike.

    python bench/runner_overhead.py [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from workmill.reasons import Reason, ReasonCatalog
from workmill.runner import ModuleRunRequest, run_module
from workmill.runner.outcome import RUNNER_REASONS
from workmill.sandbox import SandboxUnavailable, choose_sandbox
from workmill.specs import ActionSpec, ModuleSpec

SCRIPT = 'echo hi > "$OUT/o.txt"\n'


def _catalog() -> ReasonCatalog:
    return ReasonCatalog(
        {
            f"001000{i:03d}": Reason(
                f"001000{i:03d}", "global", "000", f"G{i:02d}", n, "", True, True, "active"
            )
            for i, n in enumerate(RUNNER_REASONS, start=1)
        }
    )


def direct_once(root: Path) -> float:
    out = root / "direct"
    out.mkdir(exist_ok=True)
    script = root / "direct.sh"
    script.write_text(SCRIPT)
    t0 = time.perf_counter()
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env={"OUT": str(out), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return time.perf_counter() - t0


def bench(root: Path, runs: int, modes: list[str]) -> list[tuple[float, ...]]:
    """(direct, runner per mode…) tuples, interleaved so machine load hits all alike."""
    mdir = root / "modules" / "001"
    mdir.mkdir(parents=True)
    module = ModuleSpec.model_validate(
        {
            "module_id": "001",
            "name": "bench",
            "version": "1",
            "outputs": [{"name": "o.txt", "format": "text"}],
        }
    )
    action = ActionSpec.model_validate(
        {
            "runs": {
                "using": "composite",
                "steps": [{"shell": "bash", "run": 'echo hi > "$WM_OUTPUTS_DIR/o.txt"'}],
            }
        }
    )
    catalog = _catalog()
    rows = []
    for i in range(runs):
        row = [direct_once(root)]
        for mode in modes:
            req = ModuleRunRequest(
                module_dir=mdir,
                module=module,
                action=action,
                tenant_id="Bench0",
                work_order_id=f"W{i:07d}",
                module_run_id=f"R{i:07d}",
                params={},
                runtime_dir=root / "runtime" / mode,
                catalog=catalog,
                cache_dir=root / "cache",
                params_schema=None,
                sandbox=mode,
            )
            t0 = time.perf_counter()
            result = run_module(req)
            row.append(time.perf_counter() - t0)
            assert result.status == "COMPLETED", result.message
        rows.append(tuple(row))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    modes = ["none"]
    try:
        choose_sandbox("bwrap")
        modes.append("bwrap")
    except SandboxUnavailable as exc:
        print(f"bwrap: not measured ({exc})")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench(root / "warm", 3, modes)  # imports, first-touch costs
        rows = bench(root / "measure", args.runs, modes)

    def med(i: int) -> float:
        return statistics.median(r[i] for r in rows) * 1000

    print(f"direct bash spawn              median {med(0):7.2f} ms  ({args.runs} interleaved runs)")
    for i, mode in enumerate(modes, start=1):
        print(f"run_module, sandbox: {mode:<5}     median {med(i):7.2f} ms")
    if len(modes) == 2:
        extra = statistics.median(r[2] - r[1] for r in rows) * 1000
        print(
            f"sandbox cost per module run    median {extra:7.2f} ms  (bwrap/none {med(2) / med(1):.2f}x)"
        )


if __name__ == "__main__":
    main()
