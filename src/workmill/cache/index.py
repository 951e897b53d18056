"""Pure functions over ``cache_index.csv`` rows (docs/reference.md "Billing rules"): the cache's governance record.

Rows are plain ``dict[str, str]`` with the documented columns (as workmill.tables
reads them). Every function returns a new list and never mutates its input,
so a caller can re-apply the same change to a fresher copy of the state after
a commit conflict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from workmill import clock
from workmill.billing_tables import CACHE_INDEX, COLUMNS
from workmill.cache.backend import EntryInfo
from workmill.errors import WorkmillError
from workmill.tables import Row, header_with_extras

INDEX_COLUMNS: tuple[str, ...] = COLUMNS[CACHE_INDEX]
ORIGIN_PLATFORM = "platform"
ORIGIN_ORPHAN = "orphan"


def _row(**values: object) -> Row:
    row = {c: "" for c in INDEX_COLUMNS}
    for k, v in values.items():
        row[k] = "" if v is None else str(v)
    return row


def expires_at(created_at: datetime, retention_days: int) -> datetime:
    return created_at + timedelta(days=retention_days)


def record_save(
    rows: Sequence[Row],
    *,
    cache_key: str,
    tenant_id: str,
    module_id: str,
    module_version: str,
    created_at: str,
    expires_at: str,
    retention_days: int,
    size_bytes: int,
) -> list[Row]:
    """Upsert the row of a freshly saved entry (origin=platform; an orphan row is adopted)."""
    new = _row(
        cache_key=cache_key,
        tenant_id=tenant_id,
        module_id=module_id,
        module_version=module_version,
        created_at=created_at,
        expires_at=expires_at,
        retention_days=retention_days,
        size_bytes=size_bytes,
        origin=ORIGIN_PLATFORM,
        last_hit_at="",
    )
    out = [dict(r) for r in rows if r.get("cache_key") != cache_key]
    extras = next((r for r in rows if r.get("cache_key") == cache_key), None)
    if extras:  # keep any extra columns an operator added
        new = {**extras, **new}
    out.append(new)
    return sorted(out, key=lambda r: r["cache_key"])


def record_hit(rows: Sequence[Row], cache_key: str, at: str) -> list[Row]:
    """Set ``last_hit_at``; a row that is not there is left absent (prune will register it)."""
    return [{**r, "last_hit_at": at} if r.get("cache_key") == cache_key else dict(r) for r in rows]


def find_orphans(
    rows: Sequence[Row], entries: Iterable[EntryInfo], now: datetime, hold_days: int
) -> list[Row]:
    """Index rows for backend entries the index does not know (origin=orphan, held from now)."""
    known = {r.get("cache_key") for r in rows}
    out = []
    for e in entries:
        if e.key in known:
            continue
        m = e.manifest
        out.append(
            _row(
                cache_key=e.key,
                tenant_id=m.tenant_id if m else "",
                module_id=m.module_id if m else "",
                module_version=m.module_version if m else "",
                created_at=e.created_at,
                expires_at=clock.iso(expires_at(now, hold_days)),
                retention_days=hold_days,
                size_bytes=e.size_bytes,
                origin=ORIGIN_ORPHAN,
                last_hit_at="",
            )
        )
    return out


def register(rows: Sequence[Row], new_rows: Iterable[Row]) -> list[Row]:
    """Add rows whose key is not indexed yet (an existing row always wins)."""
    known = {r.get("cache_key") for r in rows}
    out = [dict(r) for r in rows]
    out += [dict(r) for r in new_rows if r["cache_key"] not in known]
    return sorted(out, key=lambda r: r.get("cache_key", ""))


def is_expired(row: Row, now: datetime) -> bool:
    """Expired at ``expires_at`` exactly; a row without a readable expiry is treated as expired."""
    try:
        return clock.parse_iso(row.get("expires_at", "")) <= now
    except WorkmillError:  # a broken row must never keep an entry alive forever
        return True


def select_expired(rows: Sequence[Row], now: datetime) -> list[Row]:
    return [dict(r) for r in rows if is_expired(r, now)]


def drop_rows(rows: Sequence[Row], keys: Iterable[str]) -> list[Row]:
    gone = set(keys)
    return [dict(r) for r in rows if r.get("cache_key") not in gone]


def find_row(rows: Sequence[Row], cache_key: str) -> Row | None:
    return next((dict(r) for r in rows if r.get("cache_key") == cache_key), None)


@dataclass(frozen=True)
class IndexMutation:
    """A change to cache_index.csv, re-appliable to a fresher copy of the rows.

    ``apply`` is pure, so an orchestrator that hits a StateConflict can re-read
    the state and apply the same mutation again.
    """

    description: str
    apply: Callable[[Sequence[Row]], list[Row]]

    def __call__(self, rows: Sequence[Row]) -> list[Row]:
        return self.apply(rows)


def apply_all(rows: Sequence[Row], mutations: Iterable[IndexMutation]) -> list[Row]:
    out = [dict(r) for r in rows]
    for m in mutations:
        out = m.apply(out)
    return out


class IndexHolder(Protocol):
    """What :func:`apply_to_state` needs of a loaded billing state (``BillingState``)."""

    def rows(self, table: str) -> list[Row]: ...

    def header(self, table: str) -> list[str]: ...

    def set_rows(
        self, table: str, rows: Iterable[Mapping[str, Any]], header: Sequence[str] = ()
    ) -> None: ...


def apply_to_state(state: IndexHolder, mutations: Iterable[IndexMutation]) -> list[Row]:
    """Apply mutations to the state's cache_index.csv (use inside ``commit_with_retry``)."""
    rows = apply_all(state.rows(CACHE_INDEX), mutations)
    state.set_rows(CACHE_INDEX, rows, header_with_extras(state.header(CACHE_INDEX), rows))
    return rows
