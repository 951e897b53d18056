"""Derived, bucketed per-work-order index and promo-usage counters (pure functions, no I/O).

Planning and settling a work order need only *its own* history: its latest
``workorders_log`` row, its SPEND (with items and APPLIED redemptions) and
whether it has a REFUND. Reading those from the whole append-only tables makes
a run's cost grow with history, so every row that belongs to a work order is
also copied into ``workorder_index.csv``, partitioned into 256 hash buckets of
the work order id. A lookup reads one bucket and parses only the lines that
start with the work order id: each index row is one physical line (newlines
in values are escaped), so the bucket never has to be parsed whole.

Promo limits need the number of not-fully-reversed uses per (promo, tenant);
``promo_usage.csv`` keeps exactly what ``ledger.pricing.promo_usage`` would
compute from all redemptions, and a commit moves it by the difference its new
redemptions make to their work orders.

Both tables are derived: ``state pull`` does not export them, ``state push``
and the commit protocol extend them, ``ledger verify`` rebuilds and compares.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from workmill import billing_tables as bt
from workmill.ledger.pricing import PromoUsage, promo_usage
from workmill.ledger.records import parse_redemptions

Row = dict[str, str]

WORKORDER_INDEX = "workorder_index.csv"
PROMO_USAGE = "promo_usage.csv"
PROMO_USAGE_COLUMNS = ("promo_code", "tenant_id", "uses")

# Index row = work order id, which source table the row copies, then the
# source row's standard columns by position (c01..c11; shorter rows leave blanks).
SOURCES: dict[str, str] = {
    "log": bt.WORKORDERS_LOG,
    "tx": bt.TRANSACTIONS,
    "item": bt.TRANSACTION_ITEMS,
    "red": bt.PROMOTION_REDEMPTIONS,
    "plan": bt.WORKORDER_PLANS,
}
_SOURCE_OF = {table: code for code, table in SOURCES.items()}
# the columns copied per source: the standard ones, plus the log's optional content hash
INDEXED: dict[str, tuple[str, ...]] = {t: bt.COLUMNS[t] for t in SOURCES.values()}
INDEXED[bt.WORKORDERS_LOG] = (*bt.COLUMNS[bt.WORKORDERS_LOG], bt.LOG_CONTENT_SHA256)
_WIDTH = max(len(c) for c in INDEXED.values())
VALUE_COLUMNS = tuple(f"c{i:02d}" for i in range(1, _WIDTH + 1))
WORKORDER_INDEX_COLUMNS = ("work_order_id", "source", *VALUE_COLUMNS)


def bucket(work_order_id: str) -> str:
    """Partition group of a work order's index rows (256 buckets)."""
    return "b" + hashlib.sha256(work_order_id.encode()).hexdigest()[:2]


