"""The example platform repo (examples/platform) stays correct on its own.

Its modules are run here directly, with the SPEC §6 environment set by hand,
so a broken example shows up even while the runner or orchestrator is broken;
every spec file is loaded with the models the platform enforces; and the
figures the README and demo.yml promise are recomputed from SPEC §8.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from workmill import ids
from workmill.billing_tables import COLUMNS, PRICING, PROMOTIONS, TOPUP_METHODS
from workmill.digest import module_digest
from workmill.params import ParamsInvalid, load_params_schema, resolve_params
from workmill.repo import PlatformRepo
from workmill.specs import (
    GlobalReasonsSpec,
    ModuleSpec,
    PlatformConfig,
    TenantSpec,
    ValidationSpec,
    WorkOrderSpec,
    load_spec,
)
from workmill.tables import parse_table, read_table
from workmill.yamlio import read_yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "platform"
REPO = PlatformRepo.open(EXAMPLE)
MODULES = REPO.module_ids()
SPEC_GLOBAL_REASONS = {
    "INSUFFICIENT_CREDITS",
    "TENANT_SUSPENDED",
    "PROMO_INVALID",
    "PARAMS_INVALID",
    "MODULE_NOT_ORDERABLE",
    "MODULE_FAILED",
    "MODULE_TIMEOUT",
    "OUTPUT_CONTRACT_VIOLATION",
    "ARTIFACTS_NOT_ELIGIBLE",
    "ARTIFACT_PUBLISH_FAILED",
    "DEPENDENCY_FAILED",
    "STRICT_ABORTED",
    "RELEASE_NOT_FOUND",
    "RELEASE_ACCESS_DENIED",
    "RELEASE_ITEM_MISSING",
    "ASSETS_NOT_FOUND",
    "INTEGRITY_MISMATCH",
    "INTERRUPTED",
    "INTERNAL_ERROR",
}


def all_work_orders() -> list[tuple[str, WorkOrderSpec]]:
    return [
        (t, REPO.work_order(t, p.stem)) for t in REPO.tenant_ids() for p in REPO.work_order_files(t)
    ]


def work_order(work_order_id: str) -> WorkOrderSpec:
    return REPO.find_work_order(work_order_id)[1]


def demo() -> dict:
    return read_yaml(EXAMPLE / "demo.yml").data


# ---------------------------------------------------------------- running modules by hand


@dataclass
class ModuleRun:
    returncode: int
    reason: str
    outputs: Path
    stdout: str
    stderr: str


def run_module(
    module_id: str,
    params: dict,
    inputs: dict[str, Path],
    work: Path,
    *,
    mode: str = "run",
    timeout: float = 30,
) -> ModuleRun:
    """Run ``src/main.py`` as the runner would: SPEC §6 environment, fresh workspace.

    ``inputs`` maps a dependency id to the outputs dir it produced; only the files
    this module declares as inputs are delivered, under ``inputs/<dep>/``.
    """
    spec = REPO.module(module_id)
    resolved = resolve_params(
        REPO.action(module_id), params, load_params_schema(REPO.module_dir(module_id))
    )
    ws = work / module_id
    for sub in ("outputs", "inputs", "tmp", "cache"):
        (ws / sub).mkdir(parents=True)
    for inp in spec.inputs:
        (ws / "inputs" / inp.module).mkdir(exist_ok=True)
        shutil.copyfile(inputs[inp.module] / inp.name, ws / "inputs" / inp.module / inp.name)
    (ws / "params.json").write_text(json.dumps(resolved), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WM_", "GITHUB_"))}
    env.update(
        {
            "WM_TENANT_ID": "Ag3ncy",
            "WM_WORK_ORDER_ID": "TestWo01",
            "WM_MODULE_ID": module_id,
            "WM_MODULE_RUN_ID": "TestRun1",
            "WM_MODULE_VERSION": spec.version,
            "WM_PARAMS_FILE": str(ws / "params.json"),
            "WM_INPUTS_DIR": str(ws / "inputs"),
            "WM_OUTPUTS_DIR": str(ws / "outputs"),
            "WM_REASON_FILE": str(ws / "reason.txt"),
            "WM_MODE": mode,
            "WM_CACHE_DIR": str(ws / "cache"),
            "GITHUB_ACTION_PATH": str(REPO.module_dir(module_id)),
            "RUNNER_TEMP": str(ws / "tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for name, value in resolved.items():
        if isinstance(value, str | int | float | bool):
            key = "".join(c if c.isalnum() else "_" for c in name.upper())
            env[f"WM_PARAM_{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    proc = subprocess.run(
        [sys.executable, str(REPO.module_dir(module_id) / "src" / "main.py")],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    reason_file = ws / "reason.txt"
    reason = reason_file.read_text(encoding="utf-8").strip() if reason_file.exists() else ""
    return ModuleRun(proc.returncode, reason, ws / "outputs", proc.stdout, proc.stderr)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def format_problem(path: Path, fmt: str) -> str | None:
    """An independent check that ``path`` is what its declared format says."""
    data = path.read_bytes()
    text = data.decode("utf-8")
    if fmt == "json":
        json.loads(text)
    elif fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            return "ragged or empty CSV"
    elif fmt == "svg":
        if not ET.fromstring(text).tag.endswith("}svg"):
            return "root is not <svg>"
    elif fmt == "html":
        parser = _Html()
        parser.feed(text)
        if not text.startswith("<!DOCTYPE html>") or "html" not in parser.tags:
            return "not an HTML document"
    elif fmt != "text":
        return f"unexpected format {fmt}"
    return None


def assert_contract(module_id: str, run: ModuleRun) -> None:
    declared = {o.name: o.format for o in REPO.module(module_id).outputs}
    produced = {p.relative_to(run.outputs).as_posix() for p in run.outputs.rglob("*")}
    assert produced == set(declared), f"{module_id}: produced {produced}, declared {declared}"
    for name, fmt in declared.items():
        path = run.outputs / name
        assert path.is_file() and not path.is_symlink()
        assert format_problem(path, fmt) is None, f"{module_id}/{name} is not {fmt}"


def run_work_order(
    work_order_id: str, work: Path, inputs: dict[str, Path] | None = None
) -> dict[str, ModuleRun]:
    """Each module of a work order in listed order (dependencies come first in every example)."""
    done: dict[str, Path] = dict(inputs or {})
    runs = {}
    for m in work_order(work_order_id).modules:
        if m.module_id in done:
            continue
        runs[m.module_id] = run_module(m.module_id, m.params, done, work)
        done[m.module_id] = runs[m.module_id].outputs
    return runs


def test_example__full_pipeline_runs_and_honours_the_output_contract(tmp_path):
    runs = run_work_order("A1Full01", tmp_path)
    assert list(runs) == ["001", "002", "003", "004", "005"]
    for module_id, run in runs.items():
        assert (run.returncode, run.reason) == (0, ""), f"{module_id}: {run.stderr}"
        assert_contract(module_id, run)
    with (runs["002"].outputs / "clean.csv").open(encoding="utf-8", newline="") as fh:
        clean = list(csv.DictReader(fh))
    summary = json.loads((runs["003"].outputs / "summary.json").read_text(encoding="utf-8"))
    from decimal import Decimal

    assert summary["orders"] == len(clean)
    assert Decimal(summary["revenue"]) == sum(Decimal(r["amount"]) for r in clean)
    assert sum(Decimal(g["revenue"]) for g in summary["by_region"]) == Decimal(summary["revenue"])
    svg = (runs["004"].outputs / "chart.svg").read_text(encoding="utf-8")
    assert svg.count("<rect ") == 1 + len(summary["by_region"])  # background + one per bar
    html = (runs["005"].outputs / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "Inkwell client sales report" in html and summary["revenue"] in html


def test_example__independent_branches_run_on_the_raw_export(tmp_path):
    ingest = run_module("001", {}, {}, tmp_path)
    for module_id, params in (("006", {}), ("007", {"table": "t1"})):
        run = run_module(module_id, params, {"001": ingest.outputs}, tmp_path)
        assert (run.returncode, run.reason) == (0, ""), run.stderr
        assert_contract(module_id, run)
    receipt = json.loads((tmp_path / "007" / "outputs" / "receipt.json").read_text())
    assert receipt["table"] == "t1" and receipt["rows"] >= 200


def test_example__smoke_mode_runs_every_module_with_its_smoke_params(tmp_path):
    done: dict[str, Path] = {}
    order = sorted(MODULES, key=lambda m: len(REPO.module(m).deps))  # deps first here
    for module_id in order:
        spec = REPO.module(module_id)
        params = dict(spec.smoke.params)
        if module_id == "007":
            params["delay_seconds"] = 60  # smoke mode must not sleep
        run = run_module(module_id, params, done, tmp_path, mode="smoke", timeout=20)
        assert run.returncode == 0, f"{module_id}: {run.stderr}"
        assert run.reason in ("", "E01"), run.reason  # 006 on 5 rows: NOT_ENOUGH_DATA
        assert_contract(module_id, run)
        done[module_id] = run.outputs
    rows = (done["001"] / "sales.csv").read_text(encoding="utf-8").splitlines()
    assert 2 <= len(rows) <= 6  # header + at most 5 orders


def test_example__ingest_is_deterministic_per_seed(tmp_path):
    a = run_module("001", {"seed": 5}, {}, tmp_path / "a")
    b = run_module("001", {"seed": 5}, {}, tmp_path / "b")
    c = run_module("001", {"seed": 6}, {}, tmp_path / "c")
    read = lambda r: (r.outputs / "sales.csv").read_bytes()  # noqa: E731
    assert read(a) == read(b) != read(c)


def test_example__anomaly_scan_fails_on_purpose_with_a_refundable_reason(tmp_path):
    ingest = run_module("001", {}, {}, tmp_path)
    run = run_module("006", {"fail_with": "E02"}, {"001": ingest.outputs}, tmp_path)
    assert run.returncode != 0 and run.reason == "E02"
    reason = {r.key: r for r in REPO.module_validation("006").reasons}["E02"]
    assert (reason.fail, reason.refundable) == (True, True)
    for wo in ("A3Partl1", "A4Strct1"):
        assert {m.module_id: m.params for m in work_order(wo).modules}["006"]["fail_with"] == "E02"


def test_example__assets_export_is_an_exception_for_the_cleaner(tmp_path):
    """B2Asset1: the retailer's own export has too many bad rows for max_bad_percent 5."""
    assets = REPO.assets_dir("Nwind1") / "pos-export-2025h2"
    runs = run_work_order("B2Asset1", tmp_path, inputs={"001": assets})
    assert (runs["002"].returncode, runs["002"].reason) == (0, "E01")
    assert_contract("002", runs["002"])
    quality = json.loads((runs["002"].outputs / "quality.json").read_text())
    assert quality["bad_percent"] > 5 and quality["rows_out"] > 0
    reason = {r.key: r for r in REPO.module_validation("002").reasons}["E01"]
    assert (reason.name, reason.fail, reason.refundable) == ("TOO_MANY_BAD_ROWS", False, False)
    assert (runs["003"].returncode, runs["003"].reason) == (0, "")


