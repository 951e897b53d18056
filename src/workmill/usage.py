"""``workmill usage``: per tenant and module, what one month cost and used (docs/reference.md
"Registry, tiers, licences, quotas, usage").

Figures come from the ledger and the module-runs log of the month alone: append-only
tables are partitioned by commit month, so the report reads two partition groups
(the month and the one after, for rows committed just past midnight) and never the
history. A row is attributed by its own timestamp (``created_at`` for transactions,
``started_at`` for module runs).

- work orders: distinct work orders whose SPEND has a line for the module
- module runs: module-runs-log rows that ran (every status but SKIPPED)
- spent: the module's SPEND lines (price, artifact price, negative promo lines)
- refunded: its REFUND lines (module and artifact refunds, negative promo reversals)
- net = spent − refunded; module-seconds: Σ duration_ms / 1000 of its runs
- cache hits: runs with ``cache_hit``; artifacts published: runs that published
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from workmill import billing_tables as bt
from workmill.errors import UsageError
from workmill.ledger.records import TxType
from workmill.state import BillingState
from workmill.state.billing_state import next_month

MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
COLUMNS = (
    "tenant_id",
    "module_id",
    "work_orders",
    "module_runs",
    "credits_spent",
    "credits_refunded",
    "credits_net",
    "module_seconds",
    "cache_hits",
    "artifacts_published",
)


@dataclass
class UsageRow:
    tenant_id: str
    module_id: str
    work_orders: int = 0
    module_runs: int = 0
    credits_spent: int = 0
    credits_refunded: int = 0
    credits_net: int = 0
    module_seconds: float = 0.0
    cache_hits: int = 0
    artifacts_published: int = 0
    _orders: set[str] = field(default_factory=set, repr=False)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("_orders")
        d["module_seconds"] = round(self.module_seconds, 3)
        return d


def check_month(month: str) -> str:
    if not MONTH.fullmatch(month):
        raise UsageError(f"--month {month!r}: expected YYYY-MM")
    return month


def _row(rows: dict[tuple[str, str], UsageRow], tenant_id: str, module_id: str) -> UsageRow:
    key = (tenant_id, module_id)
    if key not in rows:
        rows[key] = UsageRow(tenant_id, module_id)
    return rows[key]


def _add_ledger(
    rows: dict[tuple[str, str], UsageRow],
    txs: Iterable[dict[str, str]],
    items: Iterable[dict[str, str]],
    month: str,
    tenant_id: str | None,
) -> None:
    billed = {
        r["transaction_id"]: r
        for r in txs
        if r.get("created_at", "").startswith(month)
        and r.get("type") in (TxType.SPEND, TxType.REFUND)
        and (tenant_id is None or r.get("tenant_id") == tenant_id)
    }
    for it in items:
        tx = billed.get(it.get("transaction_id", ""))
        if tx is None or not it.get("module_id"):
            continue
        row = _row(rows, tx["tenant_id"], it["module_id"])
        amount = int(it["amount_credits"])
        if tx["type"] == TxType.SPEND:
            row.credits_spent += amount
            row._orders.add(tx["work_order_id"])
        else:
            row.credits_refunded += amount


def _add_runs(
    rows: dict[tuple[str, str], UsageRow],
    runs: Iterable[dict[str, str]],
    month: str,
    tenant_id: str | None,
) -> None:
    for r in runs:
        if not r.get("started_at", "").startswith(month) or r.get("status") == "SKIPPED":
            continue
        if tenant_id is not None and r.get("tenant_id") != tenant_id:
            continue
        row = _row(rows, r["tenant_id"], r["module_id"])
        row.module_runs += 1
        row.module_seconds += int(r.get("duration_ms") or 0) / 1000
        row.cache_hits += r.get("cache_hit") == "true"
        row.artifacts_published += r.get("artifacts_published") == "true"


USAGE_TABLES = (bt.TRANSACTIONS, bt.TRANSACTION_ITEMS, bt.MODULE_RUNS_LOG)


def month_state(store, month: str | None = None) -> BillingState:
    """The head revision's manifest, its entries of the three tables usage reads alone
    (of ``month`` and the month after, when given): usage needs no small table
    (balances, pricing) and no other month's partition list, so none is read; the
    partitions are read lazily when ``month_rows`` asks for them."""
    from workmill.errors import StateError

    head = store.head_revision()
    if head is None:
        raise StateError(
            f"billing state {store.tag!r} does not exist yet; run `workmill state bootstrap`"
        )
    groups = (check_month(month), next_month(month)) if month is not None else None
    manifest = store.read_manifest(head, only=USAGE_TABLES, groups=groups)
    return BillingState(manifest, {}, store.reader(manifest), f"{store.tag}/")


def report(state: BillingState, month: str, tenant_id: str | None = None) -> list[UsageRow]:
    """Usage of ``month`` (``YYYY-MM``) per (tenant, module), sorted."""
    check_month(month)
    rows: dict[tuple[str, str], UsageRow] = {}
    _add_ledger(
        rows,
        state.month_rows(bt.TRANSACTIONS, month),
        state.month_rows(bt.TRANSACTION_ITEMS, month),
        month,
        tenant_id,
    )
    _add_runs(rows, state.month_rows(bt.MODULE_RUNS_LOG, month), month, tenant_id)
    for row in rows.values():
        row.work_orders = len(row._orders)
        row.credits_net = row.credits_spent - row.credits_refunded
    return [rows[k] for k in sorted(rows)]


def totals(rows: list[UsageRow]) -> UsageRow:
    out = UsageRow("*", "*")
    for r in rows:
        for name in COLUMNS[2:]:
            setattr(out, name, getattr(out, name) + getattr(r, name))
    out.module_seconds = round(out.module_seconds, 3)
    return out
