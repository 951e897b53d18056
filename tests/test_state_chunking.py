"""Chunk placement of appended rows: a commit rewrites a small tail, not a 1 MiB chunk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_billing_support import TENANT, bootstrapped_store, make_repo
from test_github_support import OWNER_REPO, TOKEN, FakeGithub
from workmill import billing_tables as bt
from workmill.github import GithubClient, GithubReleaseStore
from workmill.repo import PlatformRepo
from workmill.state import BillingStore, chunking
from workmill.state.chunking import Placement, place, split_sizes
from workmill.state.manifest import PartitionRef

SMALL_TAIL, SMALL_CHUNK = 1_000, 4_000  # small limits so a handful of commits exercise every rule


def _simulate(appends: list[int]) -> tuple[list[int], list[int]]:
    """Chunk sizes after ``appends`` (row bytes per commit) and bytes each commit uploaded."""
    sizes: list[int] = []
    uploaded: list[int] = []
    for n in appends:
        how = place(sizes, n)
        if how is Placement.EXTEND:
            sizes[-1] += n
            uploaded.append(sizes[-1])
        elif how is Placement.MERGE:
            sizes[-2:] = [sizes[-2] + sizes[-1] + n]
            uploaded.append(sizes[-1])
        else:
            sizes.append(n)
            uploaded.append(n)
    return sizes, uploaded


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(chunking, "TAIL_BYTES", SMALL_TAIL)
    monkeypatch.setattr(chunking, "CHUNK_BYTES", SMALL_CHUNK)


@given(st.lists(st.integers(1, SMALL_TAIL // 2), min_size=1, max_size=400))
def test_place__bounded_rewrites_and_few_chunks(appends):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "TAIL_BYTES", SMALL_TAIL)
        mp.setattr(chunking, "CHUNK_BYTES", SMALL_CHUNK)
        sizes, uploaded = _simulate(appends)
    assert sum(sizes) == sum(appends)
    assert max(sizes) <= SMALL_CHUNK
    # a routine commit uploads at most a tail; only a merge (rare) uploads more
    big = [u for u in uploaded if u > SMALL_TAIL]
    assert len(big) <= sum(appends) // (SMALL_TAIL // 2) + 1
    assert all(u <= SMALL_CHUNK for u in uploaded)
    # every chunk but the last two is nearly full: the manifest grows with bytes, not commits
    sealed = sizes[:-2]
    assert all(s > SMALL_CHUNK - SMALL_TAIL - SMALL_TAIL // 2 for s in sealed)


def test_place__old_layout_last_chunk_is_not_a_tail():
    assert place([], 10) is Placement.NEW
    assert place([900_000], 10) is Placement.NEW  # a chunk the 1 MiB rule left half full
    assert place([900_000, 100], 10) is Placement.EXTEND
    assert place([900_000, chunking.TAIL_BYTES - 5], 10) is Placement.MERGE
    # a full tail behind a full chunk keeps the rows (no small chunk is left behind)
    assert place([chunking.CHUNK_BYTES - 10, chunking.TAIL_BYTES - 5], 10) is Placement.EXTEND
    assert place([chunking.TAIL_BYTES - 5], 10) is Placement.EXTEND
    assert place([chunking.TAIL_BYTES - 5], chunking.CHUNK_BYTES) is Placement.NEW


@given(st.lists(st.integers(1, 300), max_size=60), st.integers(0, 50))
def test_split_sizes__every_row_once_and_chunks_within_limit(rows, header):
    counts = split_sizes(rows, header, limit=400)
    assert sum(counts) == len(rows)
    i = 0
    for n in counts:
        part = rows[i : i + n]
        assert n >= 1 or not rows
        assert header + sum(part) <= 400 or n == 1
        i += n


# ------------------------------------------------------------------ through the store
@pytest.fixture
def store(tmp_path, monkeypatch) -> BillingStore:
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    s = bootstrapped_store(tmp_path / "repo")
    return s


def _tx_parts(store: BillingStore, rev: int | None = None) -> list[PartitionRef]:
    m = store.read_manifest(rev or store.head_revision())
    return sorted(m.tables[bt.TRANSACTIONS].partitions, key=lambda p: p.key)


def _topups(store: BillingStore, first: int, n: int, per_commit: int = 1) -> None:
    for i in range(first, first + n, per_commit):

        def go(s, i=i):
            for j in range(i, min(i + per_commit, first + n)):
                s.topup(TENANT, "AD", 1, f"ref-{j:05d}")

        store.commit_with_retry(go)


def test_commit__tail_is_extended_then_merged_and_every_row_kept(store, small_chunks):
    _topups(store, 0, 40)
    parts = _tx_parts(store)
    assert all(p.bytes <= SMALL_CHUNK for p in parts)
    assert len(parts) < 40 // 3  # merged, not one chunk per commit
    state = store.load()
    refs = [r["reference"] for r in state.rows(bt.TRANSACTIONS)]
    assert refs == [f"ref-{j:05d}" for j in range(40)]
    assert state.balance(TENANT) == 40
    assert store.verify() == []
    for rev in store.revisions():  # older revisions (and their layouts) still read and verify
        assert store.verify(rev) == []


def test_commit__routine_commit_rewrites_only_the_tail(store, small_chunks):
    _topups(store, 0, 60)
    before = {p.key: p.asset for p in _tx_parts(store)}
    _topups(store, 60, 1)
    after = {p.key: p.asset for p in _tx_parts(store)}
    changed = [k for k in after if before.get(k) != after[k]]
    assert len(changed) == 1  # one upload: the tail extended, or the tail merged into its chunk
    assert changed[0] in sorted(before)[-2:]
    assert set(before) - set(after) <= {max(before)}  # at most the merged tail left


def test_load__store_written_with_the_old_1mib_rule_reads_and_grows_a_tail(store, monkeypatch):
    # the old rule is the tail rule with TAIL_BYTES == CHUNK_BYTES: extend the last chunk to 1 MiB
    tail = chunking.TAIL_BYTES
    monkeypatch.setattr(chunking, "TAIL_BYTES", chunking.CHUNK_BYTES)
    _topups(store, 0, 900, per_commit=300)
    old = _tx_parts(store)
    assert len(old) == 1 and old[0].bytes > tail  # one chunk extended past the tail size
    old_rev = store.head_revision()
    monkeypatch.undo()
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    assert store.verify() == []
    _topups(store, 900, 3)
    parts = _tx_parts(store)
    assert [p.asset for p in parts[:1]] == [old[0].asset]  # the big chunk is not rewritten
    assert len(parts) == 2 and parts[1].bytes < chunking.TAIL_BYTES
    state = store.load()
    assert [r["reference"] for r in state.rows(bt.TRANSACTIONS)] == [
        f"ref-{j:05d}" for j in range(903)
    ]
    assert state.find_topup(TENANT, "ref-00123") is not None
    assert store.verify() == [] and store.verify(old_rev) == []


def test_commit__one_large_append_is_split_into_chunks(store, small_chunks):
    _topups(store, 0, 120, per_commit=120)
    parts = _tx_parts(store)
    assert len(parts) > 1 and all(p.bytes <= SMALL_CHUNK for p in parts)
    assert store.load().balance(TENANT) == 120
    assert store.verify() == []


def test_gc__merged_tails_are_collected_and_kept_revisions_verify(store, small_chunks):
    store.keep_revisions = 3
    _topups(store, 0, 30)
    store.gc()
    revs = store.revisions()
    assert len(revs) == 3
    live = {
        (store.release_tag(rel), a)
        for r in revs
        for rel, names in store.read_manifest(r).assets_by_release().items()
        for a in names
    }
    tables = {
        (tag, a)
        for tag in store.releases.list_tags()
        if tag == store.tag or tag.startswith(store.tag + "--")
        for a in store.releases.list_assets(tag)
        if a.startswith("t-")
    }
    assert tables == live
    assert {t for t, _ in live} > {store.tag}  # the top-up references live in hot segments
    assert all(store.verify(r) == [] for r in revs)


def test_commit__on_the_github_backend_merges_and_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-23T12:00:00Z")
    monkeypatch.setattr(chunking, "TAIL_BYTES", 300)  # ~2 rows: few (slow) HTTP commits merge
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 700)
    repo = PlatformRepo.open(make_repo(tmp_path / "repo"))
    with FakeGithub(page_size=100) as fake:
        client = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
        try:
            releases = GithubReleaseStore(client, OWNER_REPO)
            s = BillingStore(releases, "billing-state-v1", tmp_path / "lock")
            assert s.bootstrap(repo.templates_dir) is True
            _topups(s, 0, 7)
            sizes = [p.rows for p in _tx_parts(s)]
            assert sum(sizes) == 7 and len(sizes) < 7 and max(sizes) > 2  # merged tails
            assert s.load().balance(TENANT) == 7
            assert s.verify() == []
            assert fake.violations == []
        finally:
            client.close()
