"""The service API the orchestrator calls: request building from a real repo, public names."""

from __future__ import annotations

from pathlib import Path

import pytest

import workmill.cache as cache
from workmill import clock
from workmill.backends import open_cache_backend
from workmill.cache import (
    CacheKeyError,
    LocalCacheBackend,
    build_request,
    lookup_and_restore,
    retention_days_for,
)
from workmill.repo import PlatformRepo

NOW = clock.parse_iso("2026-11-23T12:00:00Z")


def make_repo(root: Path) -> PlatformRepo:
    mod = root / "modules" / "001"
    mod.mkdir(parents=True)
    (mod / "module.yml").write_text(
        'module_id: "001"\nname: Ingest\nversion: "1.4.0"\ncache: {enabled: true, retention_days: 9}\n'
    )
    (mod / "src").mkdir()
    (mod / "src" / "run.py").write_text("print('hi')\n")
    inputs = root / "inputs" / "002"
    inputs.mkdir(parents=True)
    (inputs / "report.json").write_text("{}")
    return PlatformRepo.open(root)


def test_build_request__covers_version_digest_params_and_inputs(tmp_path):
    repo = make_repo(tmp_path)
    r1 = build_request(
        repo, tenant_id="Ab12Cd", module_id="001", params={"n": 1}, inputs_dir=tmp_path / "inputs"
    )
    assert r1.module_version == "1.4.0" and list(r1.input_hashes) == ["002/report.json"]
    same = build_request(
        repo, tenant_id="Ab12Cd", module_id="001", params={"n": 1.0}, inputs_dir=tmp_path / "inputs"
    )
    assert same.key == r1.key
    (tmp_path / "inputs" / "002" / "report.json").write_text('{"x": 1}')
    changed_input = build_request(
        repo, tenant_id="Ab12Cd", module_id="001", params={"n": 1}, inputs_dir=tmp_path / "inputs"
    )
    assert changed_input.key != r1.key
    (tmp_path / "modules" / "001" / "src" / "run.py").write_text("print('changed')\n")
    changed_code = build_request(
        PlatformRepo.open(tmp_path),
        tenant_id="Ab12Cd",
        module_id="001",
        params={"n": 1},
        inputs_dir=tmp_path / "inputs",
    )
    assert changed_code.module_digest != r1.module_digest and changed_code.key != changed_input.key


def test_build_request__symlinked_input_is_refused(tmp_path):
    repo = make_repo(tmp_path)
    (tmp_path / "inputs" / "002" / "evil.json").symlink_to(
        tmp_path / "modules" / "001" / "module.yml"
    )
    with pytest.raises(CacheKeyError, match="symlink"):
        build_request(
            repo, tenant_id="Ab12Cd", module_id="001", params={}, inputs_dir=tmp_path / "inputs"
        )


def test_open_backend__local_under_local_cache_dir(tmp_path):
    (tmp_path / "workmill.yml").write_text("local_cache_dir: c\n")
    backend = open_cache_backend(PlatformRepo.open(tmp_path))
    assert isinstance(backend, LocalCacheBackend) and backend.root == tmp_path / "c"


def test_public_api__is_pinned():
    assert sorted(cache.__all__) == sorted(
        [
            "INDEX_COLUMNS", "CacheBackend", "CacheCorrupt", "CacheError", "CacheHit",
            "CacheKeyError", "CacheProblem", "CacheRequest", "CacheUnavailable", "EntryFile",
            "EntryInfo", "EntryManifest", "IndexMutation", "LocalCacheBackend", "RestoredFile",
            "StoreResult", "apply_all", "apply_to_state", "build_request", "cache_key", "canonical_params",
            "input_hashes", "lookup_and_restore", "module_deps_dir",
            "outputs_files", "retention_days_for", "store",
        ]
    )  # fmt: skip
    for name in cache.__all__:
        assert getattr(cache, name) is not None


def test_service__same_request_twice_misses_then_hits_and_other_tenant_misses(tmp_path):
    repo = make_repo(tmp_path)
    backend = open_cache_backend(repo)
    spec = repo.module("001")
    index: list[dict[str, str]] = []

    def request_for(tenant: str):
        return build_request(
            repo, tenant_id=tenant, module_id="001", params={"n": 1}, inputs_dir=tmp_path / "inputs"
        )

    first_out = tmp_path / "runtime" / "Ab12Cd" / "WO000001" / "001" / "outputs"
    assert (
        lookup_and_restore(backend, request_for("Ab12Cd"), first_out, index_rows=index, now=NOW)
        is None
    )
    first_out.mkdir(parents=True, exist_ok=True)
    (first_out / "summary.csv").write_text("a\n1\n")
    saved = cache.store(
        backend, request_for("Ab12Cd"), first_out, retention_days=retention_days_for(spec), now=NOW
    )
    index = cache.apply_all(index, [saved.index_mutation])
    assert index[0]["expires_at"] == "2026-12-02T12:00:00Z"  # module's 9 days

    second_out = tmp_path / "runtime" / "Ab12Cd" / "WO000002" / "001" / "outputs"
    hit = lookup_and_restore(backend, request_for("Ab12Cd"), second_out, index_rows=index, now=NOW)
    assert hit is not None and (second_out / "summary.csv").read_text() == "a\n1\n"
    assert [f.rel for f in hit.files] == ["summary.csv"]
    index = cache.apply_all(index, [hit.index_mutation])
    assert index[0]["last_hit_at"] == "2026-11-23T12:00:00Z"

    other = tmp_path / "runtime" / "Zx98Yw" / "WO000003" / "001" / "outputs"
    assert (
        lookup_and_restore(backend, request_for("Zx98Yw"), other, index_rows=index, now=NOW) is None
    )
    assert not other.exists() or not any(other.iterdir())
