"""Concurrency: 4 `workmill run` and 8 `workmill topup` processes at once on one store.

No lost update (every top-up lands exactly once and balances add up), no
double charge (one SPEND and one REFUND per work order), and the ledger verifies.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from reliability_support import (
    TOPUPS,
    History,
    check_invariants,
    cli_run,
    popen_workmill,
    prepared_repo,
    pull_tables,
)

from platform_factory import T1, T2, T3

# (tenant, reference, amount); the last two repeat a reference: one top-up each
NEW_TOPUPS = [
    (T1, "c-1", 11),
    (T2, "c-2", 22),
    (T3, "c-3", 33),
    (T1, "c-4", 44),
    (T2, "c-5", 55),
    (T3, "c-6", 66),
    (T1, "c-1", 11),
    (T3, "c-6", 66),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return prepared_repo(cli_run, tmp_path_factory.mktemp("conc") / "repo")


def test_concurrency__4_runs_8_topups_no_lost_update_no_double_charge(template, tmp_path):
    root = template
    procs = []
    for i in range(8):
        if i % 2 == 0 and len([p for p in procs if p[0] == "run"]) < 4:
            procs.append(("run", popen_workmill(root, "run", "--json")))
        t, ref, amount = NEW_TOPUPS[i]
        args = ("topup", "--tenant-id", t, "--topup-method-id", "AD")
        args += ("--amount-credits", str(amount), "--reference", ref)
        procs.append(("topup", popen_workmill(root, *args)))
    assert Counter(kind for kind, _ in procs) == {"run": 4, "topup": 8}
    for kind, p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, f"{kind}: {err}"
        assert "Traceback" not in err
        if kind == "run":
            json.loads(out)  # a whole summary, not a torn one
    final = cli_run("run", "--json", cwd=root)  # finishes whatever a busy overlap left
    assert final.returncode == 0, final.stderr

    violations = check_invariants(root, tmp_path / "pulled", History(), finished=True)
    assert not violations, "\n".join(violations)
    t = pull_tables(root, tmp_path / "pulled")
    topups = [x for x in t["transactions.csv"] if x["type"] == "TOPUP"]
    refs = Counter((x["tenant_id"], x["reference"]) for x in topups)
    expected_refs = {(tn, ref) for tn, ref, _ in NEW_TOPUPS} | {(tn, f"t-{tn}") for tn in TOPUPS}
    assert set(refs) == expected_refs and set(refs.values()) == {1}, refs

    # balances re-derived from the work-order log, not from transactions
    expected = Counter(TOPUPS)
    for tn, amount in {(tn, ref): a for tn, ref, a in NEW_TOPUPS}.items():
        expected[tn[0]] += amount
    for row in t["workorders_log.csv"]:
        if row["status"] in {"COMPLETED", "PARTIALLY_COMPLETED", "FAILED"}:
            expected[row["tenant_id"]] -= int(row["spend_credits"]) - int(row["refund_credits"])
    balances = {r["tenant_id"]: int(r["balance_credits"]) for r in t["tenants_credits.csv"]}
    assert {tn: balances.get(tn, 0) for tn in expected} == dict(expected)
    spends = Counter(x["work_order_id"] for x in t["transactions.csv"] if x["type"] == "SPEND")
    refunds = Counter(x["work_order_id"] for x in t["transactions.csv"] if x["type"] == "REFUND")
    assert set(spends.values()) == {1} and spends == refunds
    settled = {r["work_order_id"] for r in t["workorders_log.csv"] if r["status"] != "REJECTED"}
    assert set(spends) == settled
    assert cli_run("ledger", "verify", cwd=root).returncode == 0
