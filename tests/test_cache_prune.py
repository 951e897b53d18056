"""Prune and list: orphans registered, expired entries deleted only with --delete (library + CLI)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from workmill import clock
from workmill.backends import open_billing_store
from workmill.billing_tables import CACHE_INDEX
from workmill.cache import CacheRequest, LocalCacheBackend, apply_all, store
from workmill.cache.index import INDEX_COLUMNS, find_orphans, record_hit, select_expired
from workmill.cache.prune import list_cache, prune
from workmill.repo import PlatformRepo
from workmill.tables import read_table, write_table

NOW = clock.parse_iso(FIXED_NOW)
WC = ("--billing-state-dir", ".billing-state")


def req(tenant: str, rows: int) -> CacheRequest:
    return CacheRequest(tenant, "001", "1.0.0", "a" * 64, {"rows": rows}, {})


def row(key: str, expires_at: str, tenant: str = "Ab12Cd") -> dict[str, str]:
    return {
        "cache_key": key,
        "tenant_id": tenant,
        "module_id": "009",
        "module_version": "2",
        "created_at": "2026-01-01T00:00:00Z",
        "expires_at": expires_at,
        "retention_days": "30",
        "size_bytes": "10",
        "origin": "platform",
        "last_hit_at": "",
    }


def populate(repo: Path) -> dict[str, str]:
    """A: expired+indexed, B: live+indexed, C: unindexed (orphan), D/E: rows with no entry."""
    backend = LocalCacheBackend(repo / ".workmill" / "cache")
    out = repo / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "o.txt").write_text("x" * 1000)
    mutations = []
    keys = {}
    for name, tenant, rows, when, days in (
        ("A", "Ab12Cd", 1, "2026-10-01T00:00:00Z", 30),
        ("B", "Ab12Cd", 2, "2026-11-20T00:00:00Z", 30),
        ("C", "Zx98Yw", 3, "2026-11-01T00:00:00Z", 5),
    ):
        r = store(backend, req(tenant, rows), out, retention_days=days, now=clock.parse_iso(when))
        keys[name] = r.key
        if name != "C":
            mutations.append(r.index_mutation)
    rows_ = apply_all([], mutations)
    keys["D"], keys["E"] = "d" * 64, "e" * 64
    rows_ += [row(keys["D"], "2027-01-01T00:00:00Z"), row(keys["E"], "2026-02-01T00:00:00Z")]
    state = repo / ".billing-state"
    state.mkdir(exist_ok=True)
    write_table(state / CACHE_INDEX, INDEX_COLUMNS, rows_)
    return keys


def test_prune__dry_run_changes_nothing(tmp_path):
    keys = populate(tmp_path)
    backend = LocalCacheBackend(tmp_path / ".workmill" / "cache")
    rows = read_table(tmp_path / ".billing-state" / CACHE_INDEX)
    report = prune(backend, rows, now=NOW, hold_days=365, delete=False)
    assert [r["cache_key"] for r in report.registered] == [keys["C"]]
    assert {x.cache_key for x in report.expired} == {keys["A"], keys["E"]}
    assert report.index_rows == rows and not report.index_changed and report.deleted == []
    assert len(backend.list_entries()) == 3


def test_prune__delete_removes_expired_and_registers_orphans(tmp_path):
    keys = populate(tmp_path)
    backend = LocalCacheBackend(tmp_path / ".workmill" / "cache")
    rows = read_table(tmp_path / ".billing-state" / CACHE_INDEX)
    report = prune(backend, rows, now=NOW, hold_days=365, delete=True)
    assert report.deleted == [keys["A"]]
    assert sorted(e.key for e in backend.list_entries()) == sorted([keys["B"], keys["C"]])
    by_key = {r["cache_key"]: r for r in report.index_rows}
    assert set(by_key) == {keys["B"], keys["C"], keys["D"]}
    orphan = by_key[keys["C"]]
    assert orphan["origin"] == "orphan" and orphan["tenant_id"] == "Zx98Yw"
    assert orphan["expires_at"] == "2027-11-23T12:00:00Z" and orphan["retention_days"] == "365"
    # the mutation re-applies to a fresher index (after a StateConflict) with the same effect
    assert report.mutation is not None and report.mutation(rows) == report.index_rows


def test_index__pure_helpers():
    rows = [row("a" * 64, "2026-11-23T12:00:00Z"), row("b" * 64, "2026-11-23T12:00:01Z")]
    assert [r["cache_key"] for r in select_expired(rows, NOW)] == ["a" * 64]
    hit = record_hit(rows, "b" * 64, FIXED_NOW)
    assert hit[1]["last_hit_at"] == FIXED_NOW and rows[1]["last_hit_at"] == ""
    assert find_orphans(rows, [], NOW, 365) == []
    broken = [{**rows[0], "expires_at": "garbage"}]
    assert select_expired(broken, NOW) == broken  # never kept alive by a broken cell


def test_list_cache__joins_backend_and_index(tmp_path):
    keys = populate(tmp_path)
    backend = LocalCacheBackend(tmp_path / ".workmill" / "cache")
    rows = read_table(tmp_path / ".billing-state" / CACHE_INDEX)
    listed = {x.cache_key: x for x in list_cache(rows, backend.list_entries(), NOW)}
    assert set(listed) == set(keys.values())
    assert listed[keys["C"]].in_index is False and listed[keys["C"]].expired is True
    assert listed[keys["D"]].in_backend is False and listed[keys["D"]].expired is False
    assert listed[keys["B"]].size_bytes == 1000


# ---------------------------------------------------------------- CLI end to end


@pytest.fixture(autouse=True)
def _platform_repo(tmp_path):
    """The CLI runs only inside a platform repo (a folder with workmill.yml)."""
    (tmp_path / "workmill.yml").write_text("store: local\n")


def test_cli_cache_prune__dry_run_then_delete(tmp_path, cli):
    keys = populate(tmp_path)
    index = tmp_path / ".billing-state" / CACHE_INDEX
    before = index.read_bytes()
    dry = cli("cache", "prune", *WC, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    assert "would register 1 orphan entry (1000 B)" in dry.stdout
    assert f"orphan   {keys['C']}" in dry.stdout
    assert "would delete 1 expired entry (1000 B)" in dry.stdout and keys["A"] in dry.stdout
    assert index.read_bytes() == before
    assert (tmp_path / ".workmill" / "cache" / "entries" / keys["A"]).is_dir()

    done = cli("cache", "prune", "--delete", "--json", *WC, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["dry_run"] is False and data["deleted"] == [keys["A"]]
    assert data["deleted_bytes"] == 1000 and data["registered_bytes"] == 1000
    assert not (tmp_path / ".workmill" / "cache" / "entries" / keys["A"]).exists()
    rows = {r["cache_key"]: r for r in read_table(index, INDEX_COLUMNS)}
    assert set(rows) == {keys["B"], keys["C"], keys["D"]}
    assert rows[keys["C"]]["origin"] == "orphan"

    again = cli("cache", "prune", "--delete", *WC, cwd=tmp_path)
    assert "registered 0 orphan entries" in again.stdout and "deleted 0 expired" in again.stdout


def test_cli_cache_list__filters(tmp_path, cli):
    keys = populate(tmp_path)
    res = cli("cache", "list", "--json", *WC, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert {e["cache_key"] for e in json.loads(res.stdout)["entries"]} == set(keys.values())
    res = cli("cache", "list", "--tenant-id", "Zx98Yw", "--json", *WC, cwd=tmp_path)
    assert [e["cache_key"] for e in json.loads(res.stdout)["entries"]] == [keys["C"]]
    res = cli("cache", "list", "--expired", *WC, cwd=tmp_path)
    assert res.returncode == 0
    assert keys["A"][:16] in res.stdout and keys["B"][:16] not in res.stdout
    assert "3 entries" in res.stdout


def test_cli_cache__bad_input_is_one_clear_line(tmp_path, cli):
    res = cli("cache", "list", *WC, cwd=tmp_path)
    assert res.returncode == 1 and "cache_index.csv" in res.stderr and "Traceback" not in res.stderr
    assert "state pull" in res.stderr
    res = cli("cache", "prune", cwd=tmp_path)
    assert res.returncode == 1 and "bootstrap" in res.stderr and "Traceback" not in res.stderr
    res = cli("cache", "list", "--tenant-id", "bad!", cwd=tmp_path)
    assert res.returncode == 2 and "--tenant-id" in res.stderr
    state = tmp_path / ".billing-state"
    state.mkdir()
    (state / CACHE_INDEX).write_text("cache_key,tenant_id\n")
    res = cli("cache", "prune", "--delete", *WC, cwd=tmp_path)
    assert res.returncode == 1 and "missing column" in res.stderr
    assert (state / CACHE_INDEX).read_text() == "cache_key,tenant_id\n"


def test_cli_cache__help_has_examples(cli, tmp_path):
    for args in (("cache",), ("cache", "list"), ("cache", "prune")):
        res = cli(*args, "-h", cwd=tmp_path)
        assert res.returncode == 0 and "Example:" in res.stdout


def test_cli_cache_prune__commits_to_the_state_store(tmp_path, cli):
    keys = populate(tmp_path)
    rows = read_table(tmp_path / ".billing-state" / CACHE_INDEX, INDEX_COLUMNS)
    (tmp_path / "releases" / "billing-state-v1").mkdir(parents=True)
    repo = PlatformRepo.open(tmp_path)
    store_ = open_billing_store(repo)
    assert store_.bootstrap(repo.templates_dir)
    store_.commit_with_retry(lambda s: s.set_rows(CACHE_INDEX, rows))
    rev = store_.head_revision()

    dry = cli("cache", "prune", "--json", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["index_written_to"] is None
    assert store_.head_revision() == rev

    done = cli("cache", "prune", "--delete", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cache index updated in billing state 'billing-state-v1'" in done.stdout
    assert store_.head_revision() == rev + 1
    stored = {r["cache_key"]: r for r in store_.load().rows(CACHE_INDEX)}
    assert set(stored) == {keys["B"], keys["C"], keys["D"]}
    assert stored[keys["C"]]["origin"] == "orphan"
    listed = cli("cache", "list", "--json", cwd=tmp_path)
    assert {e["cache_key"] for e in json.loads(listed.stdout)["entries"]} == set(stored)


def test_prune_mutation__keeps_a_row_re_saved_meanwhile(tmp_path):
    keys = populate(tmp_path)
    backend = LocalCacheBackend(tmp_path / ".workmill" / "cache")
    rows = read_table(tmp_path / ".billing-state" / CACHE_INDEX)
    report = prune(backend, rows, now=NOW, hold_days=365, delete=True)
    fresher = [
        {**r, "expires_at": "2027-01-01T00:00:00Z"} if r["cache_key"] == keys["A"] else r
        for r in rows
    ]
    assert report.mutation is not None
    assert keys["A"] in {r["cache_key"] for r in report.mutation(fresher)}
    assert keys["E"] not in {r["cache_key"] for r in report.mutation(fresher)}


def test_prune__removes_old_leftovers_of_killed_saves_only_with_delete(tmp_path):
    backend = LocalCacheBackend(tmp_path / "cache")
    old = backend.tmp_dir / "save.deadbeef0000.x"
    (old / "entry" / "files").mkdir(parents=True)
    (old / "entry" / "files" / "half.bin").write_bytes(b"x" * 100)
    fresh = backend.tmp_dir / "save.fresh.y"  # a save in progress right now
    fresh.mkdir()
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    report = prune(backend, [], now=NOW, delete=False)
    assert report.leftovers == [("save.deadbeef0000.x", 100)] and old.exists()
    assert backend.list_entries() == []
    report = prune(backend, [], now=NOW, delete=True)
    assert report.leftovers_removed == ["save.deadbeef0000.x"]
    assert not old.exists() and fresh.exists()
