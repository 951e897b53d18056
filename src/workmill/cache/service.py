"""What the orchestrator calls: look up and restore, store, and where WM_CACHE_DIR lives.

Neither call writes the billing state: each returns an :class:`IndexMutation`
for ``cache_index.csv`` that the caller applies in its settle commit (and can
re-apply after a StateConflict). A cache problem is never fatal to a work
order: a lookup that meets a corrupt entry, a foreign tenant's entry or an
unreadable store is a miss, reported through ``on_problem`` and the
``workmill.cache`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workmill import clock, ids
from workmill.cache import index as cache_index
from workmill.cache.backend import (
    CacheBackend,
    CacheCorrupt,
    CacheError,
    CacheUnavailable,
    EntryFile,
    EntryManifest,
    RestoredFile,
)
from workmill.cache.index import IndexMutation
from workmill.cache.keys import cache_key, input_hashes
from workmill.cache.local import DEPS
from workmill.digest import module_digest
from workmill.fsio import sha256_file
from workmill.repo import PlatformRepo
from workmill.specs import ModuleSpec
from workmill.tables import Row

log = logging.getLogger("workmill.cache")


@dataclass(frozen=True)
class CacheRequest:
    """Everything that identifies a cached result (docs/reference.md "Files of a platform repo"); ``key`` is derived from it."""

    tenant_id: str
    module_id: str
    module_version: str
    module_digest: str
    params: Mapping[str, Any] = field(default_factory=dict)
    input_hashes: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return cache_key(
            tenant_id=self.tenant_id,
            module_id=self.module_id,
            module_version=self.module_version,
            module_digest=self.module_digest,
            params=self.params,
            input_hashes=self.input_hashes,
        )


@dataclass(frozen=True)
class CacheProblem:
    """Why a lookup that found something still missed; the caller logs it."""

    key: str
    kind: str  # corrupt | unavailable | tenant_mismatch
    message: str

    def __str__(self) -> str:
        return f"cache {self.kind}: {self.message}"


@dataclass(frozen=True)
class CacheHit:
    """A live entry restored into ``dest_dir``: its files, and the index row update."""

    key: str
    entry: EntryManifest
    files: list[RestoredFile]
    index_mutation: IndexMutation

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


@dataclass(frozen=True)
class StoreResult:
    key: str
    entry: EntryManifest
    index_mutation: IndexMutation


def build_request(
    repo: PlatformRepo,
    *,
    tenant_id: str,
    module_id: str,
    params: Mapping[str, Any],
    inputs_dir: Path | None,
) -> CacheRequest:
    """The request for a module run: version from module.yml, digest of the module folder,
    params after defaults, and the sha256 of every file under ``inputs_dir``."""
    spec = repo.module(module_id)
    return CacheRequest(
        tenant_id=tenant_id,
        module_id=module_id,
        module_version=spec.version,
        module_digest=module_digest(repo.module_dir(module_id)),
        params=dict(params),
        input_hashes=input_hashes(inputs_dir) if inputs_dir else {},
    )


def retention_days_for(module: ModuleSpec, override: int | None = None) -> int:
    """``cache_retention_override`` when given, else the module's ``cache.retention_days``."""
    return override if override is not None else module.cache.retention_days


def _report(on_problem: Callable[[CacheProblem], None] | None, problem: CacheProblem) -> None:
    log.warning("%s", problem)
    if on_problem is not None:
        on_problem(problem)


