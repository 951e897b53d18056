"""Quotas at their boundaries, the per-tenant parallel cap, and ``workmill usage`` checked
against sums computed from the pulled CSVs (docs/reference.md "Registry, tiers,
licences, quotas, usage")."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_factory import T1, T2, T3, build_repo, prepare, read_state, work_order
from workmill.orchestrator.dag import Job, Scheduler
from workmill.orchestrator.statuses import ModuleStatus
from workmill.quotas import Usage, check
from workmill.specs import QuotasSpec


def _set_quotas(root: Path, tenant: str, **quotas: int) -> None:
    path = root / "tenants" / tenant / "tenant.yml"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "quotas": quotas}))


def _run(cli, root: Path, env: dict | None = None) -> dict:
    r = cli("run", "--json", cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


@pytest.fixture
def ran(cli, tmp_path):
    """One run over three tenants with quotas, a failure with a refund, a cache hit and
    bought artifacts; returns the repo and the run's rows."""
    root = build_repo(tmp_path / "repo")
    _set_quotas(root, T1, max_work_orders_per_day=2)
    _set_quotas(root, T2, max_credits_per_month=20)
    one = [{"module_id": "001"}]
    for wo in ("Q1aaaaaa", "Q2aaaaaa", "Q3aaaaaa"):  # T1: the third is one over the day's 2
        work_order(root, T1, wo, one)
    for wo in ("M1aaaaaa", "M2aaaaaa", "M3aaaaaa"):  # T2: 10 + 10 = 20 at the limit, then 30
        work_order(root, T2, wo, one)
    work_order(root, T3, "U1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True},
               {"module_id": "002"}, {"module_id": "003", "params": {"fail": "E01"}}],
               mode="PARTIAL_ALLOWED")  # fmt: skip
    work_order(root, T3, "U2aaaaaa", [{"module_id": "001", "reuse_output_type": "cache"}])
    prepare(cli, root, {T1: 100, T2: 100, T3: 200})
    return root, _run(cli, root)


def test_quotas__exactly_at_the_limit_runs_one_over_is_rejected_before_charge(ran, cli, tmp_path):
    root, rows = ran
    codes = {r: rows[r]["status"] for r in rows}
    assert [codes[w] for w in ("Q1aaaaaa", "Q2aaaaaa", "Q3aaaaaa")] == [
        "COMPLETED",
        "COMPLETED",
        "REJECTED",
    ]
    assert (
        "quota max_work_orders_per_day (tenants/T1aaaa/tenant.yml)" in rows["Q3aaaaaa"]["message"]
    )
    assert "2 work order(s) already charged on 2026-11-23, limit 2" in rows["Q3aaaaaa"]["message"]
    assert [codes[w] for w in ("M1aaaaaa", "M2aaaaaa", "M3aaaaaa")] == [
        "COMPLETED",
        "COMPLETED",
        "REJECTED",
    ]
    assert (
        "20 credits spent in 2026-11 + 10 for this work order = 30 > limit 20"
        in (rows["M3aaaaaa"]["message"])
    )
    tables = read_state(cli, root, tmp_path)
    charged = {t["work_order_id"] for t in tables["transactions.csv"] if t["type"] == "SPEND"}
    assert not charged & {"Q3aaaaaa", "M3aaaaaa"}
    names = {
        r["reason_code"] for r in tables["workorders_log.csv"] if r["work_order_id"] == "Q3aaaaaa"
    }
    catalog = (root / "maintenance-state" / "reason_catalog.csv").read_text()
    assert all(f"{c},global,01,000,G22,QUOTA_EXCEEDED" in catalog for c in names)
    # the next day the day's quota is free again (the month's is not)
    rows = _run(cli, root, env={"WORKMILL_NOW": "2026-11-24T09:00:00Z"})
    assert rows["Q3aaaaaa"]["status"] == "COMPLETED"
    assert rows["M3aaaaaa"]["status"] == "REJECTED"


def test_usage__equals_sums_from_the_pulled_csvs(ran, cli, tmp_path):
    root, _rows = ran
    tables = read_state(cli, root, tmp_path)
    txs = {t["transaction_id"]: t for t in tables["transactions.csv"]}
    want: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(int))
    orders: dict[tuple[str, str], set] = defaultdict(set)
    for it in tables["transaction_items.csv"]:
        tx = txs[it["transaction_id"]]
        if tx["type"] not in ("SPEND", "REFUND") or not it["module_id"]:
            continue
        key = (tx["tenant_id"], it["module_id"])
        if tx["type"] == "SPEND":
            want[key]["credits_spent"] += int(it["amount_credits"])
            orders[key].add(tx["work_order_id"])
        else:
            want[key]["credits_refunded"] += int(it["amount_credits"])
    ms: dict[tuple[str, str], int] = defaultdict(int)
    for run in tables["module_runs_log.csv"]:
        if run["status"] == "SKIPPED":
            continue
        key = (run["tenant_id"], run["module_id"])
        want[key]["module_runs"] += 1
        want[key]["cache_hits"] += run["cache_hit"] == "true"
        want[key]["artifacts_published"] += run["artifacts_published"] == "true"
        ms[key] += int(run["duration_ms"] or 0)
    r = cli("usage", "--month", "2026-11", "--format", "json", cwd=root)
    assert r.returncode == 0, r.stderr
    got = {(x["tenant_id"], x["module_id"]): x for x in json.loads(r.stdout)["rows"]}
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        for col in (
            "credits_spent",
            "credits_refunded",
            "module_runs",
            "cache_hits",
            "artifacts_published",
        ):
            assert g[col] == w[col], (key, col)
        assert g["work_orders"] == len(orders[key])
        assert g["credits_net"] == w["credits_spent"] - w["credits_refunded"]
        assert g["module_seconds"] == pytest.approx(ms[key] / 1000, abs=0.001)
    # the figures the run must show: a refund, a cache hit, a published artifact
    assert got[T3, "003"]["credits_refunded"] == 30 and got[T3, "003"]["credits_net"] == 0
    assert got[T3, "001"]["cache_hits"] == 1 and got[T3, "001"]["artifacts_published"] == 1
    csv_out = cli("usage", "--month", "2026-11", "--format", "csv", "--tenant-id", T3, cwd=root)
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("tenant_id,module_id,work_orders") and len(lines) == 4
    empty = cli("usage", "--month", "2026-10", cwd=root)
    assert "no usage in 2026-10" in empty.stdout
    bad = cli("usage", "--month", "2026-13", cwd=root)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


