"""``BillingState``: one revision of the billing tables in memory, plus the changes to commit.

Small tables (balances, pricing, promotions, top-up methods, cache index) are
read whole. Append-only tables are read lazily — only when a caller asks for
their rows — so a top-up never touches the million rows of history; new rows
are collected with ``append`` and the store writes only the partitions they
land in.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import workmill.ledger.postings as lp
import workmill.ledger.pricing as lq
from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import LedgerError, StateError
from workmill.ledger.records import (
    Item,
    Posting,
    PricingRow,
    Promotion,
    TopupMethod,
    Transaction,
    TxType,
    item_from_row,
    parse_pricing,
    parse_promotions,
    parse_topup_methods,
    transaction_from_row,
)
from workmill.ledger.verify import LedgerTables, Violation, verify
from workmill.state import workorder_index as wi
from workmill.state.manifest import Manifest, PartitionRef
from workmill.state.workorder_index import (
    OPEN_COLUMNS,
    OPEN_WORK_ORDERS,
    PROMO_USAGE,
    PROMO_USAGE_COLUMNS,
    WORKORDER_INDEX,
    WORKORDER_INDEX_COLUMNS,
    WorkOrderRecord,
)
from workmill.tables import TEXT_COLUMNS, Row, neutralise, parse_table

# Derived index that makes top-up idempotency a one-partition lookup.
TOPUP_REFERENCES = "topup_references.csv"
TOPUP_REFERENCE_COLUMNS = (
    "tenant_id",
    "reference",
    "transaction_id",
    "amount_credits",
    "balance_after",
    "topup_method_id",
    "payment_id",
    "created_at",
)
PARTITIONED = (*bt.APPEND_ONLY, TOPUP_REFERENCES, WORKORDER_INDEX)
# Tables computed from the ledger: not exported by `state pull`, never pushed.
DERIVED = (TOPUP_REFERENCES, WORKORDER_INDEX, PROMO_USAGE, OPEN_WORK_ORDERS)

# Which table/column holds the existing IDs of a kind (for de-duplication).
_ID_COLUMNS: dict[ids.IdKind, tuple[str, str]] = {
    ids.IdKind.TRANSACTION: (bt.TRANSACTIONS, "transaction_id"),
    ids.IdKind.TRANSACTION_ITEM: (bt.TRANSACTION_ITEMS, "transaction_item_id"),
    ids.IdKind.REDEMPTION: (bt.PROMOTION_REDEMPTIONS, "redemption_id"),
    ids.IdKind.PAYMENT: (bt.TRANSACTIONS, "payment_id"),
    ids.IdKind.MODULE_RUN: (bt.MODULE_RUNS_LOG, "module_run_id"),
    ids.IdKind.RELEASE: (bt.RELEASES_MAP, "release_id"),
    ids.IdKind.ASSET: (bt.ASSETS_MAP, "asset_id"),
}


def columns_of(table: str) -> tuple[str, ...]:
    if table == TOPUP_REFERENCES:
        return TOPUP_REFERENCE_COLUMNS
    if table == WORKORDER_INDEX:
        return WORKORDER_INDEX_COLUMNS
    if table == PROMO_USAGE:
        return PROMO_USAGE_COLUMNS
    if table == OPEN_WORK_ORDERS:
        return OPEN_COLUMNS
    return bt.required_columns(table)


def partition_group(table: str, row: Mapping[str, str], now_month: str) -> str:
    """Append-only rows go to the month they are committed in; top-up refs to a hash bucket."""
    if table == TOPUP_REFERENCES:
        return "b" + reference_bucket(row["tenant_id"], row["reference"])
    if table == WORKORDER_INDEX:
        return wi.bucket(row["work_order_id"])
    return now_month


def reference_bucket(tenant_id: str, reference: str) -> str:
    return hashlib.sha256(f"{tenant_id}\0{reference}".encode()).hexdigest()[:2]


def next_month(month: str) -> str:
    """``YYYY-MM`` of the month after ``month``."""
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def _cells(row: Mapping[str, Any]) -> Row:
    """Row values as stored (text columns neutralised now, so what is in memory, in the
    derived index and on disk is the same)."""
    out: Row = {}
    for k, v in row.items():
        if v is None:
            out[k] = ""
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = neutralise(str(v)) if k in TEXT_COLUMNS else str(v)
    return out


# (index chunk sha256, work order id) -> its rows there: BillingState._scan
_SCANS: dict[tuple[str, str], tuple[Row, ...]] = {}
_SCAN_MEMO_LIMIT = 4096
_SCAN_MEMO_MIN_BYTES = 64 << 10


class BillingState:
    """One revision of the billing state, and the changes a caller makes to it."""

    def __init__(
        self,
        manifest: Manifest,
        small: dict[str, tuple[list[str], list[Row]]],
        read_asset: Callable[[str], bytes],
        where: str = "",
    ) -> None:
        self.manifest = manifest
        self._small = small
        self._read_asset = read_asset
        self._where = where
        self._raw: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self._full: dict[str, list[Row]] = {}
        self._groups: dict[tuple[str, str], list[Row]] = {}
        self._appended: dict[str, list[Row]] = {}
        self._issued: set[str] = set()
        self._taken_cache: dict[ids.IdKind, tuple[tuple[bool, int], set[str]]] = {}
        self._records: dict[str, WorkOrderRecord] = {}  # stored part, per work order
        self._derived: dict[str, list[Row]] = {}  # derived rows made at commit time
        self._usage_base = list(small.get(PROMO_USAGE, ([], []))[1])  # as stored
        self._open_base = list(small.get(OPEN_WORK_ORDERS, ([], []))[1])  # as stored
        self._opening = self._balances_from_rows()
        self._balances = dict(self._opening)
        self.committed = False
        # the repo's reason policy and alert threshold for the ledger checks (the store sets them)
        self.refundable: Callable[[str], bool | None] | None = None
        self.unsettled_alert_hours: float | None = None

    # ------------------------------------------------------------ reading
    @property
    def revision(self) -> int:
        return self.manifest.revision

    def table_names(self) -> list[str]:
        return sorted(
            set(self.manifest.tables) | set(self._small) | set(self._appended) | set(bt.COLUMNS)
        )

    def is_partitioned(self, table: str) -> bool:
        return table in PARTITIONED

    @property
    def where(self) -> str:
        """What error messages put before an asset's name."""
        return self._where

    def asset_bytes(self, asset: str) -> bytes:
        """An asset's bytes, not kept (a streaming reader must not hold the history)."""
        cached = self._raw.get(asset)
        return cached if cached is not None else self._read_asset(asset)

    def raw_asset(self, asset: str) -> bytes:
        if asset not in self._raw:
            self._raw[asset] = self._read_asset(asset)
        return self._raw[asset]

    def _parse_asset(self, table: str, asset: str) -> tuple[list[str], list[Row]]:
        return parse_table(self.raw_asset(asset), f"{self._where}{asset}", columns_of(table))

    def header(self, table: str) -> list[str]:
        if table in self._small:
            return list(self._small[table][0])
        ref = self.manifest.tables.get(table)
        cols = list(ref.columns) if ref and ref.columns else list(columns_of(table))
        for row in self._appended.get(table, []):
            cols += [k for k in row if k not in cols]
        return cols

    def stored_rows(self, table: str) -> list[Row]:
        """Rows of ``table`` as of this revision (loads every partition of a partitioned table)."""
        if table in self._small:
            return self._small[table][1]
        if table not in self._full:
            ref = self.manifest.tables.get(table)
            rows: list[Row] = []
            if ref is not None:
                for p in sorted(ref.partitions, key=lambda p: p.key):
                    rows.extend(self._parse_asset(table, p.asset)[1])
            self._full[table] = rows
        return self._full[table]

    def rows(self, table: str) -> list[Row]:
        """Stored rows followed by rows appended in this state (treat as read-only)."""
        if table in self._small:
            return self._small[table][1]
        return self.stored_rows(table) + self._appended.get(table, [])

    def is_loaded(self, table: str) -> bool:
        return table in self._small or table in self._full

    def _group_rows(self, table: str, group: str) -> list[Row]:
        key = (table, group)
        if key not in self._groups:
            ref = self.manifest.tables.get(table)
            rows: list[Row] = []
            if ref is not None:
                for p in ref.group_partitions(group):
                    rows.extend(self._parse_asset(table, p.asset)[1])
            self._groups[key] = rows
        return self._groups[key]

    def month_rows(self, table: str, month: str) -> list[Row]:
        """Rows of an append-only table committed in ``month`` (``YYYY-MM``) or the month
        after, then this state's new rows (treat as read-only).

        Append-only rows are partitioned by the month of their commit, which is never
        earlier than their own timestamp, so a reader of one month's activity reads two
        partition groups, not the history; callers filter by the row's own timestamp.
        """
        if table not in bt.APPEND_ONLY:
            raise StateError(f"{table} is not partitioned by month")
        following = next_month(month)
        m = self.manifest
        if (m.only is not None and table not in m.only) or (
            m.groups is not None and not {month, following} <= m.groups
        ):
            raise StateError(f"{table} {month} was not read from the manifest of this state")
        return (
            self._group_rows(table, month)
            + self._group_rows(table, following)
            + self._appended.get(table, [])
        )

    # ------------------------------------------------------------ changing
    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Undo every change made inside the block when it raises: one work order's
        problem must not leave half its rows in a commit shared with other tenants."""
        small = {k: (list(h), list(r)) for k, (h, r) in self._small.items()}
        balances, dirty = dict(self._balances), set(self._dirty)
        lengths = {k: len(v) for k, v in self._appended.items()}
        try:
            yield
        except BaseException:
            self._small, self._balances, self._dirty = small, balances, dirty
            for table, rows in self._appended.items():
                del rows[lengths.get(table, 0) :]
            raise

    @property
    def dirty(self) -> bool:
        return bool(self._dirty) or any(self._appended.values())

    def appended(self, table: str) -> list[Row]:
        return list(self._appended.get(table, [])) + self._derived.get(table, [])

    def changed_tables(self) -> set[str]:
        return set(self._dirty)

    def set_rows(
        self, table: str, rows: Iterable[Mapping[str, Any]], header: Sequence[str] = ()
    ) -> None:
        """Replace a small table (pricing, promotions, topup methods, cache index, ...)."""
        if table in PARTITIONED:
            raise StateError(f"{table} is append-only; use append()")
        if table in DERIVED:
            raise StateError(f"{table} is derived from the ledger; it cannot be set")
        new_rows = [_cells(r) for r in rows]
        base = list(header) or (
            self._small[table][0] if table in self._small else list(columns_of(table))
        )
        for r in new_rows:
            base += [k for k in r if k not in base]
        self._small[table] = (base, new_rows)
        self._dirty.add(table)
        if table == bt.TENANTS_CREDITS:
            self._balances = self._balances_from_rows()

    def append(self, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows to an append-only table (workorders log, module runs, release maps, ...)."""
        if table not in PARTITIONED:
            raise StateError(f"{table} is not append-only; use set_rows()")
        if table == WORKORDER_INDEX:
            raise StateError(f"{table} is derived from the ledger; it cannot be appended to")
        new = [_cells(r) for r in rows]
        self._appended.setdefault(table, []).extend(new)
        if table in self._full:
            pass  # rows() concatenates stored + appended
        if table == TOPUP_REFERENCES:
            for r in new:
                self._groups.setdefault(
                    (table, "b" + reference_bucket(r["tenant_id"], r["reference"])), []
                )

    # ------------------------------------------------------------ IDs
    def known_ids(self, kind: ids.IdKind) -> set[str]:
        found = set(self._issued)
        loc = _ID_COLUMNS.get(kind)
        if loc:
            table, col = loc
            source = self.rows(table) if self.is_loaded(table) else self._appended.get(table, [])
            found.update(r.get(col, "") for r in source)
        return found

    def _taken(self, kind: ids.IdKind) -> set[str]:
        """Folded known IDs of ``kind``, kept up to date instead of rebuilt per new ID
        (rebuilding made issuing N IDs in one state O(N^2)); recomputed when a table
        is loaded or rows are appended by someone else."""
        loc = _ID_COLUMNS.get(kind)
        table = loc[0] if loc else ""
        stamp = (
            self.is_loaded(table) if loc else False,
            len(self._appended.get(table, [])) if loc else 0,
        )
        cached = self._taken_cache.get(kind)
        if cached is not None and loc and cached[0][0] == stamp[0] and cached[0][1] <= stamp[1]:
            table, col = loc  # only appended since: add those
            taken = cached[1]
            taken.update(
                ids.fold(r.get(col, "")) for r in self._appended.get(table, [])[cached[0][1] :]
            )
            cached = (stamp, taken)
        elif cached is None or cached[0] != stamp:
            cached = (stamp, {ids.fold(x) for x in self.known_ids(kind)})
        self._taken_cache[kind] = cached
        return cached[1]

    def new_id(self, kind: ids.IdKind) -> str:
        """A fresh ID, unique against every ID of its kind this state has loaded or issued.

        Append-only history that was never loaded is not scanned (that would make a
        top-up cost O(history)); 62^8 IDs make a clash negligible and ``ledger
        verify`` checks global uniqueness.
        """
        taken = self._taken(kind)
        new = ids.generate_free(kind, taken.__contains__)
        taken.add(ids.fold(new))
        self._issued.add(new)
        return new

    # ------------------------------------------------------------ balances
    def _balances_from_rows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in self._small.get(bt.TENANTS_CREDITS, ([], []))[1]:
            try:
                out[row["tenant_id"]] = int(row["balance_credits"])
            except (KeyError, ValueError) as exc:
                raise StateError(f"{bt.TENANTS_CREDITS}: bad row {row}") from exc
        return out

    def balance(self, tenant_id: str) -> int:
        return self._balances.get(tenant_id, 0)

    def balances(self) -> dict[str, int]:
        return dict(sorted(self._balances.items()))

    def _set_balance(self, tenant_id: str, balance: int, at: str) -> None:
        _header, rows = self._small.setdefault(
            bt.TENANTS_CREDITS, (list(columns_of(bt.TENANTS_CREDITS)), [])
        )
        for i, r in enumerate(rows):
            if r.get("tenant_id") == tenant_id:
                rows[i] = {**r, "balance_credits": str(balance), "updated_at": at}
                break
        else:
            rows.append({"tenant_id": tenant_id, "balance_credits": str(balance), "updated_at": at})
            rows.sort(key=lambda r: r.get("tenant_id", ""))
        self._balances[tenant_id] = balance
        self._dirty.add(bt.TENANTS_CREDITS)

    # ------------------------------------------------------------ typed views
    def pricing(self) -> list[PricingRow]:
        return parse_pricing(self.rows(bt.PRICING), f"{self._where}{bt.PRICING}")

    def promotions(self) -> list[Promotion]:
        return parse_promotions(self.rows(bt.PROMOTIONS), f"{self._where}{bt.PROMOTIONS}")

    def topup_methods(self) -> list[TopupMethod]:
        return parse_topup_methods(self.rows(bt.TOPUP_METHODS), f"{self._where}{bt.TOPUP_METHODS}")

    def transactions(
        self, *, tenant_id: str | None = None, work_order_id: str | None = None
    ) -> list[Transaction]:
        return [
            transaction_from_row(r)
            for r in self.rows(bt.TRANSACTIONS)
            if (tenant_id is None or r.get("tenant_id") == tenant_id)
            and (work_order_id is None or r.get("work_order_id") == work_order_id)
        ]

    def transactions_for(self, work_order_id: str) -> list[Transaction]:
        """The work order's transactions (one index bucket, not the whole table)."""
        return [transaction_from_row(r) for r in self.work_order_record(work_order_id).transactions]

    def items_for(self, transaction_id: str, work_order_id: str | None = None) -> list[Item]:
        """Items of a transaction; with the SPEND's ``work_order_id``, from its index bucket."""
        if work_order_id:
            rows: Iterable[Row] = self.work_order_record(work_order_id).spend_items
        else:
            rows = self.rows(bt.TRANSACTION_ITEMS)
        return [item_from_row(r) for r in rows if r.get("transaction_id") == transaction_id]

    # ------------------------------------------------------------ per-work-order index
    @property
    def index_ready(self) -> bool:
        """Whether this revision has the work-order index (older stores get it on their next commit)."""
        return WORKORDER_INDEX in self.manifest.tables

    def _stored_record(self, work_order_id: str) -> WorkOrderRecord:
        rec = self._records.get(work_order_id)
        if rec is not None:
            return rec
        if self.index_ready:
            group = wi.bucket(work_order_id)
            ref = self.manifest.tables[WORKORDER_INDEX]
            found: list[Row] = []
            for p in ref.group_partitions(group):
                found.extend(self._scan(p, work_order_id))
            rec = wi.record_from(work_order_id, found)
        else:  # a store from before the index: read the tables (once, until the next commit)
            txs = {
                r.get("transaction_id", ""): r
                for r in self.stored_rows(bt.TRANSACTIONS)
                if r.get("work_order_id") == work_order_id
            }
            rec = wi.record_from(
                work_order_id,
                wi.derive(
                    log=(
                        r
                        for r in self.stored_rows(bt.WORKORDERS_LOG)
                        if r.get("work_order_id") == work_order_id
                    ),
                    transactions=txs.values(),
                    items=(
                        r
                        for r in self.stored_rows(bt.TRANSACTION_ITEMS)
                        if r.get("transaction_id") in txs
                    ),
                    redemptions=(
                        r
                        for r in self.stored_rows(bt.PROMOTION_REDEMPTIONS)
                        if r.get("work_order_id") == work_order_id
                    ),
                    tx_by_id=txs,
                    plans=(
                        r
                        for r in self.stored_rows(bt.WORKORDER_PLANS)
                        if r.get("work_order_id") == work_order_id
                    ),
                ),
            )
        self._records[work_order_id] = rec
        return rec

    def _scan(self, p: PartitionRef, work_order_id: str) -> tuple[Row, ...]:
        """A work order's rows in one index chunk, remembered by the chunk's sha256.

        Chunks are never rewritten in place, so plan and settle (each on a fresh
        state) scan a long history's big sealed chunks once per process, not once
        per load; a small chunk (a tail) is cheap to scan and is not remembered.
        """
        if p.bytes < _SCAN_MEMO_MIN_BYTES:
            return tuple(wi.scan(self.raw_asset(p.asset), work_order_id))
        key = (p.sha256, work_order_id)
        got = _SCANS.get(key)
        if got is None:
            if len(_SCANS) >= _SCAN_MEMO_LIMIT:
                _SCANS.clear()
            got = _SCANS[key] = tuple(wi.scan(self.raw_asset(p.asset), work_order_id))
        return got

    def _tx_lookup(self, items: Sequence[Row]) -> dict[str, Row]:
        """Transactions the given new items belong to (stored ones only when needed)."""
        txs = {r.get("transaction_id", ""): r for r in self._appended.get(bt.TRANSACTIONS, [])}
        if any(it.get("transaction_id", "") not in txs for it in items):
            stored = {r.get("transaction_id", ""): r for r in self.stored_rows(bt.TRANSACTIONS)}
            txs = {**stored, **txs}
        return txs

    def _pending_rows(self, work_order_id: str | None = None) -> list[Row]:
        """Index rows of this state's new rows (of one work order, or all)."""

        def mine(rows: Iterable[Row]) -> list[Row]:
            return [
                r for r in rows if work_order_id is None or r.get("work_order_id") == work_order_id
            ]

        items = self._appended.get(bt.TRANSACTION_ITEMS, [])
        if work_order_id is not None and items:
            # only this work order's items: deriving every pending item per lookup made
            # planning N work orders in one state O(N^2)
            mine_tx = {
                r.get("transaction_id", "")
                for r in self._appended.get(bt.TRANSACTIONS, [])
                if r.get("work_order_id") == work_order_id
            }
            items = [i for i in items if i.get("transaction_id", "") in mine_tx]
        return wi.derive(
            log=mine(self._appended.get(bt.WORKORDERS_LOG, [])),
            transactions=mine(self._appended.get(bt.TRANSACTIONS, [])),
            items=items,
            redemptions=mine(self._appended.get(bt.PROMOTION_REDEMPTIONS, [])),
            tx_by_id=self._tx_lookup(items) if items else {},
            plans=mine(self._appended.get(bt.WORKORDER_PLANS, [])),
        )

    def work_order_record(
        self, work_order_id: str, *, stored_only: bool = False
    ) -> WorkOrderRecord:
        """The work order's log rows, transactions, SPEND items and redemptions (one bucket)."""
        stored = self._stored_record(work_order_id)
        if stored_only:
            return stored
        new = [r for r in self._pending_rows(work_order_id) if r["work_order_id"] == work_order_id]
        return wi.merge(stored, wi.record_from(work_order_id, new)) if new else stored

    def work_order_status(self, tenant_id: str, work_order_id: str) -> Row | None:
        """The latest workorders_log row of (tenant, work order), or None (never seen)."""
        return self.work_order_record(work_order_id).status(tenant_id)

    def recorded_plan(self, tenant_id: str, work_order_id: str) -> Row | None:
        """The plan row the work order's SPEND recorded (None: not charged, or charged
        before plans were recorded)."""
        rows = [
            r
            for r in self.work_order_record(work_order_id).plans
            if r.get("tenant_id") == tenant_id
        ]
        return rows[-1] if rows else None

    def record_plan(
        self, tenant_id: str, work_order_id: str, spend_transaction_id: str, plan_json: str
    ) -> None:
        """Record what a SPEND pays for, in the SPEND's own commit."""
        self.append(
            bt.WORKORDER_PLANS,
            [
                {
                    "work_order_id": work_order_id,
                    "tenant_id": tenant_id,
                    "spend_transaction_id": spend_transaction_id,
                    "created_at": clock.now_iso(),
                    "plan_sha256": hashlib.sha256(plan_json.encode()).hexdigest(),
                    "plan": plan_json,
                }
            ],
        )

    def open_work_orders(self) -> list[Row]:
        """Charged, unsettled work orders (latest log row RUNNING), this state's rows included."""
        if OPEN_WORK_ORDERS in self.manifest.tables:
            base: list[Row] = self._open_base
        else:  # a store from before the table: derive it from the log (once, until committed)
            base = wi.open_after([], self.stored_rows(bt.WORKORDERS_LOG))
        return wi.open_after(base, self._appended.get(bt.WORKORDERS_LOG, []))

    # ------------------------------------------------------------ promo usage
    @property
    def promo_usage_ready(self) -> bool:
        return PROMO_USAGE in self.manifest.tables

    def _usage_counter(self) -> Counter[tuple[str, str]]:
        """Uses per (promo, tenant) including this state's new redemptions."""
        new = self._appended.get(bt.PROMOTION_REDEMPTIONS, [])
        if not self.promo_usage_ready or any(not r.get("work_order_id") for r in new):
            return wi.usage_of(self.rows(bt.PROMOTION_REDEMPTIONS))
        counter = wi.usage_counter(self._usage_base)
        for wo in sorted({r["work_order_id"] for r in new}):
            before = list(self._stored_record(wo).redemptions)
            after = before + [r for r in new if r["work_order_id"] == wo]
            counter.update(wi.usage_of(after))
            counter.subtract(wi.usage_of(before))
        return counter

    def promo_usage(self) -> lq.PromoUsage:
        """Promo uses (limits), from the derived counter table plus this state's redemptions."""
        return wi.as_promo_usage(self._usage_counter())

    # ------------------------------------------------------------ commit preparation
    def prepare_commit(self) -> None:
        """Extend the derived tables with this state's new rows (the store calls it).

        Re-entrant: a second call recomputes from scratch. A revision without the
        index (an older store) gets the whole index built from its history, once.
        """
        self._derived = {}
        if self.index_ready:
            rows = self._pending_rows()
        else:
            txs = self.rows(bt.TRANSACTIONS)
            rows = wi.derive(
                log=self.rows(bt.WORKORDERS_LOG),
                transactions=txs,
                items=self.rows(bt.TRANSACTION_ITEMS),
                redemptions=self.rows(bt.PROMOTION_REDEMPTIONS),
                tx_by_id={r.get("transaction_id", ""): r for r in txs},
                plans=self.rows(bt.WORKORDER_PLANS),
            )
        if rows:
            self._derived[WORKORDER_INDEX] = rows
        refs = [
            {c: r.get(c, "") for c in TOPUP_REFERENCE_COLUMNS}
            for r in self._appended.get(bt.TRANSACTIONS, [])
            if r.get("type") == "TOPUP" and r.get("reference")
        ]
        if refs:
            self._derived[TOPUP_REFERENCES] = refs
        self._prepare_open()
        usage = wi.usage_rows(self._usage_counter())
        if usage != self._usage_base or not self.promo_usage_ready:
            self._small[PROMO_USAGE] = (list(PROMO_USAGE_COLUMNS), usage)
            self._dirty.add(PROMO_USAGE)
        elif PROMO_USAGE in self._dirty:  # an earlier call's change no longer holds
            self._small[PROMO_USAGE] = (list(PROMO_USAGE_COLUMNS), list(self._usage_base))
            self._dirty.discard(PROMO_USAGE)

    def _prepare_open(self) -> None:
        opened = self.open_work_orders()
        if opened != self._open_base or OPEN_WORK_ORDERS not in self.manifest.tables:
            self._small[OPEN_WORK_ORDERS] = (list(OPEN_COLUMNS), opened)
            self._dirty.add(OPEN_WORK_ORDERS)

    def find_topup(self, tenant_id: str, reference: str) -> Transaction | None:
        """The TOPUP this (tenant, reference) already made, reading one index bucket."""
        for r in self._appended.get(bt.TRANSACTIONS, []):
            if (
                r.get("type") == "TOPUP"
                and r.get("tenant_id") == tenant_id
                and r.get("reference") == reference
            ):
                return transaction_from_row(r)
        group = "b" + reference_bucket(tenant_id, reference)
        ref = self.manifest.tables.get(TOPUP_REFERENCES)
        needle = reference.encode()
        if ref is not None and (TOPUP_REFERENCES, group) not in self._groups:
            # Skip parsing a bucket whose bytes cannot contain the reference.
            parts = ref.group_partitions(group)
            if not any(needle in self.raw_asset(p.asset) for p in parts):
                return None
        for r in self._group_rows(TOPUP_REFERENCES, group):
            if r.get("tenant_id") == tenant_id and r.get("reference") == reference:
                return Transaction(
                    r["transaction_id"],
                    tenant_id,
                    "",
                    TxType.TOPUP,
                    int(r["amount_credits"]),
                    int(r["balance_after"]),
                    r.get("created_at", ""),
                    reference,
                    r.get("payment_id", ""),
                    r.get("topup_method_id", ""),
                )
        return None

    def find_payment(self, payment_id: str) -> Row | None:
        """The top-up that already used ``payment_id`` (ignoring case), if any.

        Reads the top-up reference index (one row per top-up, not the whole ledger),
        skipping every bucket whose bytes cannot hold the id.
        """
        folded = ids.fold(payment_id)
        for r in self._appended.get(bt.TRANSACTIONS, []):
            if ids.fold(r.get("payment_id", "")) == folded:
                return r
        ref = self.manifest.tables.get(TOPUP_REFERENCES)
        for p in ref.partitions if ref is not None else ():
            data = self.raw_asset(p.asset)
            if folded.encode() not in data.lower():
                continue
            for r in self._parse_asset(TOPUP_REFERENCES, p.asset)[1]:
                if ids.fold(r.get("payment_id", "")) == folded:
                    return r
        return None

    # ------------------------------------------------------------ ledger operations
    def post(self, posting: Posting) -> Posting:
        """Append a posting and move the tenant's balance; the chain must continue exactly."""
        tx = posting.transaction
        before = self.balance(tx.tenant_id)
        if before + tx.amount_credits != tx.balance_after:
            raise LedgerError(
                f"transaction {tx.transaction_id}: balance_after {tx.balance_after} does not follow "
                f"{before} + {tx.amount_credits}"
            )
        if tx.balance_after < 0:
            raise LedgerError(f"tenant {tx.tenant_id}: balance would become {tx.balance_after}")
        self.append(bt.TRANSACTIONS, [tx.to_row()])
        if posting.items:
            self.append(bt.TRANSACTION_ITEMS, [i.to_row() for i in posting.items])
        if posting.redemptions:
            self.append(bt.PROMOTION_REDEMPTIONS, [r.to_row() for r in posting.redemptions])
        self._set_balance(tx.tenant_id, tx.balance_after, tx.created_at)
        return posting

    def topup(
        self, tenant_id: str, method_id: str, amount: int, reference: str, payment_id: str = ""
    ) -> lp.TopupOutcome:
        """Top up (idempotent per (tenant, reference)); posts nothing when it was done before."""
        methods = {m.topup_method_id: m for m in self.topup_methods()}
        existing = self.find_topup(tenant_id, reference)
        if payment_id and existing is None and (used := self.find_payment(payment_id)):
            raise LedgerError(
                f"payment id {payment_id} was already used by transaction "
                f"{used.get('transaction_id')} (tenant {used.get('tenant_id')}, reference "
                f"{used.get('reference')!r}); one payment credits once"
            )
        out = lp.topup_posting(
            tenant_id=tenant_id,
            method=methods.get(method_id),
            method_id=method_id,
            amount=amount,
            reference=reference,
            payment_id=payment_id,
            balance=self.balance(tenant_id),
            existing=existing,
            now=clock.now_iso(),
            new_id=self.new_id,
        )
        if out.posting is not None:
            self.post(out.posting)
        return out

    def quote(
        self, tenant_id: str, lines: Sequence[lq.OrderLine], promo_codes: Sequence[str] = ()
    ) -> lq.Quote:
        """Price a work order against this state's pricing, promotions and promo usage."""
        return lq.quote(
            lines,
            self.pricing(),
            self.promotions() if promo_codes else (),
            promo_codes,
            tenant_id=tenant_id,
            now=clock.now(),
            usage=self.promo_usage() if promo_codes else None,
        )

    def spend(self, q: lq.Quote, tenant_id: str, work_order_id: str) -> Posting:
        """Write the SPEND of a quote (OrderRejected INSUFFICIENT_CREDITS when short)."""
        if self.work_order_record(work_order_id).of_type("SPEND"):
            raise LedgerError(f"work order {work_order_id} already has a SPEND")
        return self.post(
            lp.spend_posting(
                q,
                tenant_id=tenant_id,
                work_order_id=work_order_id,
                balance=self.balance(tenant_id),
                now=clock.now_iso(),
                new_id=self.new_id,
            )
        )

    def spend_quote(self, work_order_id: str) -> lq.Quote | None:
        """The quote of the work order's SPEND (None without one), to settle it later."""
        rec = self.work_order_record(work_order_id)
        spends = rec.of_type("SPEND")
        if not spends:
            return None
        tx = transaction_from_row(spends[0])
        codes = [
            r["promo_code"]
            for r in rec.redemptions
            if r.get("transaction_id") == tx.transaction_id and r.get("event") == "APPLIED"
        ]
        items = [
            item_from_row(r)
            for r in rec.spend_items
            if r.get("transaction_id") == tx.transaction_id
        ]
        return lp.quote_from_spend(tx, items, codes)

    def refund(self, work_order_id: str, refunded: Mapping[str, lp.RefundLine]) -> Posting:
        """Write the work order's REFUND (always, even 0) for the given module lines."""
        rec = self.work_order_record(work_order_id)
        if rec.of_type("REFUND"):
            raise LedgerError(f"work order {work_order_id} already has a REFUND")
        q = self.spend_quote(work_order_id)
        if q is None:
            raise LedgerError(f"work order {work_order_id} has no SPEND to refund")
        tenant_id = rec.of_type("SPEND")[0]["tenant_id"]
        return self.post(
            lp.refund_posting(
                q,
                refunded,
                tenant_id=tenant_id,
                work_order_id=work_order_id,
                balance=self.balance(tenant_id),
                now=clock.now_iso(),
                new_id=self.new_id,
            )
        )

    # ------------------------------------------------------------ checks
    def verify_changes(self) -> list[Violation]:
        """Ledger invariants over this state's new rows (cheap: history is not re-read).

        Work orders the new rows charge or refund bring their stored transactions in
        (from their index buckets).
        """
        txs = self._appended.get(bt.TRANSACTIONS, [])
        wos = sorted({r["work_order_id"] for r in txs if r.get("work_order_id")})
        prior = [r for wo in wos for r in self.work_order_record(wo, stored_only=True).transactions]
        prior_ids: set[str] = set()
        for table, col in (
            (bt.TRANSACTIONS, "transaction_id"),
            (bt.TRANSACTION_ITEMS, "transaction_item_id"),
            (bt.PROMOTION_REDEMPTIONS, "redemption_id"),
        ):
            if table in self._full:
                prior_ids.update(ids.fold(r.get(col, "")) for r in self._full[table])
        t = LedgerTables(
            transactions=txs,
            items=self._appended.get(bt.TRANSACTION_ITEMS, []),
            redemptions=self._appended.get(bt.PROMOTION_REDEMPTIONS, []),
            tenants_credits=self.rows(bt.TENANTS_CREDITS),
            opening=self._opening,
            prior_ids=frozenset(prior_ids),
            prior_transactions=prior,
            module_runs=self._appended.get(bt.MODULE_RUNS_LOG, []),
            refundable=self.refundable,
        )
        return verify(t)

    def verify_all(self, open_only: set[tuple[str, str]] | None = None) -> list[Violation]:
        """Every ledger invariant over every row (loads the whole history).

        ``open_only`` limits the long-RUNNING alert to those (tenant, work order) pairs
        (a push is refused for RUNNING rows it adds, not for a run still going elsewhere).
        """
        opened = self.open_work_orders()
        if open_only is not None:
            opened = [r for r in opened if (r["tenant_id"], r["work_order_id"]) in open_only]
        return verify(
            LedgerTables(
                transactions=self.rows(bt.TRANSACTIONS),
                items=self.rows(bt.TRANSACTION_ITEMS),
                redemptions=self.rows(bt.PROMOTION_REDEMPTIONS),
                tenants_credits=self.rows(bt.TENANTS_CREDITS),
                module_runs=self.rows(bt.MODULE_RUNS_LOG),
                refundable=self.refundable,
                open_work_orders=opened,
                now=clock.now_iso(),
                unsettled_alert_hours=self.unsettled_alert_hours,
            )
        )

    def open_violations(self, want: list[Row]) -> list[Violation]:
        """open_work_orders.csv against ``want`` (what the workorders_log gives)."""
        if OPEN_WORK_ORDERS not in self.manifest.tables:
            return []
        have = self.rows(OPEN_WORK_ORDERS)
        if want == have:
            return []
        return [
            Violation(
                "derived-open-work-orders",
                f"{OPEN_WORK_ORDERS}: {len(have)} row(s), the workorders_log gives "
                f"{len(want)} (or they differ)",
            )
        ]

    def verify_derived(self) -> list[Violation]:
        """The derived tables equal what the ledger tables give (loads the whole history).

        A revision from before the work-order index has none to check; its next
        commit builds it.
        """
        out: list[Violation] = []
        txs = self.stored_rows(bt.TRANSACTIONS)
        if self.index_ready:
            out += self._index_violations(txs)
        out += self.promo_usage_violations(self.stored_rows(bt.PROMOTION_REDEMPTIONS))
        out += self.open_violations(wi.open_after([], self.stored_rows(bt.WORKORDERS_LOG)))
        want_refs = {
            (r.get("tenant_id", ""), r.get("reference", "")): r.get("transaction_id", "")
            for r in txs
            if r.get("type") == "TOPUP" and r.get("reference")
        }
        have_refs = None
        if TOPUP_REFERENCES in self.manifest.tables:
            have_refs = {
                (r.get("tenant_id", ""), r.get("reference", "")): r.get("transaction_id", "")
                for r in self.stored_rows(TOPUP_REFERENCES)
            }
        return out + self.topup_reference_violations(want_refs, have_refs)

    def _index_violations(self, txs: list[Row]) -> list[Violation]:
        out: list[Violation] = []
        want = wi.canonical(
            wi.derive(
                log=self.stored_rows(bt.WORKORDERS_LOG),
                transactions=txs,
                items=self.stored_rows(bt.TRANSACTION_ITEMS),
                redemptions=self.stored_rows(bt.PROMOTION_REDEMPTIONS),
                tx_by_id={r.get("transaction_id", ""): r for r in txs},
                plans=self.stored_rows(bt.WORKORDER_PLANS),
            )
        )
        have = wi.canonical(self.stored_rows(WORKORDER_INDEX))
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                wo, source = key
                out.append(
                    Violation(
                        "derived-index",
                        f"{WORKORDER_INDEX}: work order {wo!r} {source} rows: index has "
                        f"{len(have.get(key, []))}, the ledger tables give "
                        f"{len(want.get(key, []))} (or they differ)",
                        tuple(f"{WORKORDER_INDEX} {v}" for v in have.get(key, [])[:3]),
                    )
                )
        misplaced = [
            p.key
            for p in self.manifest.tables[WORKORDER_INDEX].partitions
            if any(
                wi.bucket(r.get("work_order_id", "")) != p.group
                for r in self._parse_asset(WORKORDER_INDEX, p.asset)[1]
            )
        ]
        if misplaced:
            out.append(
                Violation(
                    "derived-index",
                    f"{WORKORDER_INDEX}: rows stored outside their bucket in {', '.join(misplaced)}",
                )
            )
        return out

    def promo_usage_violations(self, redemptions: Sequence[Row]) -> list[Violation]:
        """promo_usage.csv against what ``redemptions`` (every stored one) give."""
        if not self.promo_usage_ready:
            return []
        out: list[Violation] = []
        want_u = {k: v for k, v in wi.usage_of(redemptions).items() if v}
        have_u = {k: v for k, v in wi.usage_counter(self.rows(PROMO_USAGE)).items() if v}
        for code, tenant in sorted(set(want_u) | set(have_u)):
            a, b = have_u.get((code, tenant), 0), want_u.get((code, tenant), 0)
            if a != b:
                out.append(
                    Violation(
                        "derived-promo-usage",
                        f"{PROMO_USAGE}: promo {code} tenant {tenant}: {a} use(s) recorded, "
                        f"the redemptions give {b}",
                    )
                )
        return out

    def topup_reference_violations(
        self,
        want_refs: Mapping[tuple[str, str], str],
        have_refs: Mapping[tuple[str, str], str] | None,
    ) -> list[Violation]:
        """topup_references.csv (None: this revision has none) against the TOPUPs."""
        if have_refs is None:
            return []
        return [
            Violation(
                "derived-topup-reference",
                f"{TOPUP_REFERENCES}: tenant {key[0]} reference {key[1]!r}: index says "
                f"{have_refs.get(key) or 'none'}, transactions say {want_refs.get(key) or 'none'}",
            )
            for key in sorted(set(want_refs) | set(have_refs))
            if want_refs.get(key) != have_refs.get(key)
        ]
