"""What a SPEND paid for is what runs, whatever happens to the file (docs/reference.md
"Billing rules"): the recorded plan, charged work orders later disabled or deleted,
per-work-order error isolation, and REJECTED work orders planned again.

Every test goes through the real CLI on a real local store; the crash tests SIGKILL
the whole process group of `workmill run` after its SPEND.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from platform_factory import T1, T2, build_repo, prepare, read_state, work_order
from workmill import billing_tables as bt
from workmill.backends import open_billing_store


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


def _run(cli, root: Path, *extra: str) -> dict:
    r = cli("run", "--json", *extra, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return {
        (row["tenant_id"], row["work_order_id"]): row for row in json.loads(r.stdout)["work_orders"]
    }


def _kill_after_spend(root: Path, runtime: Path, started: Path) -> None:
    """`workmill run` in its own process group, SIGKILLed (whole group) once ``started``
    (a module workspace, made after the SPEND commit) exists."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workmill", "run", "--runtime-dir", str(runtime)],
        cwd=root,
        env={**os.environ, "WORKMILL_NOW": FIXED_NOW},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not started.exists():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert started.exists(), "the run never started its module"


def _log(tables: dict, wo: str) -> list[str]:
    return [r["status"] for r in tables[bt.WORKORDERS_LOG] if r["work_order_id"] == wo]


def _txs(tables: dict, wo: str, kind: str) -> list[dict]:
    return [t for t in tables[bt.TRANSACTIONS] if t["work_order_id"] == wo and t["type"] == kind]


def test_run__resume_runs_the_paid_plan_not_the_edited_file(cli, repo, tmp_path):
    """Kill after SPEND, swap the cheap module for expensive ones, resume on a fresh
    runtime dir: only the paid module runs, nothing unpaid is published, settle works."""
    path = work_order(repo, T1, "E1aaaaaa", [{"module_id": "004", "params": {"secs": 2}}])
    prepare(cli, repo, {T1: 500, T2: 100})
    first = tmp_path / "rt1"
    _kill_after_spend(repo, first, first / T1 / "E1aaaaaa" / "004")
    t = read_state(cli, repo, tmp_path)
    assert _log(t, "E1aaaaaa") == ["RUNNING"] and len(_txs(t, "E1aaaaaa", "SPEND")) == 1
    plans = t[bt.WORKORDER_PLANS]
    assert [p["work_order_id"] for p in plans] == ["E1aaaaaa"]
    recorded = json.loads(plans[0]["plan"])
    assert [m["module_id"] for m in recorded["modules"]] == ["004"]
    assert len(recorded["modules"][0]["module_digest"]) == 64

    expensive = [
        {"module_id": "001", "purchase_release_artifacts": True},
        {"module_id": "002", "purchase_release_artifacts": True},
        {"module_id": "003", "params": {"fail": "E01"}},
    ]
    path.write_text(json.dumps({"work_order_id": "E1aaaaaa", "modules": expensive}))
    work_order(repo, T2, "E2aaaaaa", [{"module_id": "001"}])  # another tenant, same run
    rows = _run(cli, repo, "--runtime-dir", str(tmp_path / "rt2"))

    e1 = rows[(T1, "E1aaaaaa")]
    assert e1["status"] == "COMPLETED"
    assert [m["module_id"] for m in e1["modules"]] == ["004"]
    assert (e1["spend_credits"], e1["refund_credits"]) == (5, 0)
    assert "edited since it was charged" in e1["message"]
    assert rows[(T2, "E2aaaaaa")]["status"] == "COMPLETED"
    assert not (repo / ".workmill" / "releases" / f"wo-{T1}-E1aaaaaa").exists()
    assert not (tmp_path / "rt2" / T1 / "E1aaaaaa" / "001").exists()
    t = read_state(cli, repo, tmp_path)
    assert _log(t, "E1aaaaaa") == ["RUNNING", "COMPLETED"]
    assert len(_txs(t, "E1aaaaaa", "SPEND")) == 1 and len(_txs(t, "E1aaaaaa", "REFUND")) == 1
    runs = [r["module_id"] for r in t[bt.MODULE_RUNS_LOG] if r["work_order_id"] == "E1aaaaaa"]
    assert runs == ["004"]
    assert {r["tenant_id"]: r["balance_credits"] for r in t[bt.TENANTS_CREDITS]}[T1] == "495"
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def test_run__charged_then_disabled_or_deleted_is_still_settled(cli, repo, tmp_path):
    a = work_order(repo, T1, "D1aaaaaa", [{"module_id": "004", "params": {"secs": 1}}])
    b = work_order(repo, T1, "D2aaaaaa", [{"module_id": "001"}, {"module_id": "003", "params": {"fail": "E01"}}], mode="PARTIAL_ALLOWED")  # fmt: skip
    prepare(cli, repo, {T1: 500})
    rt = tmp_path / "rt1"
    _kill_after_spend(repo, rt, rt / T1 / "D1aaaaaa" / "004")
    t = read_state(cli, repo, tmp_path)
    assert _log(t, "D1aaaaaa") == ["RUNNING"] and _log(t, "D2aaaaaa") == ["RUNNING"]

    doc = json.loads(a.read_text())
    a.write_text(json.dumps({**doc, "enabled": False}))
    b.unlink()
    rows = _run(cli, repo, "--runtime-dir", str(tmp_path / "rt2"))

    d1, d2 = rows[(T1, "D1aaaaaa")], rows[(T1, "D2aaaaaa")]
    assert d1["status"] == "COMPLETED" and "disabled since it was charged" in d1["message"]
    assert d2["status"] == "PARTIALLY_COMPLETED" and "deleted since it was charged" in d2["message"]
    assert (d2["spend_credits"], d2["refund_credits"]) == (40, 30)
    t = read_state(cli, repo, tmp_path)
    for wo in ("D1aaaaaa", "D2aaaaaa"):
        assert _log(t, wo)[-1] != "RUNNING", wo
        assert len(_txs(t, wo, "REFUND")) == 1, wo
    assert cli("ledger", "verify", cwd=repo).returncode == 0
    again = _run(cli, repo)  # nothing open any more: the next run has nothing to finish
    assert (T1, "D2aaaaaa") not in again
    assert again[(T1, "D1aaaaaa")]["status"] == "SKIPPED"