# ------------------------------------------------------------------ encoding
def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append({"n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def encode(work_order_id: str, table: str, row: Mapping[str, str]) -> Row:
    """The index row copying ``row`` of ``table`` (standard columns only)."""
    cols = INDEXED[table]
    out: Row = {"work_order_id": work_order_id, "source": _SOURCE_OF[table]}
    for i, name in enumerate(VALUE_COLUMNS):
        out[name] = _escape(row.get(cols[i], "")) if i < len(cols) else ""
    return out


def decode(index_row: Mapping[str, str]) -> tuple[str, str, Row]:
    """(work order id, source table, source row) of an index row."""
    table = SOURCES.get(index_row.get("source", ""))
    if table is None:
        raise ValueError(f"unknown index source {index_row.get('source')!r}")
    cols = INDEXED[table]
    row = {c: _unescape(index_row.get(VALUE_COLUMNS[i], "")) for i, c in enumerate(cols)}
    return index_row.get("work_order_id", ""), table, row


def scan(data: bytes, work_order_id: str) -> list[Row]:
    """Index rows of ``work_order_id`` in one bucket asset, parsing only their lines."""
    needle = b"\n" + work_order_id.encode() + b","
    lines: list[str] = []
    start = data.find(needle)
    while start >= 0:
        end = data.find(b"\n", start + 1)
        stop = len(data) if end < 0 else end
        lines.append(data[start + 1 : stop].decode())
        start = data.find(needle, stop) if end >= 0 else -1
    if not lines:
        return []
    header = data[: data.find(b"\n")].decode().split(",")
    return [dict(zip(header, values, strict=False)) for values in csv.reader(lines)]


# ------------------------------------------------------------------ deriving
def is_indexed_item(item: Mapping[str, str], txs: Mapping[str, Mapping[str, str]]) -> str:
    """The work order an item is indexed under ('' when not: only SPEND items are)."""
    tx = txs.get(item.get("transaction_id", ""))
    if tx is None or tx.get("type") != "SPEND":
        return ""
    return tx.get("work_order_id", "")


def derive(
    *,
    log: Iterable[Mapping[str, str]] = (),
    transactions: Iterable[Mapping[str, str]] = (),
    items: Iterable[Mapping[str, str]] = (),
    redemptions: Iterable[Mapping[str, str]] = (),
    tx_by_id: Mapping[str, Mapping[str, str]] | None = None,
    plans: Iterable[Mapping[str, str]] = (),
) -> list[Row]:
    """Index rows for source rows: every log row, transaction, redemption and recorded plan
    of a work order, and the items of SPEND transactions (``tx_by_id`` resolves their
    transaction)."""
    out: list[Row] = []
    txs = list(transactions)
    lookup = dict(tx_by_id or {})
    lookup.update((t.get("transaction_id", ""), t) for t in txs)
    for table, rows in ((bt.WORKORDERS_LOG, log), (bt.TRANSACTIONS, txs)):
        for r in rows:
            wo = r.get("work_order_id", "")
            if wo:
                out.append(encode(wo, table, r))
    for it in items:
        wo = is_indexed_item(it, lookup)
        if wo:
            out.append(encode(wo, bt.TRANSACTION_ITEMS, it))
    for table, rows in ((bt.PROMOTION_REDEMPTIONS, redemptions), (bt.WORKORDER_PLANS, plans)):
        for r in rows:
            wo = r.get("work_order_id", "")
            if wo:
                out.append(encode(wo, table, r))
    return out


def canonical(index_rows: Iterable[Mapping[str, str]]) -> dict[tuple[str, str], list[tuple]]:
    """Index rows grouped per (work order, source), in order: two indexes agree when equal."""
    out: dict[tuple[str, str], list[tuple]] = {}
    for r in index_rows:
        out.setdefault((r.get("work_order_id", ""), r.get("source", "")), []).append(
            tuple(r.get(c, "") for c in VALUE_COLUMNS)
        )
    return out


@dataclass(frozen=True)
class WorkOrderRecord:
    """Everything the ledger keeps about one work order, in commit order."""

    work_order_id: str
    log: tuple[Row, ...] = ()
    transactions: tuple[Row, ...] = ()
    spend_items: tuple[Row, ...] = ()
    redemptions: tuple[Row, ...] = ()
    plans: tuple[Row, ...] = ()

    def status(self, tenant_id: str) -> Row | None:
        """The latest workorders_log row of (tenant, work order), or None."""
        for r in reversed(self.log):
            if r.get("tenant_id") == tenant_id:
                return r
        return None

    def of_type(self, tx_type: str) -> list[Row]:
        return [t for t in self.transactions if t.get("type") == tx_type]

    def owners(self) -> set[str]:
        """Tenants holding this work-order id: charged, or logged other than REJECTED
        (a rejection charged nothing and claims no id). More than one: a reused id."""
        logged = (r for r in self.log if r.get("status") != "REJECTED")
        return {r.get("tenant_id", "") for r in (*logged, *self.transactions, *self.plans)}


def record_from(work_order_id: str, index_rows: Iterable[Mapping[str, str]]) -> WorkOrderRecord:
    parts: dict[str, list[Row]] = {t: [] for t in SOURCES.values()}
    for r in index_rows:
        wo, table, row = decode(r)
        if wo == work_order_id:
            parts[table].append(row)
    return WorkOrderRecord(
        work_order_id,
        tuple(parts[bt.WORKORDERS_LOG]),
        tuple(parts[bt.TRANSACTIONS]),
        tuple(parts[bt.TRANSACTION_ITEMS]),
        tuple(parts[bt.PROMOTION_REDEMPTIONS]),
        tuple(parts[bt.WORKORDER_PLANS]),
    )


def merge(a: WorkOrderRecord, b: WorkOrderRecord) -> WorkOrderRecord:
    return WorkOrderRecord(
        a.work_order_id,
        a.log + b.log,
        a.transactions + b.transactions,
        a.spend_items + b.spend_items,
        a.redemptions + b.redemptions,
        a.plans + b.plans,
    )


# ------------------------------------------------------------------ open work orders
OPEN_WORK_ORDERS = "open_work_orders.csv"
OPEN_COLUMNS = ("tenant_id", "work_order_id", "spend_transaction_id", "started_at")


def open_after(base: Iterable[Mapping[str, str]], log: Iterable[Mapping[str, str]]) -> list[Row]:
    """Work orders whose latest log row is RUNNING (charged, not settled), after ``log``.

    A run that dies between SPEND and REFUND leaves its work order here; the next run
    finishes it even when its file was since disabled or deleted, and ``ledger verify``
    reports the ones left open too long — neither has to read the whole log.
    """
    cur = {(r.get("tenant_id", ""), r.get("work_order_id", "")): dict(r) for r in base}
    for r in log:
        key = (r.get("tenant_id", ""), r.get("work_order_id", ""))
        if r.get("status") == "RUNNING":
            cur[key] = {c: r.get(c, "") for c in OPEN_COLUMNS}
        else:
            cur.pop(key, None)
    return [{c: cur[k].get(c, "") for c in OPEN_COLUMNS} for k in sorted(cur)]


# ------------------------------------------------------------------ promo usage
def usage_of(redemptions: Sequence[Mapping[str, str]]) -> Counter[tuple[str, str]]:
    """Uses per (promo, tenant) that ``promo_usage`` counts for these redemptions."""
    u = promo_usage(parse_redemptions(list(redemptions)))
    return Counter(u.per_tenant)


def usage_rows(per_tenant: Mapping[tuple[str, str], int]) -> list[Row]:
    return [
        {"promo_code": code, "tenant_id": tenant, "uses": str(n)}
        for (code, tenant), n in sorted(per_tenant.items())
        if n
    ]


def usage_counter(rows: Iterable[Mapping[str, str]]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for r in rows:
        out[(r.get("promo_code", ""), r.get("tenant_id", ""))] += int(r.get("uses") or 0)
    return out


def as_promo_usage(per_tenant: Mapping[tuple[str, str], int]) -> PromoUsage:
    total: Counter[str] = Counter()
    for (code, _tenant), n in per_tenant.items():
        total[code] += n
    return PromoUsage(
        {k: v for k, v in total.items() if v}, {k: v for k, v in per_tenant.items() if v}
    )
