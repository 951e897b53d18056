"""Plan and settle at a long history: what they read again is remembered, never stale."""

from __future__ import annotations

import pytest

from test_billing_support import TENANT, seeded_store
from workmill.ledger import OrderLine
from workmill.state import BillingStore
from workmill.state import billing_state as bs

WO_A, WO_B = "Qw3Er5Ty", "As4Df6Gh"


@pytest.fixture
def store(tmp_path, monkeypatch) -> BillingStore:
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    s = seeded_store(tmp_path / "repo")
    return s


def _spend(s, wo: str):
    return s.spend(s.quote(TENANT, [OrderLine("001", True)], []), TENANT, wo)


def test_commit_with_retry__loaded_state_is_the_first_try(store):
    seen = store.load()
    tried = []
    store.commit_with_retry(lambda s: tried.append(s) or _spend(s, WO_A), loaded=seen)
    assert tried == [seen]
    assert store.load().work_order_record(WO_A).of_type("SPEND")


def test_commit_with_retry__stale_loaded_state_is_a_conflict_then_a_fresh_load(store):
    seen = store.load()
    store.commit_with_retry(lambda s: s.topup(TENANT, "AD", 7, "other-writer"))
    tried = []
    store.commit_with_retry(lambda s: tried.append(s) or _spend(s, WO_A), loaded=seen)
    assert len(tried) == 2 and tried[0] is seen and tried[1] is not seen
    head = store.load()
    (spend,) = head.work_order_record(WO_A).of_type("SPEND")
    assert head.balance(TENANT) == 5000 + 7 + int(spend["amount_credits"])  # both changes kept


def test_scan_memo__big_chunk_scanned_once_per_process_small_chunk_every_time(store, monkeypatch):
    store.commit_with_retry(lambda s: _spend(s, WO_A))
    monkeypatch.setattr(bs, "_SCANS", {})
    reads: list[str] = []
    real = bs.BillingState.raw_asset

    def counting(self, asset):
        reads.append(asset)
        return real(self, asset)

    monkeypatch.setattr(bs.BillingState, "raw_asset", counting)
    first = store.load().work_order_record(WO_A)
    assert reads and not bs._SCANS  # a small chunk: read, not remembered
    monkeypatch.setattr(bs, "_SCAN_MEMO_MIN_BYTES", 0)  # as if every chunk were big
    reads.clear()
    again = store.load().work_order_record(WO_A)
    n_reads = len(reads)
    third = store.load().work_order_record(WO_A)
    assert first == again == third and first.of_type("SPEND")
    assert n_reads and len(reads) == n_reads  # the third load read no chunk again
    # a new chunk (a new sha256) is scanned, so a later commit is never missed
    store.commit_with_retry(lambda s: _spend(s, WO_B))
    assert store.load().work_order_record(WO_B).of_type("SPEND")
    assert store.load().work_order_record(WO_A) == first


def test_read_manifest__same_bytes_parsed_once_changed_bytes_checked_again(store):
    from workmill.errors import StateError
    from workmill.state.manifest import manifest_asset

    head = store.head_revision()
    first = store.read_manifest(head)
    assert store.read_manifest(head) is first  # the same bytes: not parsed again
    path = store.releases.root / store.tag / manifest_asset(head)
    path.write_bytes(path.read_bytes().replace(b'"rows": ', b'"rows": 1', 1))  # tampered
    with pytest.raises(StateError):
        store.read_manifest(head)
