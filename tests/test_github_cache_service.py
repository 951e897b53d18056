"""The github cache backend over the Actions cache service v2 (the fake follows the toolkit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actions_cache_fake import ActionsCacheFake
from conftest import FIXED_NOW
from platform_factory import T1, T2, build_repo, work_order
from test_github_support import OWNER_REPO, TOKEN, FakeGithub, github_workmill_yml
from workmill.cache import EntryFile, EntryManifest
from workmill.cache.backend import CacheCorrupt, CacheUnavailable
from workmill.fsio import sha256_bytes
from workmill.github import GithubCacheBackend, GithubClient
from workmill.github import _cache_service as svc

KEY = "a" * 64


@pytest.fixture
def fake():
    with FakeGithub(page_size=10) as f:
        yield f
        assert f.violations == []
        assert f.blob_auth_seen == 0  # signed URLs never get a credential


@pytest.fixture
def backend(fake):
    cache = ActionsCacheFake(fake)
    client = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
    service = svc.CacheServiceClient(
        cache.env["ACTIONS_RESULTS_URL"], cache.env["ACTIONS_RUNTIME_TOKEN"], sleep=lambda s: None
    )
    b = GithubCacheBackend(client, OWNER_REPO, service)
    b.cache_fake = cache  # type: ignore[attr-defined]
    yield b
    client.close()
    service.close()


def _entry(src: Path, files: dict[str, bytes], key: str = KEY) -> EntryManifest:
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return EntryManifest(
        key=key,
        tenant_id=T1,
        module_id="001",
        module_version="1.0.0",
        created_at="2026-11-23T12:00:00Z",
        expires_at="2026-12-23T12:00:00Z",
        retention_days=30,
        files=tuple(EntryFile(rel, len(d), sha256_bytes(d)) for rel, d in sorted(files.items())),
    )


def test_cache_service__save_then_restore_follows_the_toolkit_protocol(backend, tmp_path):
    files = {"out.txt": b"hello", "sub/deep.bin": os.urandom(70_000)}
    entry = _entry(tmp_path / "src", files)
    backend.save(entry, tmp_path / "src")
    assert backend.cache_fake.calls == ["CreateCacheEntry", "FinalizeCacheEntryUpload"]
    assert [e.key for e in backend.list_entries()] == [KEY]  # the REST API sees it

    fresh = GithubCacheBackend(backend.client, OWNER_REPO, backend.service)
    assert fresh.read_manifest(KEY) == entry
    manifest, placed = fresh.restore(KEY, tmp_path / "dest")
    assert manifest == entry
    assert {p.rel: p.path.read_bytes() for p in placed} == files
    assert backend.cache_fake.calls[2:] == ["GetCacheEntryDownloadURL"]  # downloaded once


def test_cache_service__a_key_is_saved_once_and_a_miss_is_none(backend, tmp_path):
    entry = _entry(tmp_path / "src", {"o": b"1"})
    backend.save(entry, tmp_path / "src")
    with pytest.raises(CacheUnavailable, match="already exists"):
        backend.save(entry, tmp_path / "src")
    assert backend.read_manifest("b" * 64) is None
    assert backend.restore("b" * 64, tmp_path / "d") is None


def test_cache_service__rest_delete_removes_the_entry_from_the_service(backend, tmp_path):
    backend.save(_entry(tmp_path / "src", {"o": b"1"}), tmp_path / "src")
    assert backend.delete(KEY) is True
    fresh = GithubCacheBackend(backend.client, OWNER_REPO, backend.service)
    assert fresh.read_manifest(KEY) is None


def test_cache_service__large_archive_goes_up_in_blocks(backend, tmp_path, monkeypatch):
    monkeypatch.setattr(svc, "SINGLE_PUT_MAX", 10_000)
    monkeypatch.setattr(svc, "BLOCK_BYTES", 8_192)
    files = {"big.bin": os.urandom(50_000)}
    backend.save(_entry(tmp_path / "src", files), tmp_path / "src")
    assert len(next(iter(backend.cache_fake.blocks.values()))) >= 6
    fresh = GithubCacheBackend(backend.client, OWNER_REPO, backend.service)
    _, placed = fresh.restore(KEY, tmp_path / "dest")
    assert placed[0].path.read_bytes() == files["big.bin"]


def test_cache_service__tampered_entry_is_corrupt_and_leaves_nothing(backend, tmp_path):
    backend.save(_entry(tmp_path / "src", {"a.txt": b"aaaa", "b.txt": b"bbbb"}), tmp_path / "src")
    blob = next(iter(backend.cache_fake.blobs))
    backend.cache_fake.blobs[blob] = backend.cache_fake.blobs[blob].replace(b"bbbb", b"BBBB")
    fresh = GithubCacheBackend(backend.client, OWNER_REPO, backend.service)
    with pytest.raises(CacheCorrupt):
        fresh.restore(KEY, tmp_path / "dest")
    assert not [p for p in (tmp_path / "dest").rglob("*") if p.is_file()]


def test_cache_service__outside_a_job_lookups_miss_and_saves_are_refused(fake, tmp_path):
    client = GithubClient(TOKEN, fake.url, sleep=lambda s: None)
    b = GithubCacheBackend(client, OWNER_REPO, svc.CacheServiceClient.from_env({}))
    assert b.read_manifest(KEY) is None
    with pytest.raises(CacheUnavailable, match="inside a workflow job"):
        b.save(_entry(tmp_path, {"o": b"1"}), tmp_path)
    client.close()


def test_cache_service__wrong_runtime_token_is_unavailable(fake):
    ActionsCacheFake(fake)
    s = svc.CacheServiceClient(fake.url + "/", "not-the-token", sleep=lambda x: None)
    with pytest.raises(CacheUnavailable, match="401"):
        s.lookup(KEY, "v")
    s.close()


def _wm(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_run__reuse_cache_hits_on_the_second_run_through_the_actions_cache(fake, tmp_path):
    cache = ActionsCacheFake(fake)
    root = build_repo(tmp_path / "repo")
    (root / "workmill.yml").write_text("max_parallel: 1\n" + github_workmill_yml(fake.url))
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "GH_TOKEN": TOKEN, **cache.env}
    for var in ("WORKMILL_REPO", "GITHUB_TOKEN", "GITHUB_REPOSITORY"):
        env.pop(var, None)
    req = [{"module_id": "001", "reuse_output_type": "cache", "params": {"n": 5}}]
    work_order(root, T1, "C1aaaaaa", req)
    for args in (
        ("maintenance",),
        ("state", "bootstrap"),
        *(
            ("topup", "--tenant-id", t, "--topup-method-id", "AD", "--amount-credits", "500",
             "--reference", f"r-{t}")
            for t in (T1, T2)
        ),
    ):  # fmt: skip
        r = _wm(root, env, *args)
        assert r.returncode == 0, r.stdout + r.stderr

    def run() -> dict:
        r = _wm(root, env, "run", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        rows = json.loads(r.stdout)["work_orders"]
        return {w["work_order_id"]: w["modules"][0] for w in rows if w["modules"]}

    assert run()["C1aaaaaa"]["cache_hit"] is False
    assert "FinalizeCacheEntryUpload" in cache.calls
    work_order(root, T1, "C2aaaaaa", req)
    work_order(root, T2, "C3aaaaaa", req)  # another tenant: its own key, a miss
    second = run()
    assert second["C2aaaaaa"]["cache_hit"] is True
    assert second["C3aaaaaa"]["cache_hit"] is False
    assert len({c["key"] for c in fake.caches}) == 2  # one entry per tenant, in the service
