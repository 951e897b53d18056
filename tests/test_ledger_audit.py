"""The streamed full audit (`ledger verify` over a stored revision) finds exactly what the
ledger checks find over the same rows held in memory: every one of the checks in
tests/test_ledger_checks.py, with the broken ledger stored in several partitions, read
in one process and in two."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_billing_support import TENANT, seeded_store
from test_ledger_checks import AT, BROKEN, REFUNDABLE, _tables, sound
from test_state_workorder_index import WO_A, WO_B, _put, _republish, _spend
from workmill import billing_tables as bt
from workmill.fsio import sha256_bytes
from workmill.ledger import verify
from workmill.state import TOPUP_REFERENCES, WORKORDER_INDEX, BillingStore, audit
from workmill.state.manifest import Manifest, PartitionRef, TableRef, manifest_asset
from workmill.state.releases import LocalReleaseStore
from workmill.state.workorder_index import OPEN_COLUMNS, OPEN_WORK_ORDERS
from workmill.tables import render_table

TAG = "billing-state"
PARTITIONED = {
    bt.TRANSACTIONS: "transactions",
    bt.TRANSACTION_ITEMS: "items",
    bt.PROMOTION_REDEMPTIONS: "redemptions",
    bt.MODULE_RUNS_LOG: "module_runs",
}


def stored(d: dict, root: Path) -> BillingStore:
    """A store whose one revision holds ``d``'s rows, each table split in two months."""
    releases = LocalReleaseStore(root / "releases")
    releases.create_tag(TAG)

    def put(table: str, key: str, header: tuple[str, ...], rows: list) -> PartitionRef:
        data = render_table(header, rows)
        asset = f"t-r000000001-test0000-{table.removesuffix('.csv')}{'--' + key if key else ''}.csv"
        releases.create_asset(TAG, asset, data)
        return PartitionRef(key, asset, sha256_bytes(data), len(rows), len(data))

    tables: dict[str, TableRef] = {}
    for table, name in PARTITIONED.items():
        rows, header = d[name], bt.COLUMNS[table]
        halves = (rows[: len(rows) // 2], rows[len(rows) // 2 :])
        parts = [put(table, f"2026-1{j}.0000", header, h) for j, h in enumerate(halves) if h]
        tables[table] = TableRef(True, tuple(parts), header)
    for table, header, rows in (
        (bt.TENANTS_CREDITS, bt.COLUMNS[bt.TENANTS_CREDITS], d["tenants_credits"]),
        (OPEN_WORK_ORDERS, OPEN_COLUMNS, d["open_work_orders"]),
    ):
        tables[table] = TableRef(False, (put(table, "", header, rows),), header)
    m = Manifest(1, None, AT, tables)
    releases.create_asset(TAG, manifest_asset(1), m.to_json())
    store = BillingStore(releases, TAG, root / "lock")
    store.refundable = REFUNDABLE.get
    store.unsettled_alert_hours = 24
    return store


def _ledger_only(found) -> list[str]:
    # the derived open_work_orders table is not derived from these rows' (empty) log
    return [str(v) for v in found if not v.check.startswith("derived-")]


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "two-processes"])
@pytest.mark.parametrize(
    "breaks", [None, *(b[0] for b in BROKEN)], ids=["sound", *(b[0].__name__[2:] for b in BROKEN)]
)
def test_audit_state__matches_the_in_memory_checks(breaks, parallel, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKMILL_NOW", AT)
    monkeypatch.setattr(audit, "PARALLEL_BYTES", 0)
    d = sound()
    if breaks is not None:
        breaks(d)
    expected = [str(v) for v in verify(_tables(d))]
    found = audit.audit_state(stored(d, tmp_path).load(), parallel=parallel)
    assert _ledger_only(found) == expected
    assert bool(expected) == (breaks is not None)


def test_verify__a_tampered_partition_is_reported_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKMILL_NOW", AT)
    store = stored(sound(), tmp_path)
    part = store.read_manifest(1).tables[bt.TRANSACTION_ITEMS].partitions[0]
    path = Path(store.releases.root) / TAG / part.asset
    path.write_bytes(path.read_bytes().replace(b"It000001", b"It000009"))
    found = [str(v) for v in store.verify()]
    assert found == [
        f"manifest: {bt.TRANSACTION_ITEMS}: asset {part.asset} sha256 differs from state_manifest.json"
    ]


# ---------------------------------------------------------------- derived tables, both paths


@pytest.fixture
def spent(tmp_path, monkeypatch) -> BillingStore:
    """A real store: a top-up with a reference, then one charged work order."""
    monkeypatch.setenv("WORKMILL_NOW", AT)
    s = seeded_store(tmp_path / "repo")
    _spend(s, WO_A)
    return s


def _forge(store: BillingStore, table: str, edit) -> None:
    """Republish head with one partition of ``table`` rewritten by ``edit`` (sha256 kept
    consistent, as a tamperer with write access would)."""

    def change(tables):
        ref = tables[table]
        part = ref.partitions[0]
        data = edit(store.releases.read_asset(store.release_tag(part.release), part.asset))
        new = _put(store, f"t-r000000099-forged0-{table.removesuffix('.csv')}.csv", data)
        rows = data.count(b"\n") - 1
        parts = [p for p in ref.partitions if p.key != part.key]
        parts.append(PartitionRef(part.key, new.asset, new.sha256, rows, new.bytes))
        tables[table] = TableRef(ref.partitioned, tuple(parts), ref.columns)

    _republish(store, change)


@pytest.mark.parametrize("parallel", [False, True], ids=["one-process", "two-processes"])
@pytest.mark.parametrize(
    ("table", "edit", "check"),
    [
        (TOPUP_REFERENCES, lambda d: d.replace(b",seed,", b",seeds,"), "derived-topup-reference"),
        (WORKORDER_INDEX, lambda d: d.replace(b",SPEND,-205,", b",SPEND,-5,"), "derived-index"),
        (
            OPEN_WORK_ORDERS,
            lambda d: d + f"{TENANT},{WO_B},Tx000001,{AT}\n".encode(),
            "derived-open-work-orders",
        ),
    ],
    ids=["topup-references", "index", "open-work-orders"],
)
def test_audit_state__a_forged_derived_table_is_named(
    spent, table, edit, check, parallel, monkeypatch
):
    monkeypatch.setattr(audit, "PARALLEL_BYTES", 0)
    assert audit.audit_state(spent.load(), parallel=parallel) == []
    _forge(spent, table, edit)
    found = audit.audit_state(spent.load(), parallel=parallel)
    assert found and {v.check for v in found} == {check}, [str(v) for v in found]
