"""``workmill cache list`` and ``workmill cache prune`` as library functions (docs/reference.md "Files of a platform repo").

Prune lists *every* entry the backend holds, registers those the index does
not know as ``origin=orphan`` (held ``orphan_cache_hold_days`` from now), and
selects expired index rows. Only with ``delete=True`` does it delete: backend
entries first, then their index rows, so a crash in between leaves expired
rows pointing at nothing (removed by the next prune) rather than live-looking
orphans. A dry run changes nothing at all, not even the registrations.

Index rows whose entry is not in this backend ("dangling") are kept unless
expired: with the local backend each machine has its own entries while the
index is shared, so a row may well point at another machine's entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from workmill import clock
from workmill.cache import index as cache_index
from workmill.cache.backend import CacheBackend, CacheError, EntryInfo
from workmill.tables import Row


@dataclass(frozen=True)
class ListedEntry:
    """One line of ``cache list``: a backend entry joined with its index row."""

    cache_key: str
    tenant_id: str
    module_id: str
    module_version: str
    size_bytes: int
    created_at: str
    expires_at: str
    last_hit_at: str
    origin: str  # platform | orphan | "" (not indexed yet)
    in_backend: bool
    in_index: bool
    expired: bool
    problem: str = ""


def list_cache(
    rows: Sequence[Row],
    entries: Sequence[EntryInfo],
    now: datetime,
    *,
    tenant_id: str | None = None,
    expired_only: bool = False,
) -> list[ListedEntry]:
    """Every backend entry, and every index row without one, sorted by key."""
    by_key = {r.get("cache_key", ""): r for r in rows}
    out: list[ListedEntry] = []
    seen = set()
    for e in entries:
        seen.add(e.key)
        row = by_key.get(e.key)
        m = e.manifest
        if row is not None:
            expired = cache_index.is_expired(row, now)
        else:
            expired = m.is_expired(now) if m else False
        out.append(
            ListedEntry(
                cache_key=e.key,
                tenant_id=(row or {}).get("tenant_id") or (m.tenant_id if m else ""),
                module_id=(row or {}).get("module_id") or (m.module_id if m else ""),
                module_version=(row or {}).get("module_version") or (m.module_version if m else ""),
                size_bytes=e.size_bytes,
                created_at=(row or {}).get("created_at") or e.created_at,
                expires_at=(row or {}).get("expires_at") or (m.expires_at if m else ""),
                last_hit_at=(row or {}).get("last_hit_at", ""),
                origin=(row or {}).get("origin", ""),
                in_backend=True,
                in_index=row is not None,
                expired=expired,
                problem=e.problem or "",
            )
        )
    for key, row in by_key.items():
        if key in seen:
            continue
        out.append(
            ListedEntry(
                cache_key=key,
                tenant_id=row.get("tenant_id", ""),
                module_id=row.get("module_id", ""),
                module_version=row.get("module_version", ""),
                size_bytes=_int(row.get("size_bytes", "")),
                created_at=row.get("created_at", ""),
                expires_at=row.get("expires_at", ""),
                last_hit_at=row.get("last_hit_at", ""),
                origin=row.get("origin", ""),
                in_backend=False,
                in_index=True,
                expired=cache_index.is_expired(row, now),
                problem="index row points at no entry in this backend",
            )
        )
    if tenant_id is not None:
        out = [x for x in out if x.tenant_id == tenant_id]
    if expired_only:
        out = [x for x in out if x.expired]
    return sorted(out, key=lambda x: x.cache_key)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would do; pure, computed from the index and the backend listing."""

    orphans: list[Row]
    expired: list[ListedEntry]
    dangling: list[ListedEntry]

    @property
    def expired_bytes(self) -> int:
        return sum(x.size_bytes for x in self.expired if x.in_backend)


def plan_prune(
    rows: Sequence[Row], entries: Sequence[EntryInfo], now: datetime, hold_days: int
) -> PrunePlan:
    orphans = cache_index.find_orphans(rows, entries, now, hold_days)
    after = cache_index.register(rows, orphans)
    listed = list_cache(after, entries, now)
    return PrunePlan(
        orphans=orphans,
        expired=[x for x in listed if x.expired],
        dangling=[x for x in listed if not x.in_backend and not x.expired],
    )


@dataclass
class PruneReport:
    """The outcome of a prune; ``index_rows`` is the index to commit (unchanged on a dry run)."""

    delete: bool
    now: str
    hold_days: int
    registered: list[Row]
    expired: list[ListedEntry]
    deleted: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dangling: list[ListedEntry] = field(default_factory=list)
    index_rows: list[Row] = field(default_factory=list)
    index_changed: bool = False
    leftovers: list[tuple[str, int]] = field(default_factory=list)
    leftovers_removed: list[str] = field(default_factory=list)
    mutation: cache_index.IndexMutation | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "dry_run": not self.delete,
            "now": self.now,
            "orphan_cache_hold_days": self.hold_days,
            "registered": self.registered,
            "registered_bytes": sum(_int(r.get("size_bytes", "")) for r in self.registered),
            "expired": [asdict(x) for x in self.expired],
            "expired_bytes": sum(x.size_bytes for x in self.expired if x.in_backend),
            "deleted": self.deleted,
            "deleted_bytes": sum(
                x.size_bytes for x in self.expired if x.cache_key in set(self.deleted)
            ),
            "failed": [{"cache_key": k, "error": m} for k, m in self.failed],
            "dangling": [asdict(x) for x in self.dangling],
            "leftovers": [{"name": n, "size_bytes": b} for n, b in self.leftovers],
            "leftovers_removed": self.leftovers_removed,
        }


def prune(
    backend: CacheBackend,
    rows: Sequence[Row],
    *,
    now: datetime | None = None,
    hold_days: int = 365,
    delete: bool = False,
) -> PruneReport:
    """Register orphans and remove expired entries (only with ``delete``); see module doc."""
    now = now or clock.now()
    plan = plan_prune(rows, backend.list_entries(), now, hold_days)
    report = PruneReport(
        delete=delete,
        now=clock.iso(now),
        hold_days=hold_days,
        registered=plan.orphans,
        expired=plan.expired,
        dangling=plan.dangling,
        index_rows=[dict(r) for r in rows],
        leftovers=backend.leftovers(),
    )
    if not delete:
        return report
    report.leftovers_removed = backend.remove_leftovers()
    removable: list[str] = []
    for item in plan.expired:
        if not item.in_backend:
            removable.append(item.cache_key)
            continue
        try:
            backend.delete(item.cache_key)
        except (CacheError, OSError) as exc:
            report.failed.append((item.cache_key, str(exc)))
            continue
        report.deleted.append(item.cache_key)
        removable.append(item.cache_key)
    orphans = plan.orphans

    def mutate(rs: Sequence[Row]) -> list[Row]:
        # Re-applied to a fresher index after a conflict: a row re-saved meanwhile
        # (live again) is kept, whatever this prune saw.
        still = [k for k in removable if _expired_or_absent(rs, k, now)]
        return cache_index.drop_rows(cache_index.register(rs, orphans), still)

    report.mutation = cache_index.IndexMutation(
        f"cache prune: register {len(orphans)} orphan(s), drop {len(removable)} expired row(s)",
        mutate,
    )
    report.index_rows = report.mutation.apply(rows)
    report.index_changed = bool(plan.orphans or removable)
    return report


def _expired_or_absent(rows: Sequence[Row], key: str, now: datetime) -> bool:
    row = cache_index.find_row(rows, key)
    return row is None or cache_index.is_expired(row, now)
