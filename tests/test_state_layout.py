"""Segment releases: every release of the billing state stays under GitHub's asset cap
(docs/architecture.md "Billing-state release layout")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_billing_support import TENANT, bootstrapped_store
from test_github_support import OWNER_REPO, TOKEN, FakeGithub
from workmill import billing_tables as bt
from workmill.errors import StateError
from workmill.github import GithubClient, GithubReleaseStore
from workmill.ledger.pricing import OrderLine
from workmill.state import (
    PARTITIONED,
    TOPUP_REFERENCES,
    WORKORDER_INDEX,
    BillingStore,
    chunking,
    layout,
)
from workmill.state.chunking import Placement, place
from workmill.state.manifest import Manifest

SMALL_TAIL, SMALL_CHUNK = 300, 900


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setenv("WORKMILL_NOW", "2026-10-20T12:00:00Z")
    monkeypatch.setattr(chunking, "TAIL_BYTES", SMALL_TAIL)
    monkeypatch.setattr(chunking, "CHUNK_BYTES", SMALL_CHUNK)
    monkeypatch.setattr(layout, "COLD_CAP", 4)


def _activity(store: BillingStore, first: int, n: int) -> None:
    """n commits: a top-up, and every third one a SPEND (work-order index rows)."""
    for i in range(first, first + n):

        def go(s, i=i):
            s.topup(TENANT, "AD", 150, f"ref-{i:05d}")
            if i % 3 == 0:
                s.spend(s.quote(TENANT, [OrderLine("001")]), TENANT, f"Wo{i:06d}")

        store.commit_with_retry(go)


def _stored(store: BillingStore) -> dict[str, set[str]]:
    """Table assets per release tag of the state, as the store holds them."""
    tags = [t for t in store.releases.list_tags() if t.split("--")[0] == store.tag]
    return {
        t: {a for a in store.releases.list_assets(t) if a.startswith("t-")} for t in sorted(tags)
    }


def _named(store: BillingStore) -> dict[str, set[str]]:
    """Assets the kept revisions name, per release tag."""
    out: dict[str, set[str]] = {}
    for r in store.revisions():
        for rel, names in store.read_manifest(r).assets_by_release().items():
            out.setdefault(store.release_tag(rel), set()).update(names)
    return out


# ------------------------------------------------------------------ the pure rules
@given(st.lists(st.integers(1, SMALL_TAIL // 2), min_size=1, max_size=300))
def test_sealed__a_sealed_chunk_is_never_rewritten_by_later_appends(appends):
    """``layout.sealed`` agrees with ``chunking.place``: once sealed, a chunk never changes."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(chunking, "TAIL_BYTES", SMALL_TAIL)
        mp.setattr(chunking, "CHUNK_BYTES", SMALL_CHUNK)
        sizes: list[int] = []
        sealed: set[int] = set()
        for n in appends:
            how = place(sizes, n)
            if how is Placement.EXTEND:
                assert len(sizes) - 1 not in sealed
                sizes[-1] += n
            elif how is Placement.MERGE:
                assert len(sizes) - 2 not in sealed
                sizes[-2:] = [sizes[-2] + sizes[-1] + n]
            else:
                sizes.append(n)
            sealed |= {
                i
                for i in range(len(sizes))
                if layout.sealed(bt.TRANSACTIONS, "2026-11", sizes, i, "2026-11")
            }
        assert len(sizes) - 1 not in sealed  # the last chunk is always open


def test_layout__homes_and_cold_segments_fill_in_order(monkeypatch):
    assert layout.hot_home(WORKORDER_INDEX, "b3f") == "h3"
    assert layout.hot_home(TOPUP_REFERENCES, "bA0") == "ha"
    assert layout.hot_home(bt.TRANSACTIONS, "2026-11") == ""
    assert layout.sealed(bt.TRANSACTIONS, "2026-10", [10], 0, "2026-11")  # a closed month
    assert not layout.sealed(WORKORDER_INDEX, "b00", [10], 0, "2026-11")
    monkeypatch.setattr(layout, "COLD_CAP", 2)
    assert layout.open_cold({}) == "c0001"
    assert layout.open_cold({"c0001": 1}) == "c0001"
    assert layout.open_cold({"c0001": 2}) == "c0002"
    assert layout.segment_tag("bs", "c0002") == "bs--c0002" and layout.segment_tag("bs", "") == "bs"


