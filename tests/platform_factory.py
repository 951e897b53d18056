"""Build small, fast platform repos for end-to-end tests (bash modules, real files)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from workmill import billing_tables as bt

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "platform"

T1, T2, T3, T4 = "T1aaaa", "T2bbbb", "T3cccc", "T4dddd"

MODULES = {
    "001": {
        "spec": {
            "name": "Gen",
            "version": "1.0.0",
            "capabilities": {"supports_downloadable_artifacts": True},
            "cache": {"enabled": True, "retention_days": 30},
            "outputs": [{"name": "data.json", "format": "json"}],
            "timeout_minutes": 1,
        },
        "inputs": {"n": {"required": False, "default": 3}},
        "run": 'printf \'{"n": %s}\\n\' "$WM_PARAM_N" > "$WM_OUTPUTS_DIR/data.json"',
    },
    "002": {
        "spec": {
            "name": "Double",
            "version": "1.0.0",
            "depends_on": ["001"],
            "capabilities": {"supports_downloadable_artifacts": True},
            "inputs": [{"module": "001", "name": "data.json", "format": "json"}],
            "outputs": [{"name": "out.txt", "format": "text"}],
            "timeout_minutes": 1,
        },
        "inputs": {},
        "run": 'cat "$WM_INPUTS_DIR/001/data.json" "$WM_INPUTS_DIR/001/data.json" > "$WM_OUTPUTS_DIR/out.txt"',
    },
    "003": {
        "spec": {
            "name": "Flaky",
            "version": "1.0.0",
            "outputs": [{"name": "ok.txt", "format": "text"}],
            "timeout_minutes": 1,
        },
        "inputs": {"fail": {"required": False, "default": ""}},
        "reasons": [
            {"key": "E01", "name": "BROKEN", "fail": True, "refundable": True},
            {"key": "E02", "name": "DEGRADED", "fail": False, "refundable": False},
        ],
        "run": 'if [ -n "$WM_PARAM_FAIL" ]; then printf %s "$WM_PARAM_FAIL" > "$WM_REASON_FILE"; fi\necho ok > "$WM_OUTPUTS_DIR/ok.txt"',
    },
    "004": {
        "spec": {
            "name": "Slow",
            "version": "1.0.0",
            "outputs": [{"name": "done.txt", "format": "text"}],
            "timeout_minutes": 2,
        },
        "inputs": {"secs": {"required": False, "default": 0}},
        "run": 'sleep "$WM_PARAM_SECS"\necho done > "$WM_OUTPUTS_DIR/done.txt"',
    },
    "005": {
        "spec": {
            "name": "NoArtifacts",
            "version": "1.0.0",
            "outputs": [{"name": "x.txt", "format": "text"}],
            "timeout_minutes": 1,
        },
        "inputs": {},
        "run": 'echo x > "$WM_OUTPUTS_DIR/x.txt"',
    },
    "006": {
        "spec": {
            "name": "Unpriced",
            "version": "1.0.0",
            "outputs": [{"name": "y.txt", "format": "text"}],
            "timeout_minutes": 1,
        },
        "inputs": {},
        "run": 'echo y > "$WM_OUTPUTS_DIR/y.txt"',
    },
}

PRICING = [
    ("001", "GEN", 10, 5),
    ("002", "DBL", 20, 10),
    ("003", "FLK", 30, 0),
    ("004", "SLW", 5, 0),
    ("005", "NOA", 7, 3),
]
PROMOS = [
    ("P10", "PERCENT", 10, "", "2025-01-01T00:00:00Z", "", "", "", "true"),
    ("F5", "FIXED", 5, "002", "2025-01-01T00:00:00Z", "", "", "", "true"),
    ("OLD", "PERCENT", 50, "", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "", "", "true"),
]


def _json_yaml(data) -> str:
    return json.dumps(data, indent=2) + "\n"  # JSON is YAML


def _csv(header, rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def build_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "workmill.yml").write_text("max_parallel: 1\n")
    (root / "config").mkdir()
    shutil.copy(EXAMPLES / "config" / "global_reasons.yml", root / "config" / "global_reasons.yml")
    ids_dir = root / "maintenance-state" / "ids"
    ids_dir.mkdir(parents=True)
    (ids_dir / "category_registry.csv").write_text(
        _csv(["category_id", "name", "description"], [("01", "Platform", ""), ("02", "Work", "")])
    )
    (ids_dir / "module_registry.csv").write_text(
        _csv(
            ["module_id", "category_id", "name", "status", "digest"],
            [(m, "02", d["spec"]["name"], "active", "") for m, d in MODULES.items()],
        )
    )
    for mid, d in MODULES.items():
        mdir = root / "modules" / mid
        mdir.mkdir(parents=True)
        (mdir / "module.yml").write_text(_json_yaml({"module_id": mid, **d["spec"]}))
        (mdir / "validation.yml").write_text(_json_yaml({"reasons": d.get("reasons", [])}))
        action = {
            "name": d["spec"]["name"],
            "inputs": d["inputs"],
            "runs": {"using": "composite", "steps": [{"shell": "bash", "run": d["run"]}]},
        }
        (mdir / "action.yml").write_text(_json_yaml(action))
    tenants = {
        T1: {"status": "active", "allow_release_consumers": [T2]},
        T2: {"status": "active"},
        T3: {"status": "active"},
        T4: {"status": "suspended"},
    }
    for tid, extra in tenants.items():
        tdir = root / "tenants" / tid / "workorders"
        tdir.mkdir(parents=True)
        (tdir.parent / "tenant.yml").write_text(
            _json_yaml({"tenant_id": tid, "name": f"Tenant {tid}", **extra})
        )
    tpl = root / "releases" / "billing-state-v1"
    tpl.mkdir(parents=True)
    for name, cols in bt.COLUMNS.items():
        rows: list = []
        if name == bt.PRICING:
            rows = [(*p, "true") for p in PRICING]
        elif name == bt.PROMOTIONS:
            rows = PROMOS
        elif name == bt.TOPUP_METHODS:
            rows = [("AD", "admin", "true")]
        (tpl / name).write_text(_csv(cols, rows))
    return root


def work_order(root: Path, tenant: str, wo_id: str, modules: list[dict], **extra) -> Path:
    path = root / "tenants" / tenant / "workorders" / f"{wo_id}.yml"
    path.write_text(_json_yaml({"work_order_id": wo_id, "modules": modules, **extra}))
    return path


def read_state(cli, root: Path, tmp: Path) -> dict[str, list[dict[str, str]]]:
    """Pull the billing state as plain tables."""
    out = tmp / "pulled"
    if out.exists():
        shutil.rmtree(out)
    r = cli("state", "pull", "--billing-state-dir", str(out), cwd=root)
    assert r.returncode == 0, r.stderr
    tables = {}
    for p in out.glob("*.csv"):
        with p.open(newline="") as fh:
            tables[p.name] = list(csv.DictReader(fh))
    return tables


def prepare(cli, root: Path, topups: dict[str, int]) -> None:
    for args in (("maintenance",), ("state", "bootstrap")):
        r = cli(*args, cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
    for tenant, amount in topups.items():
        r = cli(
            "topup",
            "--tenant-id",
            tenant,
            "--topup-method-id",
            "AD",
            "--amount-credits",
            str(amount),
            "--reference",
            f"t-{tenant}",
            cwd=root,
        )
        assert r.returncode == 0, r.stderr