def test_example__cleaner_fails_when_no_row_is_valid(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "sales.csv").write_text(
        "order_id,order_date,region,product,quantity,unit_price\n"
        "SO-1,2025/01/01,North,Mug,1,9.00\nSO-2,2025-01-02,North,Mug,,9.00\n",
        encoding="utf-8",
    )
    run = run_module("002", {}, {"001": src}, tmp_path / "w")
    assert run.returncode == 1 and run.reason == "E02"
    assert json.loads((run.outputs / "quality.json").read_text())["rows_out"] == 0


def test_example__chart_and_report_escape_hostile_text(tmp_path):
    ingest = run_module("001", {"rows": 20}, {}, tmp_path)
    clean = run_module("002", {}, {"001": ingest.outputs}, tmp_path)
    agg = run_module("003", {}, {"002": clean.outputs}, tmp_path)
    hostile = '<script>alert("x")</script> & "co"'
    chart = run_module("004", {"title": hostile}, {"003": agg.outputs}, tmp_path)
    report = run_module(
        "005", {"title": hostile}, {"003": agg.outputs, "004": chart.outputs}, tmp_path
    )
    for module_id, run, name in (("004", chart, "chart.svg"), ("005", report, "report.html")):
        assert run.returncode == 0, run.stderr
        assert_contract(module_id, run)
        assert "<script>" not in (run.outputs / name).read_text(encoding="utf-8")