def test_run__one_bad_work_order_never_stops_the_others(cli, repo, tmp_path):
    """A reused id, ids differing only in case and a corrupt record each reject or fail
    that work order alone; every other work order is charged, run and settled."""
    work_order(repo, T1, "R1aaaaaa", [{"module_id": "001"}])
    prepare(cli, repo, {T1: 500, T2: 500})
    assert _run(cli, repo)[(T1, "R1aaaaaa")]["status"] == "COMPLETED"

    work_order(repo, T2, "R1aaaaaa", [{"module_id": "001"}])  # id already T1's
    work_order(repo, T1, "CsEaaaaa", [{"module_id": "001"}])
    work_order(repo, T2, "cSeaaaaa", [{"module_id": "001"}])  # differs only in case
    work_order(repo, T2, "OKaaaaaa", [{"module_id": "001"}])
    # a corrupt record: the log says RUNNING but there is no SPEND behind it
    work_order(repo, T1, "Brokenaa", [{"module_id": "001"}])
    from workmill.repo import PlatformRepo

    store = open_billing_store(PlatformRepo.open(repo))
    state = store.load()
    state.append(bt.WORKORDERS_LOG, [{"work_order_id": "Brokenaa", "tenant_id": T1, "status": "RUNNING", "mode": "STRICT", "spend_credits": "10", "started_at": FIXED_NOW}])  # fmt: skip
    store.commit(state)

    r = cli("run", "--json", cwd=repo)
    assert "Traceback" not in r.stderr
    rows = {(x["tenant_id"], x["work_order_id"]): x for x in json.loads(r.stdout)["work_orders"]}
    reused = rows[(T2, "R1aaaaaa")]
    assert reused["status"] == "REJECTED" and f"already used by tenant {T1}" in reused["message"]
    assert reused["reason_name"] == "WORK_ORDER_INVALID"
    for key in ((T1, "CsEaaaaa"), (T2, "cSeaaaaa")):
        assert rows[key]["status"] == "REJECTED" and "only in case" in rows[key]["message"]
    assert rows[(T2, "OKaaaaaa")]["status"] == "COMPLETED"
    broken = rows[(T1, "Brokenaa")]
    assert broken["status"] == "UNSETTLED" and "no SPEND" in broken["message"]
    assert r.returncode == 1  # an operator must look at the corrupt record
    assert "Brokenaa" in r.stderr
    t = read_state(cli, repo, tmp_path)
    assert not [x for x in t[bt.TRANSACTIONS] if x["work_order_id"].lower() == "csaaaaa"]
    assert [x["tenant_id"] for x in t[bt.TRANSACTIONS] if x["work_order_id"] == "R1aaaaaa"] == [T1, T1]  # fmt: skip
    assert len(_txs(t, "OKaaaaaa", "REFUND")) == 1


def test_run__rejected_work_order_is_planned_again_and_logged_once_per_change(cli, repo, tmp_path):
    path = work_order(repo, T1, "Q1aaaaaa", [{"module_id": "001"}])
    prepare(cli, repo, {})
    first = _run(cli, repo)[(T1, "Q1aaaaaa")]
    assert (first["status"], first["reason_name"]) == ("REJECTED", "INSUFFICIENT_CREDITS")
    again = _run(cli, repo)[(T1, "Q1aaaaaa")]
    assert (again["status"], again["reason_code"]) == ("REJECTED", first["reason_code"])
    assert _log(read_state(cli, repo, tmp_path), "Q1aaaaaa") == ["REJECTED"]  # unchanged

    path.write_text(path.read_text().replace('"001"', '"002"'))  # invalid now: 002 needs 001
    edited = _run(cli, repo)[(T1, "Q1aaaaaa")]
    assert edited["status"] == "REJECTED" and edited["reason_name"] == "WORK_ORDER_INVALID"
    path.write_text(path.read_text().replace('"002"', '"001"'))
    _run(cli, repo)  # back to INSUFFICIENT_CREDITS: reason changed, logged again
    assert _log(read_state(cli, repo, tmp_path), "Q1aaaaaa") == ["REJECTED"] * 3

    r = cli("topup", "--tenant-id", T1, "--topup-method-id", "AD", "--amount-credits", "50", "--reference", "r1", cwd=repo)  # fmt: skip
    assert r.returncode == 0, r.stderr
    done = _run(cli, repo)[(T1, "Q1aaaaaa")]
    assert (done["status"], done["spend_credits"]) == ("COMPLETED", 10)
    assert _log(read_state(cli, repo, tmp_path), "Q1aaaaaa") == ["REJECTED"] * 3 + ["RUNNING", "COMPLETED"]  # fmt: skip
    assert cli("ledger", "verify", cwd=repo).returncode == 0