# ------------------------------------------------------------------ through the store
def test_commits__sealed_chunks_fill_cold_segments_and_gc_keeps_what_revisions_name(
    tmp_path, small, monkeypatch
):
    store = bootstrapped_store(tmp_path / "repo")
    store.keep_revisions = 4
    _activity(store, 0, 30)
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-02T12:00:00Z")  # October is sealed now
    _activity(store, 30, 30)
    store.gc()
    stored = _stored(store)
    assert stored == _named(store)  # GC kept every asset a kept revision names, nothing else
    cold = [t for t in stored if t.startswith(store.tag + "--c")]
    assert len(cold) >= 2, stored.keys()  # the first cold segment filled up; the next opened
    assert all(len(stored[t]) <= layout.COLD_CAP for t in cold)
    hot = [t for t in stored if t.startswith(store.tag + "--h")]
    assert hot and all(len(stored[t]) < 1000 for t in stored)
    head = store.read_manifest(store.head_revision())
    for name in PARTITIONED:
        for group, chunks in head.tables[name].groups().items():
            sizes = [c.bytes for c in chunks]
            for i, c in enumerate(chunks):
                if layout.sealed(name, group, sizes, i, "2026-11"):
                    continue  # may still wait for a later commit's move
                assert c.release == layout.hot_home(name, group), (name, c)
    assert all(store.verify(r) == [] for r in store.revisions())
    state = store.load()
    txs = state.rows(bt.TRANSACTIONS)  # every month, from every release
    assert len([t for t in txs if t["type"] == "TOPUP"]) == 60
    assert state.balance(TENANT) == sum(int(t["amount_credits"]) for t in txs)
    assert state.find_topup(TENANT, "ref-00001") is not None  # an old bucket, read from its segment


def _write_old_layout(store: BillingStore, monkeypatch, n: int) -> None:
    """Commits as a workmill from before segment releases made them: every asset in the
    head release, manifests of schema version 1."""
    with monkeypatch.context() as mp:
        mp.setattr(layout, "hot_home", lambda table, group: layout.HEAD)
        mp.setattr(layout, "planned_moves", lambda *a, **k: [])
        _activity(store, 0, n)
    root = store.releases.root / store.tag
    for path in root.glob("manifest-r*.json"):
        doc = json.loads(path.read_bytes())
        assert all("release" not in p for t in doc["tables"].values() for p in t["partitions"])
        path.write_bytes(path.read_bytes().replace(b'"schema_version": 2', b'"schema_version": 1'))
    assert [t for t in store.releases.list_tags() if t.startswith(store.tag)] == [store.tag]