def test_example__warehouse_delays_straddle_its_timeout():
    """A3's load must time out (MODULE_TIMEOUT); A4's must finish well within the limit."""
    timeout_s = REPO.module("007").timeout_minutes * 60
    delay = {
        wo: {m.module_id: m.params for m in work_order(wo).modules}["007"]["delay_seconds"]
        for wo in ("A3Partl1", "A4Strct1")
    }
    assert delay["A3Partl1"] > timeout_s * 3
    assert 1 <= delay["A4Strct1"] <= timeout_s - 1


# ---------------------------------------------------------------- the spec files


def test_example__every_yaml_file_loads_with_its_model():
    models = {
        "workmill.yml": PlatformConfig,
        "config/global_reasons.yml": GlobalReasonsSpec,
    }
    seen = set()
    for path in sorted(EXAMPLE.rglob("*.yml")):
        rel = path.relative_to(EXAMPLE).as_posix()
        parts = rel.split("/")
        if rel in models:
            load_spec(path, models[rel], rel)
        elif parts[0] == "modules" and parts[2:] == ["module.yml"]:
            assert load_spec(path, ModuleSpec, rel).module_id == parts[1]
        elif parts[0] == "modules" and parts[2:] == ["validation.yml"]:
            load_spec(path, ValidationSpec, rel)
        elif parts[0] == "modules" and parts[2:] == ["action.yml"]:
            REPO.action(parts[1])
        elif parts[0] == "tenants" and parts[2:] == ["tenant.yml"]:
            assert load_spec(path, TenantSpec, rel).tenant_id == parts[1]
        elif parts[0] == "tenants" and parts[2] == "workorders":
            assert load_spec(path, WorkOrderSpec, rel).work_order_id == path.stem
        elif rel == "demo.yml" or parts[:2] == [".github", "workflows"]:
            read_yaml(path, rel)  # workflows' hygiene is tested in test_github_workflows.py
        else:
            pytest.fail(f"{rel}: a YAML file no model covers")
        seen.add(rel)
    from workmill.github import WORKFLOW_NAMES

    workflows = len(WORKFLOW_NAMES)
    assert len(seen) == (
        2 + 3 * len(MODULES) + len(REPO.tenant_ids()) + len(all_work_orders()) + 1 + workflows
    )