def test_quotas__a_licence_quota_applies_to_the_tenants_it_covers(cli, tmp_path):
    root = build_repo(tmp_path / "repo")
    assert cli("keygen", "--out", str(tmp_path / "k"), cwd=tmp_path).returncode == 0
    with (root / "workmill.yml").open("a") as fh:
        fh.write(f"licence_public_key: {tmp_path / 'k' / 'workmill.pub'}\n")
    r = cli("licence", "issue", "--key", str(tmp_path / "k" / "workmill.key"), "--licensee", "x",
            "--tenant-id", T1, "--expires-at", "2027-01-01T00:00:00Z",
            "--max-work-orders-per-day", "1", cwd=tmp_path)  # fmt: skip
    (root / "licences").mkdir()
    (root / "licences" / "t1.lic").write_text(r.stdout)
    lid = json.loads(cli("licence", "show", "--json", cwd=root).stdout)[0]["licence_id"]
    for wo in ("P1aaaaaa", "P2aaaaaa"):
        work_order(root, T1, wo, [{"module_id": "001"}])
    work_order(root, T2, "P3aaaaaa", [{"module_id": "001"}])
    prepare(cli, root, {T1: 100, T2: 100})
    rows = _run(cli, root)
    assert [rows[w]["status"] for w in ("P1aaaaaa", "P2aaaaaa", "P3aaaaaa")] == [
        "COMPLETED",
        "REJECTED",
        "COMPLETED",
    ]
    assert f"quota max_work_orders_per_day (licence {lid})" in rows["P2aaaaaa"]["message"]


@given(
    st.integers(0, 50),
    st.integers(0, 500),
    st.integers(0, 100),
    st.one_of(st.none(), st.integers(0, 50)),
    st.one_of(st.none(), st.integers(0, 500)),
)
def test_quota_check__allows_exactly_up_to_each_limit(orders, credits, price, per_day, per_month):
    q = QuotasSpec(max_work_orders_per_day=per_day, max_credits_per_month=per_month)
    breach = check([("t", q)], Usage(orders, credits), price, "d", "m")
    over_day = per_day is not None and orders + 1 > per_day
    over_month = per_month is not None and credits + price > per_month
    assert (breach is not None) == (over_day or over_month)
    if breach is not None:
        assert breach.quota == ("max_work_orders_per_day" if over_day else "max_credits_per_month")


def test_scheduler__a_tenant_pool_caps_its_concurrency_others_unaffected():
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def run(job: Job) -> ModuleStatus:
        tenant = job.key[0]
        with lock:
            running[tenant] += 1
            peak[tenant] = max(peak[tenant], running[tenant])
        time.sleep(0.05)
        with lock:
            running[tenant] -= 1
        return ModuleStatus.COMPLETED

    jobs = [Job((t, i), (t, i)) for t in ("capped", "free") for i in range(4)]
    Scheduler(
        jobs,
        4,
        run,
        lambda job, why: None,
        pool_of=lambda job: ("capped", 1) if job.key[0] == "capped" else None,
    ).execute()
    assert peak["capped"] == 1 and peak["free"] >= 2


def test_run__max_parallel_modules_holds_a_tenant_to_its_cap(cli, tmp_path):
    """Two slow modules of one tenant with max_parallel_modules: 1 never overlap, even with
    four slots; another tenant's module runs beside them."""
    root = build_repo(tmp_path / "repo")
    _set_quotas(root, T1, max_parallel_modules=1)
    action = root / "modules" / "004" / "action.yml"
    a = json.loads(action.read_text())
    out = '"$WM_OUTPUTS_DIR/done.txt"'
    a["runs"]["steps"][0]["run"] = f"date +%s.%N > {out}\nsleep 0.6\ndate +%s.%N >> {out}"
    action.write_text(json.dumps(a))
    for tenant, wo in ((T1, "S1aaaaaa"), (T1, "S2aaaaaa"), (T2, "S3aaaaaa")):
        work_order(root, tenant, wo, [{"module_id": "004"}])
    prepare(cli, root, {T1: 100, T2: 100})
    r = cli("run", "--json", "--max-parallel", "4", cwd=root)
    assert r.returncode == 0, r.stderr
    spans = {}
    for wo, tenant in (("S1aaaaaa", T1), ("S2aaaaaa", T1), ("S3aaaaaa", T2)):
        done = next((root / "runtime" / tenant / wo).rglob("done.txt"))
        spans[wo] = tuple(float(x) for x in done.read_text().split())
    (_a1, b1), (a2, _b2) = sorted([spans["S1aaaaaa"], spans["S2aaaaaa"]])
    assert a2 >= b1, spans  # T1's modules ran one after the other
    assert spans["S3aaaaaa"][0] < b1, spans  # T2's module ran beside T1's first one
