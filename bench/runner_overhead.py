"""What workmill adds around one trivial bash step, versus spawning that bash directly.

Measures the median wall time of ``run_module`` (workspace, environment,
interpretation, log capture, output contract, manifest) on a one-step action
``echo hi > $WM_OUTPUTS_DIR/o.txt`` against ``bash --noprofile --norc -eo
pipefail script`` run with subprocess, and prints both and the difference.

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


def bench(root: Path, runs: int) -> list[tuple[float, float]]:
    """(direct, runner) pairs, interleaved so machine load hits both alike."""
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
    pairs = []
    for i in range(runs):
        direct = direct_once(root)
        req = ModuleRunRequest(
            module_dir=mdir,
            module=module,
            action=action,
            tenant_id="Bench0",
            work_order_id=f"W{i:07d}",
            module_run_id=f"R{i:07d}",
            params={},
            runtime_dir=root / "runtime",
            catalog=catalog,
            cache_dir=root / "cache",
            params_schema=None,
        )
        t0 = time.perf_counter()
        result = run_module(req)
        pairs.append((direct, time.perf_counter() - t0))
        assert result.status == "COMPLETED", result.message
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench(root / "warm", 3)  # imports, first-touch costs
        pairs = bench(root / "measure", args.runs)
    direct = statistics.median(d for d, _ in pairs) * 1000
    runner = statistics.median(r for _, r in pairs) * 1000
    overhead = statistics.median(r - d for d, r in pairs) * 1000
    print(f"direct bash spawn   median {direct:7.2f} ms  ({args.runs} interleaved runs)")
    print(f"workmill run_module median {runner:7.2f} ms")
    print(f"overhead per module median {overhead:7.2f} ms  (target < 5 ms)")


if __name__ == "__main__":
    main()