def test_example__every_id_is_valid_and_unique_ignoring_case():
    checks = [(ids.IdKind.MODULE, m) for m in MODULES]
    checks += [(ids.IdKind.TENANT, t) for t in REPO.tenant_ids()]
    checks += [(ids.IdKind.WORK_ORDER, w.work_order_id) for _, w in all_work_orders()]
    for kind, value in checks:
        assert ids.check(kind, value) is None
    for kind in {k for k, _ in checks}:
        assert not ids.duplicates_ignoring_case(v for k, v in checks if k is kind)
    for module_id in MODULES:
        keys = [r.key for r in REPO.module_validation(module_id).reasons]
        assert all(ids.is_valid(ids.IdKind.REASON_KEY, k) for k in keys)
    assert len(MODULES) >= 6 and all(m.isdigit() for m in MODULES)


def test_example__inputs_name_files_their_producers_declare():
    for module_id in MODULES:
        spec = REPO.module(module_id)
        for inp in spec.inputs:
            assert inp.module in spec.deps, f"{module_id} reads from non-dependency {inp.module}"
            produced = {o.name: o.format for o in REPO.module(inp.module).outputs}
            assert produced.get(inp.name) == inp.format, f"{module_id}: {inp.module}/{inp.name}"
        assert spec.outputs and spec.timeout_minutes > 0


