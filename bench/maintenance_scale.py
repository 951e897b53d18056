"""Scale of `workmill maintenance` and `workmill validate` (issue 2).

Generates platform repos of (modules x tenants), each tenant with 10 work
orders, and prints wall time and peak memory of each command, run in its own
subprocess. Not a test: run it by hand.

    python bench/maintenance_scale.py                  # both sizes
    python bench/maintenance_scale.py --sizes 100x500  # one size
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workmill.scaffold import init_repo

WORK_ORDERS_PER_TENANT = 10

_MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).returncode
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(rc, wall, ru.ru_maxrss, ru.ru_utime + ru.ru_stime)
"""


def _deps(i: int) -> list[int]:
    """Chains of three: module i depends on i-1 unless i starts a chain."""
    return [i - 1] if i % 3 != 1 else []


def generate(root: Path, n_modules: int, n_tenants: int) -> None:
    init_repo(root)
    reg = ["module_id,category_id,name,status,digest"]
    for i in range(1, n_modules + 1):
        m = f"{i:03d}"
        d = root / "modules" / m
        (d / "schemas").mkdir(parents=True)
        deps = [f"{j:03d}" for j in _deps(i)]
        inputs = [{"module": x, "name": "result.json", "format": "json"} for x in deps]
        (d / "module.yml").write_text(
            f'module_id: "{m}"\nname: Module {m}\nversion: "1.0.0"\n'
            f"depends_on: {json.dumps(deps)}\ninputs: {json.dumps(inputs)}\n"
            "outputs: [{name: result.json, format: json}]\n"
            "capabilities: {supports_downloadable_artifacts: true}\n"
            "cache: {enabled: true, retention_days: 30}\n"
        )
        (d / "validation.yml").write_text(
            "reasons:\n  - {key: E01, name: BAD_INPUT, fail: true, refundable: true}\n"
            "  - {key: E02, name: SOFT_WARNING, fail: false, refundable: false}\n"
        )
        (d / "action.yml").write_text(
            "name: m\ninputs:\n  rows: {required: false, default: 10}\n"
            "runs:\n  using: composite\n  steps:\n"
            "    - {shell: bash, run: 'echo \"$ROWS\"', env: {ROWS: '${{ inputs.rows }}'}}\n"
        )
        (d / "schemas" / "params.schema.json").write_text(
            '{"type": "object", "properties": {"rows": {"type": "integer", "minimum": 1}}}'
        )
        reg.append(f"{m},04,Module {m},active,")
    (root / "maintenance-state/ids/module_registry.csv").write_text("\n".join(reg) + "\n")
    for t in range(n_tenants):
        tid = f"T{t:05d}"
        td = root / "tenants" / tid / "workorders"
        td.mkdir(parents=True)
        consumers = [f"T{(t + 1) % n_tenants:05d}"] if n_tenants > 1 else []
        (root / "tenants" / tid / "tenant.yml").write_text(
            f'tenant_id: "{tid}"\nname: Tenant {t}\nallow_release_consumers: {json.dumps(consumers)}\n'
        )
        for w in range(WORK_ORDERS_PER_TENANT):
            wid = f"W{t:05d}{w:02d}"
            top = 1 + (t * WORK_ORDERS_PER_TENANT + w) % n_modules
            chain = [top]
            while _deps(chain[0]):
                chain.insert(0, _deps(chain[0])[0])
            mods = "".join(
                f'  - {{module_id: "{i:03d}", params: {{rows: {5 + w}}}, reuse_output_type: cache}}\n'
                for i in chain
            )
            (td / f"{wid}.yml").write_text(
                f"work_order_id: {wid}\nmode: PARTIAL_ALLOWED\nmodules:\n{mods}"
            )


def measure(repo: Path, *args: str) -> tuple[int, float, float, float]:
    cmd = [sys.executable, "-m", "workmill", "--repo", str(repo), *args]
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) / 1024, float(out[3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="*", default=["100x500", "999x5000"])
    ns = ap.parse_args()
    print(f"{'size':>12} {'command':<22} {'rc':>3} {'wall s':>8} {'cpu s':>7} {'peak MiB':>9}")
    for size in ns.sizes:
        n_mod, n_ten = (int(x) for x in size.split("x"))
        with tempfile.TemporaryDirectory(prefix="wm-bench-") as tmp:
            root = Path(tmp) / "repo"
            t = time.perf_counter()
            generate(root, n_mod, n_ten)
            print(
                f"# generated {size} ({n_ten * WORK_ORDERS_PER_TENANT} work orders) in "
                f"{time.perf_counter() - t:.1f}s"
            )
            for label, args in (
                ("maintenance (first)", ["maintenance"]),
                ("maintenance (again)", ["maintenance"]),
                ("maintenance --check", ["maintenance", "--check"]),
                ("validate", ["validate"]),
            ):
                rc, wall, peak, cpu = measure(root, *args)
                print(
                    f"{size:>12} {label:<22} {rc:>3} {wall:>8.2f} {cpu:>7.2f} {peak:>9.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
