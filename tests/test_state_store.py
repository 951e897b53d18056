"""The commit protocol of the billing-state store (SPEC §9), on a real local store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_billing_support import TENANT, bootstrapped_store
from workmill import billing_tables as bt
from workmill.errors import StateConflict
from workmill.ledger import OrderLine, RefundLine
from workmill.state import AssetExists, BillingStore, LedgerRefused, LocalReleaseStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> BillingStore:
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    s = bootstrapped_store(tmp_path / "repo")
    return s


def test_local_release_store__create_only_under_a_free_name(tmp_path):
    rs = LocalReleaseStore(tmp_path)
    rs.create_tag("t1")
    rs.create_asset("t1", "a.csv", b"one")
    with pytest.raises(AssetExists):
        rs.create_asset("t1", "a.csv", b"two")
    assert rs.read_asset("t1", "a.csv") == b"one"
    assert rs.list_assets("t1") == ["a.csv"]
    rs.delete_asset("t1", "a.csv")
    assert rs.list_assets("t1") == []


def test_local_release_store__a_batch_is_every_asset_complete_or_stops_at_a_taken_name(
    tmp_path,
):
    rs = LocalReleaseStore(tmp_path)
    rs.create_tag("t1")
    big = bytes(range(256)) * 4096  # 1 MiB: written whole, not one write() call's worth
    rs.create_assets("t1", [("a.csv", b"one"), ("b.csv", big), ("c.csv", b"")])
    assert [rs.read_asset("t1", n) for n in ("a.csv", "b.csv", "c.csv")] == [b"one", big, b""]
    with pytest.raises(AssetExists):
        rs.create_assets("t1", [("d.csv", b"four"), ("a.csv", b"two")])
    assert rs.read_asset("t1", "a.csv") == b"one"
    assert rs.list_assets("t1") == ["a.csv", "b.csv", "c.csv", "d.csv"]
    assert [p.name for p in (tmp_path / "t1").iterdir() if p.name.startswith(".")] == []


def test_bootstrap__second_call_does_nothing(store):
    repo_templates = Path(store.releases.root).parent.parent / "releases" / "billing-state-v1"
    assert store.bootstrap(repo_templates) is False
    assert store.revisions() == [1]
    assert [r["topup_method_id"] for r in store.load().rows(bt.TOPUP_METHODS)] == ["AD", "OF"]


def test_commit__stale_state_raises_conflict_and_publishes_nothing(store):
    a = store.load()
    b = store.load()
    a.topup(TENANT, "AD", 10, "ref-a")
    b.topup(TENANT, "AD", 20, "ref-b")
    store.commit(a)
    with pytest.raises(StateConflict):
        store.commit(b)
    assert store.revisions() == [1, 2]
    assert store.load().balance(TENANT) == 10


def test_commit_with_retry__reapplies_the_change_after_a_conflict(store):
    calls = []

    def mutate(s):
        calls.append(s.revision)
        if len(calls) == 1:  # another writer sneaks in between our load and commit
            other = store.load()
            other.topup(TENANT, "AD", 5, "other")
            store.commit(other)
        return s.topup(TENANT, "AD", 7, "mine")

    store.commit_with_retry(mutate)
    assert calls == [1, 2]
    assert store.load().balance(TENANT) == 12
    assert store.verify() == []


def test_commit__refuses_a_state_that_breaks_an_invariant(store):
    s = store.load()
    s.append(
        bt.TRANSACTIONS,
        [
            {
                "transaction_id": "Tx000001",
                "tenant_id": TENANT,
                "type": "TOPUP",
                "amount_credits": "50",
                "balance_after": "50",
                "created_at": "2026-11-23T12:00:00Z",
            }
        ],
    )
    with pytest.raises(LedgerRefused, match="balance"):
        store.commit(s)
    assert store.revisions() == [1]


def test_gc__keeps_the_last_n_revisions_and_their_assets(store):
    store.keep_revisions = 3
    for i in range(8):
        store.commit_with_retry(lambda s, i=i: s.topup(TENANT, "AD", 1, f"r{i}"))
    store.gc()
    assert store.revisions() == [7, 8, 9]
    for rev in (7, 8, 9):
        assert store.verify(rev) == []
    referenced = set().union(*(store.read_manifest(r).assets() for r in (7, 8, 9)))
    names = set(store.releases.list_assets(store.tag))
    assert names - referenced == {f"manifest-r00000000{r}.json" for r in (7, 8, 9)}
    assert store.load().balance(TENANT) == 8


def test_commit__appends_touch_only_the_current_partition(store, monkeypatch):
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 1, "oct"))
    november = {p.key: p for p in store.load().manifest.tables[bt.TRANSACTIONS].partitions}
    monkeypatch.setenv("WORKMILL_NOW", "2026-12-02T12:00:00Z")
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 1, "dec"))
    m = store.read_manifest(store.head_revision())
    parts = {p.key: p for p in m.tables[bt.TRANSACTIONS].partitions}
    assert sorted(parts) == ["2026-11.0000", "2026-12.0000"]
    assert parts["2026-11.0000"].sha256 == november["2026-11.0000"].sha256  # rows untouched
    # ... but November is sealed now, so its chunk moved to the first cold segment
    assert (november["2026-11.0000"].release, parts["2026-11.0000"].release) == ("", "c0001")
    assert parts["2026-12.0000"].asset.startswith("t-r000000003-")
    assert parts["2026-12.0000"].release == ""
    assert m.tables[bt.PRICING].partitions[0].asset.startswith("t-r000000001-")


def test_spend_and_refund__through_the_store(store):
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 1000, "seed"))

    def plan(s):
        q = s.quote(TENANT, [OrderLine("001", True), OrderLine("003")], ["WELCOME10"])
        return s.spend(q, TENANT, "Qw3Er5Ty")

    spend = store.commit_with_retry(plan)
    assert spend.transaction.amount_credits == -205
    refund = store.commit_with_retry(
        lambda s: s.refund("Qw3Er5Ty", {"001": RefundLine("FAILED", "001010001")})
    )
    assert (
        refund.transaction.note
        == "refund 105 = module 001 FAILED 001010001 refundable (100 + artifact 20 - WELCOME10 15)"
    )
    s = store.load()
    assert s.balance(TENANT) == 1000 - 205 + 105
    assert [t.type.value for t in s.transactions_for("Qw3Er5Ty")] == ["SPEND", "REFUND"]
    assert store.verify() == []
    # the promo was fully reversed: it no longer counts
    assert s.promo_usage().total == {}


def test_refund__second_refund_is_refused(store):
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 1000, "seed"))
    store.commit_with_retry(
        lambda s: s.spend(s.quote(TENANT, [OrderLine("003")]), TENANT, "Qw3Er5Ty")
    )
    store.commit_with_retry(lambda s: s.refund("Qw3Er5Ty", {}))
    with pytest.raises(Exception, match="already has a REFUND"):
        store.commit_with_retry(lambda s: s.refund("Qw3Er5Ty", {}))


def test_verify__detects_a_tampered_asset(store):
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 10, "x"))
    m = store.read_manifest(store.head_revision())
    asset = m.tables[bt.TRANSACTIONS].partitions[0].asset
    path = Path(store.releases.root) / store.tag / asset
    path.write_bytes(path.read_bytes().replace(b",10,10,", b",99,99,"))
    problems = [str(v) for v in store.verify()]
    assert any("sha256 differs" in p for p in problems)


_KILL_SCRIPT = """
import sys
from workmill.repo import PlatformRepo
from workmill.backends import open_billing_store
store = open_billing_store(PlatformRepo.open(sys.argv[1]))
print("start", flush=True)
store.commit_with_retry(lambda s: s.topup("Ab12Cd", "AD", 3, sys.argv[2]))
"""


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.55, 0.9])
def test_commit__kill_9_leaves_old_or_new_revision(store, tmp_path, delay):
    repo_root = Path(store.releases.root).parent.parent
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 100, "seed"))
    before = store.head_revision()
    env = {**os.environ, "WORKMILL_TEST_COMMIT_SLEEP": "0.3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(repo_root), f"k{delay}"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "start"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    head = store.head_revision()
    assert head in (before, before + 1)
    assert store.load().balance(TENANT) == (100 if head == before else 103)
    assert store.verify() == []
    # the store still works afterwards (the lock died with the process)
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 1, "after"))
    assert store.verify() == []