def test_example__actions_are_safe_composites_matching_their_params_schema():
    for module_id in MODULES:
        action = REPO.action(module_id)
        schema = load_params_schema(REPO.module_dir(module_id))
        assert action.runs.using == "composite"
        assert schema is not None and schema["additionalProperties"] is False
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert set(action.inputs) == set(schema["properties"]), module_id
        for step in action.runs.steps:
            assert step.shell == "python" and "${{" not in (step.run or ""), module_id
        resolve_params(action, {}, schema)  # the defaults satisfy the schema
        resolve_params(action, REPO.module(module_id).smoke.params, schema)
        with pytest.raises(ParamsInvalid):
            resolve_params(action, {"no_such_param": 1}, schema)
        assert (REPO.module_dir(module_id) / "README.md").is_file()
        assert (REPO.module_dir(module_id) / "src" / "main.py").is_file()


def test_example__work_orders_are_orderable_as_written():
    prices = {
        r["module_id"]: r for r in read_table(EXAMPLE / "releases/billing-state-v1/pricing.csv")
    }
    for _tenant, wo in all_work_orders():
        listed = set(wo.module_ids)
        for m in wo.modules:
            spec = REPO.module(m.module_id)
            assert set(spec.deps) <= listed, f"{wo.work_order_id}: {m.module_id} lacks a dependency"
            assert m.module_id in prices
            resolve_params(
                REPO.action(m.module_id), m.params, load_params_schema(REPO.module_dir(m.module_id))
            )
            if m.purchase_release_artifacts:
                assert spec.capabilities.supports_downloadable_artifacts, wo.work_order_id
        # listed order already puts dependencies first (max_parallel 1 = listed order)
        for i, m in enumerate(wo.modules):
            assert set(REPO.module(m.module_id).deps) <= set(wo.module_ids[:i])


def test_example__release_reuse_is_allowed_published_and_ordered_first():
    order = [(t, w.work_order_id) for t, w in all_work_orders()]
    for tenant, wo in all_work_orders():
        for m in wo.modules:
            if m.reuse_output_type != "release":
                continue
            _, owner, owner_wo = m.release_tag.split("-")
            assert tenant in REPO.tenant(owner).allow_release_consumers
            source = REPO.work_order(owner, owner_wo)
            bought = {s.module_id for s in source.modules if s.purchase_release_artifacts}
            assert m.module_id in bought, f"{m.release_tag} publishes no items of {m.module_id}"
            assert order.index((owner, owner_wo)) < order.index((tenant, wo.work_order_id))
            assert owner_wo < wo.work_order_id


def test_example__assets_manifests_match_their_files():
    for tenant in REPO.tenant_ids():
        for folder in sorted(p for p in REPO.assets_dir(tenant).glob("*") if p.is_dir()):
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            assert ids.is_valid(ids.IdKind.MODULE, manifest["module_id"])
            listed = {f["path"] for f in manifest["files"]}
            assert listed == {p.name for p in folder.iterdir()} - {"manifest.json"}
            for f in manifest["files"]:
                data = (folder / f["path"]).read_bytes()
                assert (len(data), hashlib.sha256(data).hexdigest()) == (
                    f["size_bytes"],
                    f["sha256"],
                )
    assert (REPO.assets_dir("Nwind1") / "pos-export-2025h2" / "manifest.json").is_file()


def test_example__global_reasons_cover_the_spec():
    reasons = REPO.global_reasons().reasons
    assert {r.name for r in reasons} >= SPEC_GLOBAL_REASONS
    assert all(r.fail and r.refundable and r.category_id == "01" for r in reasons)


def test_example__registries_cover_modules_and_categories():
    cats = read_table(EXAMPLE / "maintenance-state/ids/category_registry.csv")
    mods = read_table(EXAMPLE / "maintenance-state/ids/module_registry.csv")
    cat_ids = [c["category_id"] for c in cats]
    assert all(ids.is_valid(ids.IdKind.CATEGORY, c) for c in cat_ids) and "01" in cat_ids
    assert [m["module_id"] for m in mods] == MODULES
    for row in mods:
        assert row["category_id"] in cat_ids and row["status"] == "active"
        digest = module_digest(REPO.module_dir(row["module_id"]))
        assert row["digest"] == digest and row["name"] == REPO.module(row["module_id"]).name
    compiled = {p.name for p in (EXAMPLE / "maintenance-state").rglob("*") if p.is_file()}
    # maintenance-state/ is compiled and committed (SPEC §1); its currency is tested by
    # test_orchestrator_e2e.py::test_examples__committed_maintenance_state_is_current
    assert {"category_registry.csv", "module_registry.csv", "reason_catalog.csv"} <= compiled


