"""Local backend and service: atomic save, verified restore, expiry, privacy, bad stores."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from workmill import clock
from workmill.cache import (
    CacheError,
    CacheRequest,
    CacheUnavailable,
    EntryManifest,
    LocalCacheBackend,
    apply_all,
    lookup_and_restore,
    module_deps_dir,
    retention_days_for,
    store,
)
from workmill.cache.local import LINK_MIN_BYTES
from workmill.repo import PlatformRepo
from workmill.specs import CacheSpec, ModuleSpec

NOW = clock.parse_iso("2026-11-23T12:00:00Z")


def request(tenant: str = "Ab12Cd", **over) -> CacheRequest:
    fields = {
        "tenant_id": tenant,
        "module_id": "001",
        "module_version": "1.0.0",
        "module_digest": "a" * 64,
        "params": {"rows": 3},
        "input_hashes": {},
    }
    fields.update(over)
    return CacheRequest(**fields)


def outputs(tmp_path: Path, big: bool = False) -> Path:
    out = tmp_path / "run1" / "outputs"
    (out / "sub").mkdir(parents=True)
    (out / "summary.csv").write_text("a,b\n1,2\n")
    (out / "sub" / "report.json").write_text('{"ok": true}')
    if big:
        (out / "big.bin").write_bytes(os.urandom(LINK_MIN_BYTES * 2))
    return out


def saved(tmp_path: Path, big: bool = False, retention: int = 30):
    backend = LocalCacheBackend(tmp_path / "cache")
    req = request()
    result = store(backend, req, outputs(tmp_path, big), retention_days=retention, now=NOW)
    return backend, req, result


def test_store__then_restore_gives_identical_files_and_index_rows(tmp_path):
    backend, req, result = saved(tmp_path, big=True)
    rows = result.index_mutation([])
    assert rows == [
        {
            "cache_key": req.key,
            "tenant_id": "Ab12Cd",
            "module_id": "001",
            "module_version": "1.0.0",
            "created_at": "2026-11-23T12:00:00Z",
            "expires_at": "2026-12-23T12:00:00Z",
            "retention_days": "30",
            "size_bytes": str(result.entry.size_bytes),
            "origin": "platform",
            "last_hit_at": "",
        }
    ]
    dest = tmp_path / "run2" / "outputs"
    later = NOW + timedelta(days=1)
    hit = lookup_and_restore(backend, req, dest, index_rows=rows, now=later)
    assert hit is not None and hit.key == req.key
    src = tmp_path / "run1" / "outputs"
    for rel in ("summary.csv", "sub/report.json", "big.bin"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    methods = {f.rel: f.method for f in hit.files}
    assert methods["summary.csv"] == "copy"
    assert methods["big.bin"] in {"hardlink", "reflink"}
    rows = apply_all(rows, [hit.index_mutation])
    assert rows[0]["last_hit_at"] == "2026-11-24T12:00:00Z"
    assert not list(dest.parent.glob(".outputs.restore.*"))


def test_store__entry_files_are_read_only(tmp_path):
    backend, req, _ = saved(tmp_path, big=True)
    for p in (backend.entry_dir(req.key) / "files").rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o444


def test_store__crash_before_publish_leaves_nothing_served(tmp_path, monkeypatch):
    backend = LocalCacheBackend(tmp_path / "cache")
    req = request()
    real_rename = os.rename

    def crash(src, dst):
        if Path(dst).parent == backend.entries_dir:
            raise KeyboardInterrupt  # the process dies right before publishing
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        store(backend, req, outputs(tmp_path), retention_days=30, now=NOW)
    monkeypatch.undo()
    assert backend.list_entries() == []
    assert lookup_and_restore(backend, req, tmp_path / "dest", now=NOW) is None


def test_restore__hash_mismatch_is_a_reported_miss(tmp_path):
    backend, req, _ = saved(tmp_path, big=True)
    victim = backend.entry_dir(req.key) / "files" / "big.bin"
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    problems = []
    dest = tmp_path / "dest"
    assert lookup_and_restore(backend, req, dest, now=NOW, on_problem=problems.append) is None
    assert [p.kind for p in problems] == ["corrupt"]
    assert "big.bin" in problems[0].message and "does not match" in problems[0].message
    assert not (dest / "big.bin").exists() and not (dest / "summary.csv").exists()


def test_restore__writer_through_hardlink_is_caught_next_time(tmp_path):
    backend, req, _ = saved(tmp_path, big=True)
    dest = tmp_path / "dest"
    hit = lookup_and_restore(backend, req, dest, now=NOW)
    assert hit is not None
    restored = dest / "big.bin"
    restored.chmod(0o644)  # a careless (root) module writing into its input
    with restored.open("r+b") as fh:
        fh.write(b"XXXX")
    problems = []
    again = lookup_and_restore(
        backend, req, tmp_path / "dest2", now=NOW, on_problem=problems.append
    )
    assert again is None and problems and problems[0].kind == "corrupt"


def test_restore__missing_file_is_a_reported_miss(tmp_path):
    backend, req, _ = saved(tmp_path)
    os.unlink(backend.entry_dir(req.key) / "files" / "sub" / "report.json")
    problems = []
    assert (
        lookup_and_restore(backend, req, tmp_path / "d", now=NOW, on_problem=problems.append)
        is None
    )
    assert "missing" in problems[0].message


def test_restore__garbled_manifest_is_a_reported_miss(tmp_path):
    backend, req, _ = saved(tmp_path)
    mpath = backend.entry_dir(req.key) / "entry.json"
    mpath.write_text("{not json")
    problems = []
    assert (
        lookup_and_restore(backend, req, tmp_path / "d", now=NOW, on_problem=problems.append)
        is None
    )
    assert problems[0].kind == "corrupt"
    [info] = backend.list_entries()
    assert info.manifest is None and info.problem and info.size_bytes > 0


def test_restore__index_row_pointing_at_nothing_is_a_plain_miss(tmp_path):
    backend, req, result = saved(tmp_path)
    rows = result.index_mutation([])
    backend.delete(req.key)
    problems = []
    assert (
        lookup_and_restore(
            backend, req, tmp_path / "d", index_rows=rows, now=NOW, on_problem=problems.append
        )
        is None
    )
    assert problems == [] and rows[0]["cache_key"] == req.key


def test_restore__expired_entry_is_never_served(tmp_path):
    backend, req, _ = saved(tmp_path, retention=7)
    dest = tmp_path / "d"
    just_before = NOW + timedelta(days=7) - timedelta(seconds=1)
    assert lookup_and_restore(backend, req, dest, now=just_before) is not None
    assert lookup_and_restore(backend, req, tmp_path / "d2", now=NOW + timedelta(days=7)) is None


def test_restore__expired_index_row_wins_over_live_entry(tmp_path):
    backend, req, result = saved(tmp_path, retention=30)
    rows = result.index_mutation([])
    rows[0]["expires_at"] = "2026-11-24T00:00:00Z"  # an operator shortened it
    later = NOW + timedelta(days=2)
    assert lookup_and_restore(backend, req, tmp_path / "d", index_rows=rows, now=later) is None


def test_restore__another_tenant_misses(tmp_path):
    backend, _, _ = saved(tmp_path)
    assert lookup_and_restore(backend, request("Zx98Yw"), tmp_path / "d", now=NOW) is None


def test_restore__entry_recorded_for_another_tenant_is_refused(tmp_path):
    backend, req, _ = saved(tmp_path)
    mpath = backend.entry_dir(req.key) / "entry.json"
    forged = EntryManifest.from_json(mpath.read_text())
    forged_json = forged.to_json().replace('"Ab12Cd"', '"Zx98Yw"')
    mpath.write_text(forged_json)
    problems = []
    assert (
        lookup_and_restore(backend, req, tmp_path / "d", now=NOW, on_problem=problems.append)
        is None
    )
    assert problems[0].kind == "tenant_mismatch"


def test_store__unwritable_cache_dir_is_a_clear_error_and_restore_a_miss(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    backend = LocalCacheBackend(blocker / "cache")
    with pytest.raises(CacheUnavailable, match="not writable"):
        store(backend, request(), outputs(tmp_path), retention_days=30, now=NOW)
    assert lookup_and_restore(backend, request(), tmp_path / "d", now=NOW) is None
    assert backend.list_entries() == []


def test_store__symlink_in_outputs_is_refused(tmp_path):
    out = outputs(tmp_path)
    (out / "link").symlink_to("/etc/hostname")
    with pytest.raises(CacheError, match="symlink"):
        store(LocalCacheBackend(tmp_path / "c"), request(), out, retention_days=1, now=NOW)


def test_store__same_key_again_replaces_the_entry(tmp_path):
    backend, req, _ = saved(tmp_path, retention=1)
    out = tmp_path / "run1" / "outputs"
    (out / "summary.csv").write_text("a,b\n9,9\n")
    later = NOW + timedelta(days=5)
    result = store(backend, req, out, retention_days=10, now=later)
    assert result.entry.expires_at == "2026-12-08T12:00:00Z"
    hit = lookup_and_restore(backend, req, tmp_path / "d", now=later)
    assert hit is not None and (tmp_path / "d" / "summary.csv").read_text() == "a,b\n9,9\n"
    assert len(backend.list_entries()) == 1


def test_retention_days_for__override_wins():
    module = ModuleSpec(module_id="001", name="x", version="1", cache=CacheSpec(retention_days=30))
    assert retention_days_for(module) == 30
    assert retention_days_for(module, 7) == 7


def test_module_deps_dir__is_persistent_per_module_and_tenant(tmp_path):
    (tmp_path / "workmill.yml").write_text("local_cache_dir: mycache\n")
    repo = PlatformRepo.open(tmp_path)
    d = module_deps_dir(repo, "001", "Tn0001")
    assert d == tmp_path / "mycache" / "deps" / "001" / "Tn0001" and d.is_dir()
    (d / "model.bin").write_text("weights")
    assert (module_deps_dir(repo, "001", "Tn0001") / "model.bin").read_text() == "weights"
    assert not (module_deps_dir(repo, "001", "Tn0002") / "model.bin").exists()
    for module_id, tenant_id in (("../x", "Tn0001"), ("001", "../Tn01"), ("001", "")):
        with pytest.raises(CacheError):
            module_deps_dir(repo, module_id, tenant_id)