def test_state_compact__migrates_a_state_written_before_segments(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-20T12:00:00Z")
    store = bootstrapped_store(tmp_path / "repo")
    root = tmp_path / "repo"
    _write_old_layout(store, monkeypatch, 12)
    assert b'"schema_version": 1' in store.releases.read_asset(
        store.tag, f"manifest-r{store.head_revision():09d}.json"
    )
    assert cli("ledger", "verify", cwd=root).returncode == 0  # version 1 still reads
    assert cli("state", "pull", "--billing-state-dir", "before", cwd=root).returncode == 0
    r = cli("state", "compact", cwd=root)
    assert r.returncode == 0 and r.stdout.startswith("moved "), r.stdout + r.stderr
    head = store.read_manifest(store.head_revision())
    for name in (WORKORDER_INDEX, TOPUP_REFERENCES):
        assert head.tables[name].partitions
        assert all(p.release.startswith("h") for p in head.tables[name].partitions)
    assert cli("ledger", "verify", cwd=root).returncode == 0
    assert cli("state", "pull", "--billing-state-dir", "after", cwd=root).returncode == 0
    for path in sorted((root / "before").glob("*.csv")):
        assert (root / "after" / path.name).read_bytes() == path.read_bytes(), path.name
    r = cli("state", "compact", cwd=root)
    assert r.returncode == 0 and "nothing done" in r.stdout
    r = cli(
        "topup",
        *("--tenant-id", TENANT, "--topup-method-id", "AD", "--amount-credits", "5"),
        *("--reference", "after-migration"),
        cwd=root,
    )
    assert r.returncode == 0, r.stderr
    # the old copies go once no kept revision names them
    store.keep_revisions = 1
    store.gc()
    assert _stored(store) == _named(store)


def test_commits__move_an_old_state_a_few_chunks_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-20T12:00:00Z")
    store = bootstrapped_store(tmp_path / "repo")
    _write_old_layout(store, monkeypatch, 12)
    before = store.read_manifest(store.head_revision())
    misplaced = len(layout.planned_moves(before.tables, "2026-11", PARTITIONED, None))
    assert misplaced > layout.MOVES_PER_COMMIT
    monkeypatch.setattr(layout, "FULL_SCAN_EVERY", 10**6)  # (no revision here is a multiple)
    _activity(store, 100, 1)  # looks only at the groups it writes to
    after = store.read_manifest(store.head_revision())
    left = len(layout.planned_moves(after.tables, "2026-11", PARTITIONED, None))
    assert left == misplaced  # none of them is in a group this commit wrote to
    monkeypatch.setattr(layout, "FULL_SCAN_EVERY", 1)  # every revision looks at every chunk
    _activity(store, 101, 1)
    moved = left - len(
        layout.planned_moves(
            store.read_manifest(store.head_revision()).tables, "2026-11", PARTITIONED, None
        )
    )
    assert moved >= layout.MOVES_PER_COMMIT - 2  # (this commit's own new chunks go home)
    while left:
        _activity(store, 200 + left, 1)
        m = store.read_manifest(store.head_revision())
        left = len(layout.planned_moves(m.tables, "2026-11", PARTITIONED, None))
    assert store.verify() == []


def test_segments__through_fake_github(tmp_path, small, monkeypatch):
    from test_billing_support import make_repo
    from workmill.repo import PlatformRepo

    repo = PlatformRepo.open(make_repo(tmp_path / "repo"))
    with FakeGithub(page_size=100) as fake:
        client = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
        try:
            releases = GithubReleaseStore(client, OWNER_REPO)
            store = BillingStore(releases, "billing-state-v1", tmp_path / "lock")
            store.keep_revisions = 3
            assert store.bootstrap(repo.templates_dir) is True
            _activity(store, 0, 6)
            monkeypatch.setenv("WORKMILL_NOW", "2026-11-02T12:00:00Z")
            _activity(store, 6, 3)
            revision, _moved = store.compact()
            assert revision == store.head_revision()
            tags = releases.list_tags()
            assert any(t.startswith("billing-state-v1--h") for t in tags)
            assert "billing-state-v1--c0001" in tags
            assert _stored(store) == _named(store)
            assert store.verify() == []
            assert store.load().find_topup(TENANT, "ref-00000") is not None
            assert fake.violations == []
        finally:
            client.close()


# ------------------------------------------------------------------ partial manifest reads
def test_manifest__a_partial_read_equals_the_whole_one(tmp_path, small, monkeypatch):
    store = bootstrapped_store(tmp_path / "repo")
    _activity(store, 0, 8)
    monkeypatch.setenv("WORKMILL_NOW", "2026-11-02T12:00:00Z")
    _activity(store, 8, 8)
    name = f"manifest-r{store.head_revision():09d}.json"
    data = store.releases.read_asset(store.tag, name)
    whole = Manifest.from_json(data, name)
    relaid = json.dumps(json.loads(data)).encode()  # another layout: decoded whole, then cut
    wanted = (bt.TRANSACTIONS, bt.MODULE_RUNS_LOG, WORKORDER_INDEX, "no_such.csv")
    for text in (data, relaid):
        part = Manifest.from_json(text, name, only=wanted)
        assert set(part.tables) == {bt.TRANSACTIONS, bt.MODULE_RUNS_LOG, WORKORDER_INDEX}
        assert all(part.tables[t] == whole.tables[t] for t in part.tables)
        months = Manifest.from_json(text, name, only=wanted, groups=("2026-10", "2026-12"))
        assert sorted(p.key for p in months.tables[bt.TRANSACTIONS].partitions) == sorted(
            p.key for p in whole.tables[bt.TRANSACTIONS].partitions if p.group == "2026-10"
        )
        assert months.tables[WORKORDER_INDEX].partitions == ()
    from workmill import usage

    state = usage.month_state(store, "2026-10")
    assert state.month_rows(bt.TRANSACTIONS, "2026-10")
    with pytest.raises(StateError, match="not read from the manifest"):
        state.month_rows(bt.TRANSACTIONS, "2026-11")
    with pytest.raises(StateError, match="not read from the manifest"):
        state.month_rows(bt.WORKORDERS_LOG, "2026-10")
    assert Path(store.releases.root).is_dir()


def test_staging__segment_releases_of_the_billing_state_pass_through(tmp_path):
    """A job that stages work-order releases never stages billing-state writes, segments
    included: its read-only token makes them fail loudly at the remote instead."""
    from workmill.state import LocalReleaseStore
    from workmill.state.staging import StagingReleaseStore

    remote = LocalReleaseStore(tmp_path / "remote")
    staged = StagingReleaseStore(remote, tmp_path / "stage", keep_remote={"billing-state-v1"})
    staged.create_tag("billing-state-v1--h3")
    staged.create_asset("billing-state-v1--h3", "t-a.csv", b"x")
    assert remote.read_asset("billing-state-v1--h3", "t-a.csv") == b"x"
    assert not (tmp_path / "stage" / "billing-state-v1--h3").exists()
    staged.create_tag("wo-ab12cd-r1aaaaaa")
    staged.create_asset("wo-ab12cd-r1aaaaaa", "out.txt", b"y")
    assert not remote.tag_exists("wo-ab12cd-r1aaaaaa")  # work-order releases are staged