def test_example__billing_templates_hold_every_table_with_its_header():
    d = EXAMPLE / "releases" / "billing-state-v1"
    assert {p.name for p in d.iterdir()} == set(COLUMNS)
    for name, cols in COLUMNS.items():
        header, rows = parse_table((d / name).read_bytes(), name, cols)
        assert tuple(header) == cols
        if name not in (PRICING, PROMOTIONS, TOPUP_METHODS):
            assert rows == [], name
    _, methods = parse_table((d / TOPUP_METHODS).read_bytes(), TOPUP_METHODS)
    assert [(m["topup_method_id"], m["active"]) for m in methods] == [
        ("AD", "true"),
        ("CC", "true"),
    ]
    _, pricing = parse_table((d / PRICING).read_bytes(), PRICING)
    assert [p["module_id"] for p in pricing] == MODULES
    assert all(ids.is_valid(ids.IdKind.PRODUCT_CODE, p["product_code"]) for p in pricing)
    assert not ids.duplicates_ignoring_case(p["product_code"] for p in pricing)
    assert all(
        p["price_credits"].isdigit() and p["artifact_price_credits"].isdigit() for p in pricing
    )
    _, promos = parse_table((d / PROMOTIONS).read_bytes(), PROMOTIONS)
    by_code = {p["promo_code"]: p for p in promos}
    assert (by_code["WELCOME10"]["kind"], by_code["WELCOME10"]["value"]) == ("PERCENT", "10")
    assert (by_code["CHART5"]["kind"], by_code["CHART5"]["module_ids"]) == ("FIXED", "004;005")
    assert any(p["ends_at"] and p["ends_at"] < "2025" for p in promos)  # an expired one


# ---------------------------------------------------------------- the promised figures


def _pricing() -> dict[str, tuple[int, int]]:
    rows = read_table(EXAMPLE / "releases/billing-state-v1/pricing.csv")
    return {
        r["module_id"]: (int(r["price_credits"]), int(r["artifact_price_credits"])) for r in rows
    }


def _promos() -> dict[str, dict[str, str]]:
    return {
        p["promo_code"]: p for p in read_table(EXAMPLE / "releases/billing-state-v1/promotions.csv")
    }


def net_lines(wo: WorkOrderSpec) -> dict[str, int]:
    """SPEC §8, written out independently: each line's net after the promos, in order."""
    prices, promos = _pricing(), _promos()
    net = {
        m.module_id: prices[m.module_id][0]
        + (prices[m.module_id][1] if m.purchase_release_artifacts else 0)
        for m in wo.modules
    }
    for code in wo.promo_codes:
        promo = promos[code]
        covered = promo["module_ids"].split(";") if promo["module_ids"] else list(net)
        left = int(promo["value"])
        for module_id in net:
            if module_id not in covered:
                continue
            if promo["kind"] == "PERCENT":
                net[module_id] -= net[module_id] * int(promo["value"]) // 100
            else:
                d = min(left, net[module_id])
                net[module_id] -= d
                left -= d
    return net


# Modules each work order is expected to get back (FAILED/SKIPPED with a refundable reason).
REFUNDED = {"A3Partl1": ["006", "007"], "A4Strct1": ["006", "002", "003"]}
# Tenants licences/*.lic covers for the premium module (tests/test_licences.py checks the tokens).
LICENSED_TENANTS = {"Ag3ncy"}


