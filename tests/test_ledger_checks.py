"""Every `ledger verify` check, each fed a ledger broken in exactly its way (table-driven),
plus the push/top-up refusals and the store's real races (two writers on one revision,
GC while a writer uploads) with real processes on a real local store."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from platform_factory import T1, T2, build_repo, prepare, work_order
from workmill import billing_tables as bt
from workmill.ledger import LedgerTables, verify

TX = bt.COLUMNS[bt.TRANSACTIONS]
IT = bt.COLUMNS[bt.TRANSACTION_ITEMS]
RED = bt.COLUMNS[bt.PROMOTION_REDEMPTIONS]
AT = "2026-11-23T12:00:00Z"
TEN = "Ab12Cd"
WO = "Wo1aaaaa"
REFUNDABLE = {"101003001": True, "101003002": False}


def _tx(*v: object) -> dict[str, str]:
    return dict(zip(TX, (str(x) for x in v), strict=True))


def _it(*v: object) -> dict[str, str]:
    return dict(zip(IT, (str(x) for x in v), strict=True))


def _red(*v: object) -> dict[str, str]:
    return dict(zip(RED, (str(x) for x in v), strict=True))


def sound() -> dict[str, list[dict[str, str]]]:
    """A top-up of 100, a SPEND of 14 (module 10 + artifact 5 - promo 1) and the REFUND
    of that module line, which FAILED with a refundable reason."""
    return {
        "transactions": [
            _tx("Tx000001", TEN, "", "TOPUP", 100, 100, AT, "inv-1", "Pay00001", "AD", ""),
            _tx("Tx000002", TEN, WO, "SPEND", -14, 86, AT, "", "", "", ""),
            _tx("Tx000003", TEN, WO, "REFUND", 14, 100, AT, "", "", "", "refund 14"),
        ],
        "items": [
            _it("It000001", "Tx000001", 1, "TOPUP", "", "", "", "", 100, ""),
            _it("It000002", "Tx000002", 1, "MODULE", "003", "FLK", "", "Mr000001", 10, ""),
            _it("It000003", "Tx000002", 2, "ARTIFACT", "003", "FLK", "", "Mr000001", 5, ""),
            _it("It000004", "Tx000002", 3, "PROMO", "003", "FLK", "P10", "Mr000001", -1, ""),
            _it("It000005", "Tx000003", 1, "MODULE_REFUND", "003", "FLK", "", "Mr000001", 10, ""),
            _it("It000006", "Tx000003", 2, "ARTIFACT_REFUND", "003", "FLK", "", "Mr000001", 5, ""),
            _it(
                "It000007", "Tx000003", 3, "PROMO_REVERSAL", "003", "FLK", "P10", "Mr000001", -1, ""
            ),
        ],
        "redemptions": [
            _red("Rd000001", "P10", TEN, WO, "Tx000002", "APPLIED", 1, AT),
            _red("Rd000002", "P10", TEN, WO, "Tx000003", "REFUNDED", 1, AT),
        ],
        "tenants_credits": [{"tenant_id": TEN, "balance_credits": "100", "updated_at": AT}],
        "module_runs": [
            {
                "module_run_id": "Mr000001",
                "work_order_id": WO,
                "tenant_id": TEN,
                "module_id": "003",
                "status": "FAILED",
                "reason_code": "101003001",
            },
        ],
        "open_work_orders": [],
    }


def _tables(d: dict) -> LedgerTables:
    return LedgerTables(
        transactions=d["transactions"],
        items=d["items"],
        redemptions=d["redemptions"],
        tenants_credits=d["tenants_credits"],
        module_runs=d["module_runs"],
        refundable=REFUNDABLE.get,
        open_work_orders=d["open_work_orders"],
        now=AT,
        unsettled_alert_hours=24,
    )


def _set(d: dict, table: str, i: int, **cells: object) -> None:
    d[table][i] = {**d[table][i], **{k: str(v) for k, v in cells.items()}}


def _balance(d: dict, n: int) -> None:
    _set(d, "tenants_credits", 0, balance_credits=n)


def b_id_format(d):
    _set(d, "items", 0, transaction_item_id="bad id")


def b_id_unique(d):
    _set(d, "items", 1, transaction_item_id="it000001")  # same id, other case


def b_field(d):
    _set(d, "transactions", 0, created_at="yesterday")


def b_amount_sign(d):
    _set(d, "transactions", 2, amount_credits=-14, balance_after=72)
    _balance(d, 72)


def b_balance_chain(d):
    _set(d, "transactions", 1, balance_after=87)


def b_balance_negative(d):
    d["transactions"] = d["transactions"][1:2]
    _set(d, "transactions", 0, balance_after=-14)
    d["items"] = d["items"][1:4]
    d["redemptions"] = d["redemptions"][:1]
    _balance(d, -14)


def b_balance(d):
    _balance(d, 99)


def b_item_orphan(d):
    _set(d, "items", 0, transaction_id="Tx999999")


def b_items_sum(d):
    _set(d, "items", 2, amount_credits=6)


def b_item_kind(d):
    _set(d, "items", 2, kind="MODULE_REFUND")


def b_item_sign(d):
    _set(d, "items", 3, amount_credits=1)
    _set(d, "items", 1, amount_credits=8)


def b_two_spends(d):
    d["transactions"].insert(2, _tx("Tx000009", TEN, WO, "SPEND", -14, 72, AT, "", "", "", ""))
    d["items"] += [_it("It000009", "Tx000009", 1, "MODULE", "003", "FLK", "", "", 14, "")]
    _set(d, "transactions", 3, balance_after=86)
    _balance(d, 86)


def b_refund_before_spend(d):
    d["transactions"] = [d["transactions"][0], d["transactions"][2], d["transactions"][1]]
    _set(d, "transactions", 1, balance_after=114)
    _set(d, "transactions", 2, balance_after=100)


def b_refund_exceeds_spend(d):
    _set(d, "transactions", 2, amount_credits=20, balance_after=106)
    _set(d, "items", 4, amount_credits=16)
    _balance(d, 106)


def b_refund_without_spend(d):
    _set(d, "transactions", 1, work_order_id="Wo2aaaaa")


def b_redemption(d):
    _set(d, "redemptions", 1, amount_credits=2)


def b_redemption_orphan(d):
    _set(d, "redemptions", 0, transaction_id="Tx999999")


def b_topup_reference(d):
    d["transactions"].append(_tx("Tx000010", TEN, "", "TOPUP", 5, 105, AT, "inv-1", "", "AD", ""))
    d["items"].append(_it("It000010", "Tx000010", 1, "TOPUP", "", "", "", "", 5, ""))
    _balance(d, 105)


def b_payment_id(d):
    d["transactions"].append(_tx("Tx000010", TEN, "", "TOPUP", 5, 105, AT, "inv-2", "pay00001", "AD", ""))  # fmt: skip
    d["items"].append(_it("It000010", "Tx000010", 1, "TOPUP", "", "", "", "", 5, ""))
    _balance(d, 105)


def b_unsettled(d):
    d["open_work_orders"] = [{"tenant_id": TEN, "work_order_id": "Wo9aaaaa", "spend_transaction_id": "Tx000002", "started_at": "2026-11-21T12:00:00Z"}]  # fmt: skip


def b_refund_outcome(d):
    _set(d, "module_runs", 0, status="COMPLETED", reason_code="")


def b_refund_policy_not_refundable(d):
    _set(d, "module_runs", 0, reason_code="101003002")


def b_refund_policy_owed(d):
    d["module_runs"].append({"module_run_id": "Mr000002", "work_order_id": WO, "tenant_id": TEN, "module_id": "001", "status": "SKIPPED", "reason_code": "101003001"})  # fmt: skip


def b_refund_unknown_run(d):
    _set(d, "items", 4, module_run_id="Mr999999")


BROKEN: list[tuple[Callable[[dict], None], str, str]] = [
    (b_id_format, "id-format", "transaction_item_id"),
    (b_id_unique, "id-unique", "more than once"),
    (b_field, "field", "not a timestamp"),
    (b_amount_sign, "amount-sign", "REFUND has amount -14"),
    (b_balance_chain, "balance-chain", "expected 100 + -14 = 86"),
    (b_balance_negative, "balance-negative", "-14 < 0"),
    (b_balance, "balance", "sum to 100"),
    (b_item_orphan, "item-orphan", "Tx999999"),
    (b_items_sum, "items-sum", "items sum to 15"),
    (b_item_kind, "item-kind", "MODULE_REFUND item on a SPEND"),
    (b_item_sign, "item-sign", "PROMO item has amount 1"),
    (b_two_spends, "work-order", "2 SPEND transactions"),
    (b_refund_before_spend, "work-order", "REFUND before SPEND"),
    (b_refund_exceeds_spend, "work-order", "REFUND 20 exceeds SPEND 14"),
    (b_refund_without_spend, "work-order", "REFUND but no SPEND"),
    (b_redemption, "redemption", "REFUNDED events say 2"),
    (b_redemption_orphan, "redemption", "does not exist"),
    (b_topup_reference, "topup-reference", "'inv-1' is used by more than one TOPUP"),
    (b_payment_id, "payment-id", "used by more than one transaction"),
    (b_unsettled, "unsettled", "RUNNING for 48 h"),
    (b_refund_outcome, "refund-outcome", "refunded but COMPLETED"),
    (b_refund_policy_not_refundable, "refund-policy", "101003002 is not refundable"),
    (b_refund_policy_owed, "refund-policy", "module 001 SKIPPED with refundable reason"),
    (b_refund_unknown_run, "refund-outcome", "no recorded outcome"),
]


def test_verify__the_sound_ledger_passes_every_check():
    assert verify(_tables(sound())) == []


@pytest.mark.parametrize(("breaks", "check", "words"), BROKEN, ids=[b[0].__name__[2:] for b in BROKEN])  # fmt: skip
def test_verify__each_check_catches_its_breakage(breaks, check, words):
    d = sound()
    breaks(d)
    found = verify(_tables(d))
    mine = [v for v in found if v.check == check]
    assert mine, (check, [str(v) for v in found])
    assert any(words in str(v) for v in mine), [str(v) for v in mine]
    assert all("\n" not in str(v) for v in found)


def test_verify__a_raw_newline_in_a_row_stays_on_one_line():
    d = sound()
    _set(d, "transactions", 0, transaction_id="Tx\n00001")
    found = verify(_tables(d))
    assert found and all("\n" not in str(v) and "\\n" in str(v) for v in found[:1])


# ---------------------------------------------------------------- through the CLI


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


def _topup(cli, root, tenant, amount, ref, pid=""):
    args = ["topup", "--tenant-id", tenant, "--topup-method-id", "AD"]
    args += ["--amount-credits", str(amount), "--reference", ref]
    return cli(*args, *(["--payment-id", pid] if pid else []), cwd=root)


def _append_csv(path: Path, row: dict[str, str]) -> None:
    with path.open(newline="") as fh:
        header = next(csv.reader(fh))
    with path.open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow([row.get(c, "") for c in header])


def test_state_push__refuses_a_reused_topup_reference_and_payment_id(cli, repo, tmp_path):
    prepare(cli, repo, {})
    assert _topup(cli, repo, T1, 50, "inv-9", "PayA0001").returncode == 0
    r = _topup(cli, repo, T2, 50, "inv-other", "paya0001")  # the same payment, other case
    assert r.returncode == 1 and "payment id paya0001 was already used" in r.stderr
    for ref, pid, check in (("inv-9", "", "topup-reference"), ("inv-10", "PayA0001", "payment-id")):  # fmt: skip
        wc = tmp_path / f"wc-{check}"
        assert cli("state", "pull", "--billing-state-dir", str(wc), cwd=repo).returncode == 0
        with (wc / bt.TRANSACTIONS).open(newline="") as fh:
            txs = list(csv.DictReader(fh))
        tx = {**txs[-1], "transaction_id": "TxDup001", "amount_credits": "5", "balance_after": "55"}
        _append_csv(wc / bt.TRANSACTIONS, {**tx, "reference": ref, "payment_id": pid})
        _append_csv(wc / bt.TRANSACTION_ITEMS, {"transaction_item_id": "ItDup001", "transaction_id": "TxDup001", "line_no": "1", "kind": "TOPUP", "amount_credits": "5"})  # fmt: skip
        credits = (wc / bt.TENANTS_CREDITS).read_text().replace(f"{T1},50,", f"{T1},55,")
        (wc / bt.TENANTS_CREDITS).write_text(credits)
        r = cli("state", "push", "--billing-state-dir", str(wc), cwd=repo)
        assert r.returncode == 1, r.stdout + r.stderr
        assert check in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def test_ledger_verify__reports_a_work_order_running_too_long(cli, repo):
    work_order(repo, T1, "Longaaaa", [{"module_id": "001"}])
    prepare(cli, repo, {T1: 100})
    from workmill.backends import open_billing_store
    from workmill.repo import PlatformRepo

    store = open_billing_store(PlatformRepo.open(repo))
    state = store.load()
    state.append(bt.WORKORDERS_LOG, [{"work_order_id": "Longaaaa", "tenant_id": T1, "status": "RUNNING", "mode": "STRICT", "started_at": "2026-11-21T10:00:00Z"}])  # fmt: skip
    store.commit(state)
    r = cli("ledger", "verify", cwd=repo)  # WORKMILL_NOW is 2026-11-23T12:00:00Z
    assert r.returncode == 1 and "unsettled" in r.stderr and "RUNNING for 50 h" in r.stderr
    r = cli("ledger", "verify", cwd=repo, env={"WORKMILL_NOW": "2026-11-21T12:00:00Z"})
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- store races

_WRITER = textwrap.dedent(
    """
    import json, sys
    from workmill.errors import StateConflict
    from workmill.repo import PlatformRepo
    from workmill.backends import open_billing_store
    import pathlib, time
    root, ref, amount, peers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = open_billing_store(PlatformRepo.open(root))
    state = store.load()
    state.topup("T1aaaa", "AD", amount, ref)
    out = {"base": state.revision}
    barrier = pathlib.Path(root) / ".barrier"   # every writer has loaded before any commits
    barrier.mkdir(exist_ok=True)
    (barrier / ref).touch()
    deadline = time.time() + 60
    while len(list(barrier.iterdir())) < peers and time.time() < deadline:
        time.sleep(0.01)
    try:
        out["won"] = store.commit(state).revision   # no lock: the manifest name decides
    except StateConflict as exc:
        out["conflict"] = str(exc)
        out["retried"] = store.commit_with_retry(
            lambda s: s.topup("T1aaaa", "AD", amount, ref)
        ).transaction.balance_after
    print(json.dumps(out))
    """
)


def _writer(root: Path, ref: str, amount: int, sleep: str, peers: int = 1) -> subprocess.Popen:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "WORKMILL_TEST_COMMIT_SLEEP": sleep}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), ref, str(amount), str(peers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_store__two_processes_race_for_one_revision_exactly_one_wins(cli, repo):
    prepare(cli, repo, {T1: 10})
    procs = [_writer(repo, f"race-{i}", 1 + i, "0.3", peers=2) for i in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert results[0]["base"] == results[1]["base"]  # both built on the same revision
    winners = [r for r in results if "won" in r]
    losers = [r for r in results if "conflict" in r]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "published revision" in losers[0]["conflict"] or "moved" in losers[0]["conflict"]
    assert losers[0]["retried"] == 13  # 10 + 1 + 2: the retry applied on top of the winner
    r = cli("balance", "--tenant-id", T1, "--json", cwd=repo)
    assert json.loads(r.stdout)["balances"][T1] == 13
    assert cli("ledger", "verify", cwd=repo).returncode == 0


def test_store__gc_racing_a_writer_keeps_what_the_writer_uploads(cli, repo):
    prepare(cli, repo, {T1: 10})
    from workmill.backends import open_billing_store
    from workmill.repo import PlatformRepo

    store = open_billing_store(PlatformRepo.open(repo))
    for i in range(6):
        store.commit_with_retry(lambda s, i=i: s.topup(T1, "AD", 1, f"pre-{i}"))
    writer = _writer(repo, "during-gc", 5, "1.0")  # uploads its tables, then pauses
    import time

    time.sleep(0.6)
    store.keep_revisions = 1
    deleted = store.gc()
    assert deleted  # old revisions went
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    result = json.loads(out)
    assert "won" in result, result  # its table assets survived the collection
    assert store.load().balance(T1) == 10 + 6 + 5
    assert cli("ledger", "verify", cwd=repo).returncode == 0
