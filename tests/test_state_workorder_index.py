"""The derived per-work-order index and promo-usage counters (history-independent lookups)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_billing_support import OTHER, TENANT, seeded_store
from workmill import billing_tables as bt
from workmill.errors import StateError
from workmill.fsio import sha256_bytes
from workmill.ledger import OrderLine, RefundLine, parse_redemptions, promo_usage
from workmill.state import PROMO_USAGE, WORKORDER_INDEX, BillingStore
from workmill.state import workorder_index as wi
from workmill.state.manifest import Manifest, PartitionRef, TableRef, manifest_asset

WO_A, WO_B, WO_C = "Qw3Er5Ty", "As4Df6Gh", "Zx7Cv8Bn"


@pytest.fixture
def store(tmp_path, monkeypatch) -> BillingStore:
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    s = seeded_store(tmp_path / "repo")
    return s


def _spend(store: BillingStore, wo: str, promos=("WELCOME10",), tenant: str = TENANT):
    def go(s):
        q = s.quote(tenant, [OrderLine("001", True), OrderLine("003")], list(promos))
        return s.spend(q, tenant, wo)

    return store.commit_with_retry(go)


def _log(wo: str, status: str, tenant: str = TENANT, **kw) -> dict[str, str]:
    return {"work_order_id": wo, "tenant_id": tenant, "status": status, "mode": "STRICT", **kw}


def _full_usage(store: BillingStore):
    s = store.load()
    return promo_usage(parse_redemptions(s.rows(bt.PROMOTION_REDEMPTIONS)))


def _republish(store: BillingStore, change) -> None:
    """Publish the head manifest changed by ``change(tables)`` as the next revision (a tamperer
    with write access who keeps sha256s consistent)."""
    head = store.head_revision()
    m = store.read_manifest(head)
    tables = dict(m.tables)
    change(tables)
    new = Manifest(head + 1, head, m.created_at, tables)
    store.releases.create_asset(store.tag, manifest_asset(head + 1), new.to_json())


def _put(store: BillingStore, name: str, data: bytes) -> PartitionRef:
    store.releases.create_asset(store.tag, name, data)
    return PartitionRef("", name, sha256_bytes(data), 0, len(data))


def test_lookups__spend_quote_and_refund_read_only_index_buckets(store, monkeypatch):
    _spend(store, WO_A)
    read: list[str] = []
    real = store.releases.read_asset
    monkeypatch.setattr(store.releases, "read_asset", lambda tag, a: read.append(a) or real(tag, a))
    s = store.load()
    read.clear()
    q = s.spend_quote(WO_A)
    assert q is not None and q.total == 205 and q.promo_codes == ("WELCOME10",)
    s.refund(WO_A, {"001": RefundLine("FAILED", "001010001")})
    s.prepare_commit()
    assert s.verify_changes() == []
    table_reads = [a for a in read if a.startswith("t-")]
    assert table_reads, "the index bucket must be read"
    assert all("workorder_index--" + wi.bucket(WO_A) in a for a in table_reads), table_reads
    # the commit itself reads only the last chunk of each partition it extends
    store.commit(s)
    assert not s.is_loaded(bt.TRANSACTIONS) and not s.is_loaded(bt.PROMOTION_REDEMPTIONS)
    assert store.verify() == []


def test_lookups__same_answers_as_the_tables(store):
    _spend(store, WO_A)
    _spend(store, WO_B, promos=())
    store.commit_with_retry(lambda s: s.refund(WO_A, {}))
    s = store.load()
    for wo in (WO_A, WO_B, WO_C):
        want = [r for r in s.rows(bt.TRANSACTIONS) if r["work_order_id"] == wo]
        fresh = store.load()
        got = fresh.work_order_record(wo).transactions
        assert [dict(r) for r in got] == [
            {c: r[c] for c in bt.COLUMNS[bt.TRANSACTIONS]} for r in want
        ]
    assert [t.type.value for t in store.load().transactions_for(WO_A)] == ["SPEND", "REFUND"]
    assert store.load().spend_quote(WO_C) is None
    assert store.load().work_order_record(WO_B).of_type("REFUND") == []


def test_lookups__see_rows_added_in_the_same_state(store):
    s = store.load()
    q = s.quote(TENANT, [OrderLine("003")])
    s.spend(q, TENANT, WO_A)
    with pytest.raises(Exception, match="already has a SPEND"):
        s.spend(q, TENANT, WO_A)
    s.append(bt.WORKORDERS_LOG, [_log(WO_A, "RUNNING")])
    assert s.work_order_status(TENANT, WO_A)["status"] == "RUNNING"
    s.refund(WO_A, {})
    with pytest.raises(Exception, match="already has a REFUND"):
        s.refund(WO_A, {})
    store.commit(s)
    assert store.verify() == []


def test_status__running_then_terminal_per_tenant(store):
    store.commit_with_retry(
        lambda s: s.append(bt.WORKORDERS_LOG, [_log(WO_A, "RUNNING", spend_credits="5")])
    )
    s = store.load()
    row = s.work_order_status(TENANT, WO_A)
    assert row is not None and (row["status"], row["spend_credits"]) == ("RUNNING", "5")
    assert s.work_order_status(OTHER, WO_A) is None
    assert s.work_order_status(TENANT, WO_B) is None
    store.commit_with_retry(lambda s: s.append(bt.WORKORDERS_LOG, [_log(WO_A, "COMPLETED")]))
    store.commit_with_retry(
        lambda s: s.append(bt.WORKORDERS_LOG, [_log(WO_A, "REJECTED", tenant=OTHER)])
    )
    s = store.load()
    assert s.work_order_status(TENANT, WO_A)["status"] == "COMPLETED"
    assert s.work_order_status(OTHER, WO_A)["status"] == "REJECTED"
    assert store.verify() == []


def test_index__values_with_newlines_commas_and_backslashes_round_trip(store):
    odd = 'a,b "q"\nsecond\\line\r\nend'
    store.commit_with_retry(
        lambda s: s.append(bt.WORKORDERS_LOG, [_log(WO_A, "FAILED", reason_code=odd)])
    )
    assert store.load().work_order_status(TENANT, WO_A)["reason_code"] == odd
    assert store.verify() == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=12), min_size=1, max_size=11))
def test_encode__decode_is_lossless(values):
    cols = bt.COLUMNS[bt.TRANSACTIONS]
    row = {c: (values[i] if i < len(values) else "") for i, c in enumerate(cols)}
    row["work_order_id"] = WO_A
    enc = wi.encode(WO_A, bt.TRANSACTIONS, row)
    assert all("\n" not in v and "\r" not in v for v in enc.values())
    assert wi.decode(enc) == (WO_A, bt.TRANSACTIONS, row)


def test_promo_usage__counter_equals_full_count_through_spends_and_refunds(store):
    assert store.load().promo_usage().total == {}
    _spend(store, WO_A)
    _spend(store, WO_B)
    assert store.load().promo_usage() == _full_usage(store)
    assert store.load().promo_usage().total == {"WELCOME10": 2}
    # a refund that reverses only part of the discount keeps the use counted
    store.commit_with_retry(lambda s: s.refund(WO_B, {"003": RefundLine("FAILED", "x")}))
    assert store.load().promo_usage().total == {"WELCOME10": 2}
    # a full reversal stops counting
    store.commit_with_retry(
        lambda s: s.refund(
            WO_A, {"001": RefundLine("FAILED", "x"), "003": RefundLine("FAILED", "x")}
        )
    )
    u = store.load().promo_usage()
    assert u == _full_usage(store)
    assert u.total == {"WELCOME10": 1} and u.per_tenant == {("WELCOME10", TENANT): 1}
    assert store.verify() == []


def test_promo_usage__counts_uses_of_the_same_state(store):
    s = store.load()
    q = s.quote(TENANT, [OrderLine("003")], ["WELCOME10"])
    s.spend(q, TENANT, WO_A)
    assert s.promo_usage().total == {"WELCOME10": 1}
    s.spend(s.quote(TENANT, [OrderLine("003")], ["WELCOME10"]), TENANT, WO_B)
    assert s.promo_usage().per_tenant == {("WELCOME10", TENANT): 2}


def test_derived_tables__cannot_be_written_directly(store):
    s = store.load()
    with pytest.raises(StateError, match="derived"):
        s.append(WORKORDER_INDEX, [{"work_order_id": WO_A}])
    with pytest.raises(StateError, match="derived"):
        s.set_rows(PROMO_USAGE, [])


def test_verify__catches_a_tampered_index(store):
    _spend(store, WO_A)
    assert store.verify() == []
    ref = store.read_manifest(store.head_revision()).tables[WORKORDER_INDEX]
    part = next(p for p in ref.partitions if p.group == wi.bucket(WO_A))
    data = store.releases.read_asset(store.release_tag(part.release), part.asset)
    forged = data.replace(b",SPEND,-205,", b",SPEND,-5,")
    assert forged != data

    def change(tables):
        new = _put(store, "t-r000000099-forged0-workorder_index--x.csv", forged)
        parts = [p for p in tables[WORKORDER_INDEX].partitions if p.key != part.key]
        parts.append(PartitionRef(part.key, new.asset, new.sha256, part.rows, new.bytes))
        tables[WORKORDER_INDEX] = TableRef(True, tuple(parts), ref.columns)

    _republish(store, change)
    problems = [str(v) for v in store.verify()]
    assert any("derived-index" in p and WO_A in p for p in problems), problems


def test_verify__catches_a_tampered_promo_counter(store):
    _spend(store, WO_A)

    def change(tables):
        data = b"promo_code,tenant_id,uses\nWELCOME10,Ab12Cd,0\n"
        p = _put(store, "t-r000000099-forged0-promo_usage.csv", data)
        tables[PROMO_USAGE] = TableRef(
            False,
            (PartitionRef("", p.asset, p.sha256, 1, p.bytes),),
            ("promo_code", "tenant_id", "uses"),
        )

    _republish(store, change)
    problems = [str(v) for v in store.verify()]
    assert any("derived-promo-usage" in p for p in problems), problems


def test_legacy_store__lookups_fall_back_and_next_commit_builds_the_index(store):
    _spend(store, WO_A)
    store.commit_with_retry(lambda s: s.append(bt.WORKORDERS_LOG, [_log(WO_A, "RUNNING")]))

    def strip(tables):
        del tables[WORKORDER_INDEX]
        del tables[PROMO_USAGE]

    _republish(store, strip)
    s = store.load()
    assert not s.index_ready
    assert s.work_order_status(TENANT, WO_A)["status"] == "RUNNING"
    assert s.spend_quote(WO_A).total == 205
    assert s.promo_usage().total == {"WELCOME10": 1}
    store.commit_with_retry(lambda s: s.refund(WO_A, {}))
    s = store.load()
    assert s.index_ready and s.promo_usage_ready
    assert [t.type.value for t in s.transactions_for(WO_A)] == ["SPEND", "REFUND"]
    assert store.verify() == []


def test_push__extends_the_index_and_pull_does_not_export_it(store, tmp_path):
    _spend(store, WO_A)
    wc = tmp_path / "wc"
    store.export(wc)
    assert not (wc / WORKORDER_INDEX).exists() and not (wc / PROMO_USAGE).exists()
    with (wc / bt.WORKORDERS_LOG).open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow([WO_A, TENANT, "FAILED", "STRICT"] + [""] * 7)
    result = store.push(wc)
    assert bt.WORKORDERS_LOG in result.changed
    assert store.load().work_order_status(TENANT, WO_A)["status"] == "FAILED"
    assert store.verify() == []


def test_cli__ledger_verify_reports_a_tampered_index(cli, store):
    root = Path(store.releases.root).parent.parent
    _spend(store, WO_A)
    assert cli("ledger", "verify", cwd=root).returncode == 0
    ref = store.read_manifest(store.head_revision()).tables[WORKORDER_INDEX]
    part = next(p for p in ref.partitions if p.group == wi.bucket(WO_A))
    data = store.releases.read_asset(store.release_tag(part.release), part.asset)
    pad = "," * (len(wi.WORKORDER_INDEX_COLUMNS) - 5)
    forged = data + f"{WO_B},log,{WO_B},{TENANT},COMPLETED{pad}\n".encode()

    def change(tables):
        new = _put(store, "t-r000000099-forged1-workorder_index--y.csv", forged)
        parts = [p for p in tables[WORKORDER_INDEX].partitions if p.key != part.key]
        parts.append(PartitionRef(part.key, new.asset, new.sha256, part.rows + 1, new.bytes))
        tables[WORKORDER_INDEX] = TableRef(True, tuple(parts), ref.columns)

    _republish(store, change)
    r = cli("ledger", "verify", cwd=root)
    assert r.returncode == 1
    assert "derived-index" in r.stdout + r.stderr and "Traceback" not in r.stderr