def test_example__demo_expectations_follow_the_billing_rules():
    d = demo()
    expected = {e["work_order_id"]: e for e in d["expected"]}
    wos = dict((w.work_order_id, (t, w)) for t, w in all_work_orders())
    assert [r["work_order_id"] for r in d["run_order"]] == [
        w for w in sorted(wos, key=lambda w: (wos[w][0], w)) if wos[w][1].enabled
    ]
    assert d["not_processed"] == [w for w in wos if not wos[w][1].enabled]
    balance = {t["tenant_id"]: 0 for t in d["topups"]}
    for t in d["topups"]:
        assert ids.is_valid(ids.IdKind.TOPUP_METHOD, t["topup_method_id"])
        balance[t["tenant_id"]] += t["amount_credits"]
    welcome_used: set[str] = set()
    for step in d["run_order"]:
        tenant, wo = wos[step["work_order_id"]]
        e = expected[wo.work_order_id]
        net = net_lines(wo)
        spend = sum(net.values())
        if REPO.tenant(tenant).status == "suspended":
            assert (e["status"], e["reason"], e["spend_credits"]) == (
                "REJECTED",
                "TENANT_SUSPENDED",
                0,
            )
            continue
        premium = [m for m in wo.module_ids if REPO.module(m).tier == "premium"]
        if premium and tenant not in LICENSED_TENANTS:
            assert (e["status"], e["reason"], e["spend_credits"]) == (
                "REJECTED",
                "LICENCE_REQUIRED",
                0,
            )
            continue
        if spend > balance.get(tenant, 0):
            assert (e["status"], e["reason"], e["spend_credits"]) == (
                "REJECTED",
                "INSUFFICIENT_CREDITS",
                0,
            )
            continue
        if "WELCOME10" in wo.promo_codes:  # max_redemptions_per_tenant 1
            assert tenant not in welcome_used
            welcome_used.add(tenant)
        refund = sum(net[m] for m in REFUNDED.get(wo.work_order_id, []))
        assert (e["spend_credits"], e["refund_credits"]) == (spend, refund), wo.work_order_id
        balance[tenant] += refund - spend
    assert d["balances"] == balance
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    for wo_id, e in expected.items():
        assert wo_id in readme and e["status"] in readme


