"""Per-tenant quotas (docs/reference.md "Registry, tiers, licences, quotas, usage").

A tenant's limits come from ``tenant.yml`` ``quotas`` and from every usable
licence that covers it; each source is checked on its own, so the tightest one
decides. The figures are read from the ledger of the current UTC day / month
(two month partitions of ``transactions.csv``, never the history) plus what this
plan already charged, so three work orders planned in one run count as three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from workmill import billing_tables as bt
from workmill import clock
from workmill.ledger.records import TxType
from workmill.specs import QuotasSpec
from workmill.state import BillingState


@dataclass(frozen=True)
class QuotaBreach:
    """Which quota a work order would exceed, from which source, with the figures."""

    quota: str
    source: str
    message: str


@dataclass(frozen=True)
class Usage:
    """What a tenant has used so far: work orders charged today, net credits this month."""

    work_orders_today: int
    credits_this_month: int


def tenant_usage(state: BillingState, tenant_id: str, now: datetime) -> Usage:
    """Charged work orders (SPENDs) of the UTC day and net credits (SPEND − REFUND) of the
    month, including this state's new transactions."""
    day, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    orders = 0
    credits = 0
    for r in state.month_rows(bt.TRANSACTIONS, month):
        if r.get("tenant_id") != tenant_id or not r.get("created_at", "").startswith(month):
            continue
        kind = r.get("type")
        if kind == TxType.SPEND:
            credits -= int(r["amount_credits"])
            orders += r["created_at"].startswith(day)
        elif kind == TxType.REFUND:
            credits -= int(r["amount_credits"])
    return Usage(orders, credits)


def check(
    limits: Sequence[tuple[str, QuotasSpec]], used: Usage, price: int, day: str, month: str
) -> QuotaBreach | None:
    """The first quota one more work order of ``price`` credits would exceed (pure).

    Exactly at a limit is allowed: with ``max_work_orders_per_day: 2`` the second work
    order of the day runs and the third is refused.
    """
    for source, q in limits:
        if q.max_work_orders_per_day is not None and (
            used.work_orders_today + 1 > q.max_work_orders_per_day
        ):
            return QuotaBreach(
                "max_work_orders_per_day",
                source,
                f"quota max_work_orders_per_day ({source}): {used.work_orders_today} work "
                f"order(s) already charged on {day}, limit {q.max_work_orders_per_day}",
            )
        if q.max_credits_per_month is not None and (
            used.credits_this_month + price > q.max_credits_per_month
        ):
            return QuotaBreach(
                "max_credits_per_month",
                source,
                f"quota max_credits_per_month ({source}): {used.credits_this_month} credits "
                f"spent in {month} + {price} for this work order = "
                f"{used.credits_this_month + price} > limit {q.max_credits_per_month}",
            )
    return None


def sources(repo, tenant_id: str) -> list[tuple[str, QuotasSpec]]:
    """(source, quotas) for the tenant: its tenant.yml, then each usable licence covering it."""
    from workmill.errors import WorkmillError
    from workmill.licences import licence_quotas, load_licences

    out = [(f"tenants/{tenant_id}/tenant.yml", repo.tenant(tenant_id).quotas)]
    try:
        licences = load_licences(repo)
    except WorkmillError:
        licences = []
    return out + licence_quotas(licences, tenant_id, clock.now(), repo.config.licence_grace_hours)


def has_limits(q: QuotasSpec) -> bool:
    return q.max_work_orders_per_day is not None or q.max_credits_per_month is not None


def parallel_limit(limits: Sequence[tuple[str, QuotasSpec]]) -> int | None:
    """The tightest ``max_parallel_modules`` of the sources, or None."""
    found = [q.max_parallel_modules for _s, q in limits if q.max_parallel_modules is not None]
    return min(found) if found else None