def lookup_and_restore(
    backend: CacheBackend,
    request: CacheRequest,
    dest_dir: Path,
    *,
    index_rows: Sequence[Row] | None = None,
    now: datetime | None = None,
    on_problem: Callable[[CacheProblem], None] | None = None,
) -> CacheHit | None:
    """Restore the request's live entry into ``dest_dir``; None on any kind of miss.

    Served only when the entry exists, belongs to the requesting tenant (the
    tenant is in the key *and* recorded in the entry), has not expired per its
    own manifest nor per its index row (when ``index_rows`` are given), and
    every file verifies. ``dest_dir`` is meant to be the module's outputs
    directory, which downstream modules only read: large files may be hard
    links into the cache (read-only, 0444).
    """
    now = now or clock.now()
    key = request.key
    try:
        manifest = backend.read_manifest(key)
        if manifest is None:
            return None
        if manifest.tenant_id != request.tenant_id or manifest.module_id != request.module_id:
            _report(
                on_problem,
                CacheProblem(
                    key,
                    "tenant_mismatch",
                    f"entry {key[:12]} belongs to tenant {manifest.tenant_id} module "
                    f"{manifest.module_id}, not {request.tenant_id} {request.module_id}",
                ),
            )
            return None
        if manifest.is_expired(now):
            return None
        if index_rows is not None:
            row = cache_index.find_row(index_rows, key)
            if row is not None and cache_index.is_expired(row, now):
                return None
        restored = backend.restore(key, dest_dir)
    except CacheCorrupt as exc:
        _report(on_problem, CacheProblem(key, "corrupt", str(exc)))
        return None
    except (CacheError, OSError) as exc:
        message = str(exc) if isinstance(exc, CacheError) else f"{exc.strerror or exc}"
        _report(on_problem, CacheProblem(key, "unavailable", message))
        return None
    if restored is None:
        return None
    manifest, files = restored
    backend.touch(key, now)
    at = clock.iso(now)
    mutation = IndexMutation(
        f"cache hit {key[:12]} at {at}",
        lambda rows: cache_index.record_hit(rows, key, at),
    )
    return CacheHit(key, manifest, files, mutation)


def outputs_files(outputs_dir: Path) -> list[EntryFile]:
    """Every regular file under ``outputs_dir`` with size and sha256 (symlinks refused)."""
    out = []
    for p in sorted(outputs_dir.rglob("*")):
        rel = p.relative_to(outputs_dir).as_posix()
        if p.is_symlink():
            raise CacheError(f"cannot cache {rel}: it is a symlink")
        if p.is_file():
            out.append(EntryFile(rel, p.stat().st_size, sha256_file(p)))
    return out


def store(
    backend: CacheBackend,
    request: CacheRequest,
    outputs_dir: Path,
    *,
    retention_days: int,
    now: datetime | None = None,
    files: Sequence[EntryFile] | None = None,
) -> StoreResult:
    """Save the outputs of a successful run; raises CacheError/CacheUnavailable on failure.

    ``files`` may come from the run's outputs manifest to avoid hashing twice;
    the backend re-checks every hash while copying. A failed store must not
    fail the module: log it and go on (the next identical request misses).
    """
    if retention_days < 1:
        raise CacheError(f"retention_days must be at least 1, got {retention_days}")
    now = now or clock.now()
    created = clock.iso(now)
    expires = clock.iso(cache_index.expires_at(clock.parse_iso(created), retention_days))
    entry = EntryManifest(
        key=request.key,
        tenant_id=request.tenant_id,
        module_id=request.module_id,
        module_version=request.module_version,
        created_at=created,
        expires_at=expires,
        retention_days=retention_days,
        files=tuple(
            sorted(files if files is not None else outputs_files(outputs_dir), key=lambda f: f.path)
        ),
    )
    backend.save(entry, outputs_dir)
    mutation = IndexMutation(
        f"cache save {entry.key[:12]} ({entry.size_bytes} bytes, {retention_days} days)",
        lambda rows: cache_index.record_save(
            rows,
            cache_key=entry.key,
            tenant_id=entry.tenant_id,
            module_id=entry.module_id,
            module_version=entry.module_version,
            created_at=entry.created_at,
            expires_at=entry.expires_at,
            retention_days=entry.retention_days,
            size_bytes=entry.size_bytes,
        ),
    )
    return StoreResult(entry.key, entry, mutation)


def module_deps_dir(repo: PlatformRepo, module_id: str, tenant_id: str) -> Path:
    """``WM_CACHE_DIR``: ``<local_cache_dir>/deps/<module_id>/<tenant_id>/``, created, kept.

    Per machine, module and tenant: it is writable inside the sandbox, so a
    folder shared by two tenants' runs would let one tenant's run plant files
    the other's run then trusts. Not governed by the index or prune.
    """
    msg = ids.check(ids.IdKind.MODULE, module_id) or ids.check(ids.IdKind.TENANT, tenant_id)
    if msg:
        raise CacheError(msg)
    path = repo.local_cache_dir / DEPS / module_id / tenant_id
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheUnavailable(f"cannot create WM_CACHE_DIR {path}: {exc.strerror or exc}") from exc
    return path