def test_example__stays_small_and_free_of_generated_files():
    files = [p for p in EXAMPLE.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 200_000
    assert not [p for p in files if "__pycache__" in p.parts or p.suffix == ".pyc"]
    assert all(len(module_digest(REPO.module_dir(m))) == 64 for m in MODULES)


# ---------------------------------------------------------------- the real commands


@pytest.fixture
def example_copy(tmp_path) -> Path:
    dest = tmp_path / "platform"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A copy of the example after `workmill validate` and `workmill maintenance`."""
    from conftest import run_cli

    dest = tmp_path_factory.mktemp("compiled") / "platform"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest, run_cli("validate", cwd=dest), run_cli("maintenance", cwd=dest)


def test_example__validate_and_maintenance_accept_it(compiled, cli):
    root, validated, maintained = compiled
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout.startswith("ok:")
    assert maintained.returncode == 0, maintained.stdout + maintained.stderr
    again = cli("maintenance", "--check", cwd=root)
    assert again.returncode == 0, again.stdout + again.stderr
    ms = root / "maintenance-state"
    assert read_table(ms / "tenant_relationships.csv") == [
        {"source_tenant_id": "Pt4rnr", "target_tenant_id": "Nwind1"}
    ]
    catalog = read_table(ms / "reason_catalog.csv")
    module_reasons = sum(len(REPO.module_validation(m).reasons) for m in MODULES)
    assert len(catalog) == len(REPO.global_reasons().reasons) + module_reasons
    registry = read_table(ms / "ids" / "module_registry.csv")
    assert all(len(r["digest"]) == 64 for r in registry)


def test_example__modules_run_through_the_real_runner(compiled, tmp_path):
    """The runner interprets each action.yml: smoke for all, then the two module reasons."""
    from workmill.reasons import ReasonCatalog
    from workmill.runner import ModuleRunRequest, run_module

    repo = PlatformRepo.open(compiled[0])
    catalog = ReasonCatalog.load(repo.maintenance_dir)

    def module_run(module_id: str, params: dict, inputs: Path, mode: str = "run"):
        req = ModuleRunRequest.from_repo(
            repo, module_id, tenant_id="Ag3ncy", work_order_id="RunnerT1",
            module_run_id=ids.generate(ids.IdKind.MODULE_RUN), params=params, catalog=catalog,
            runtime_dir=tmp_path / "rt", inputs_dir=inputs, mode=mode, replace_existing=True,
            cache_dir=tmp_path / "deps-cache" / module_id,
        )  # fmt: skip
        return run_module(req)

    outputs: dict[str, Path] = {}
    for module_id in sorted(MODULES, key=lambda m: len(REPO.module(m).deps)):
        inputs = tmp_path / "in" / module_id
        inputs.mkdir(parents=True)
        for dep in REPO.module(module_id).deps:
            shutil.copytree(outputs[dep], inputs / dep)
        r = module_run(module_id, dict(REPO.module(module_id).smoke.params), inputs, "smoke")
        assert r.status in ("COMPLETED", "COMPLETED_WITH_EXCEPTION"), (module_id, r.message)
        outputs[module_id] = tmp_path / "out" / module_id
        shutil.copytree(r.outputs_dir, outputs[module_id])
    codes = {(r.module_id, r.key): c for c, r in catalog.by_code.items()}

    r = module_run("006", {"fail_with": "E02"}, tmp_path / "in" / "006")
    assert (r.status, r.reason_code) == ("FAILED", codes["006", "E02"])
    assets = tmp_path / "in" / "b2"
    shutil.copytree(REPO.assets_dir("Nwind1") / "pos-export-2025h2", assets / "001")
    r = module_run("002", {"max_bad_percent": 5}, assets)
    assert (r.status, r.reason_code) == ("COMPLETED_WITH_EXCEPTION", codes["002", "E01"])


def _has_command(cli, cwd: Path, *name: str) -> bool:
    return cli(*name, "-h", cwd=cwd).returncode == 0


@pytest.mark.slow
def test_example__demo_flow_gives_the_documented_outcomes(example_copy, cli, tmp_path):
    """maintenance → bootstrap → top-ups → run, then the logs match demo.yml."""
    if not _has_command(cli, example_copy, "run"):
        pytest.skip("`workmill run` is not built yet")
    d = demo()
    assert cli("maintenance", cwd=example_copy).returncode == 0
    assert cli("state", "bootstrap", cwd=example_copy).returncode == 0
    for t in d["topups"]:
        r = cli(
            "topup",
            "--tenant-id",
            t["tenant_id"],
            "--topup-method-id",
            t["topup_method_id"],
            "--amount-credits",
            str(t["amount_credits"]),
            "--reference",
            t["reference"],
            cwd=example_copy,
        )
        assert r.returncode == 0, r.stderr
    r = cli("run", cwd=example_copy, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    pulled = tmp_path / "pulled"
    assert (
        cli("state", "pull", "--billing-state-dir", str(pulled), cwd=example_copy).returncode == 0
    )
    names = {
        r["reason_code"]: r["name"]
        for r in read_table(example_copy / "maintenance-state" / "reason_catalog.csv")
    }
    names[""] = ""
    # the log is append-only: the last row of a work order is its outcome
    log = {row["work_order_id"]: row for row in read_table(pulled / "workorders_log.csv")}
    for e in d["expected"]:
        row = log[e["work_order_id"]]
        got = (row["status"], names[row["reason_code"]])
        got += (int(row["spend_credits"] or 0), int(row["refund_credits"] or 0))
        want = (e["status"], e["reason"], e["spend_credits"], e["refund_credits"])
        assert got == want, e["work_order_id"]
    assert not set(d["not_processed"]) & set(log)
    runs = {
        (r["work_order_id"], r["module_id"]): r for r in read_table(pulled / "module_runs_log.csv")
    }
    assert all(
        runs["A2Cache1", m]["cache_hit"] == "true" for m in ("001", "002", "003", "004", "005")
    )
    assert names[runs["A4Strct1", "002"]["reason_code"]] == "STRICT_ABORTED"
    assert names[runs["A3Partl1", "007"]["reason_code"]] == "MODULE_TIMEOUT"
    assert runs["B2Asset1", "002"]["status"] == "COMPLETED_WITH_EXCEPTION"
    balances = {
        row["tenant_id"]: int(row["balance_credits"])
        for row in read_table(pulled / "tenants_credits.csv")
    }
    assert {t: balances[t] for t in d["balances"]} == d["balances"]
    assert cli("ledger", "verify", cwd=example_copy).returncode == 0
