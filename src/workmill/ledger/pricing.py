"""Price of a work order and promo allocation (docs/reference.md "Billing rules"), as pure functions.

Everything here is integer arithmetic on records: no clock, no files, no
randomness. The same inputs always give the same ``Quote``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from workmill.errors import LedgerError
from workmill.ledger.records import (
    Credits,
    ModuleId,
    PricingRow,
    PromoCode,
    PromoKind,
    Promotion,
    Redemption,
    RedemptionEvent,
    TenantId,
)


class OrderRejected(LedgerError):
    """The work order cannot be charged; ``reason`` is the global reason name."""

    def __init__(self, reason: str, message: str, subject: str = "") -> None:
        self.reason = reason
        self.subject = subject
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class OrderLine:
    """One module of a work order, as far as billing cares."""

    module_id: ModuleId
    purchase_release_artifacts: bool = False


@dataclass(frozen=True)
class Allocation:
    """The discount one promo gave one module line."""

    promo_code: PromoCode
    module_id: ModuleId
    amount: Credits


@dataclass(frozen=True)
class QuoteLine:
    """A priced line: gross = price + artifact price (when bought); net after promos."""

    module_id: ModuleId
    product_code: str
    price_credits: Credits
    artifact_price_credits: Credits  # 0 unless the artifacts are bought
    purchase_release_artifacts: bool
    allocations: tuple[Allocation, ...] = ()

    @property
    def gross(self) -> Credits:
        return self.price_credits + self.artifact_price_credits

    @property
    def discount(self) -> Credits:
        return sum(a.amount for a in self.allocations)

    @property
    def net(self) -> Credits:
        return self.gross - self.discount


@dataclass(frozen=True)
class Quote:
    """A priced work order: its lines in listed order and the promos in applied order."""

    lines: tuple[QuoteLine, ...]
    promo_codes: tuple[PromoCode, ...] = ()

    @property
    def gross(self) -> Credits:
        return sum(line.gross for line in self.lines)

    @property
    def total(self) -> Credits:
        """The SPEND: Σ n_i after every promo."""
        return sum(line.net for line in self.lines)

    @property
    def allocations(self) -> tuple[Allocation, ...]:
        return tuple(a for line in self.lines for a in line.allocations)

    def promo_total(self, code: PromoCode) -> Credits:
        return sum(a.amount for a in self.allocations if a.promo_code == code)

    def line(self, module_id: ModuleId) -> QuoteLine:
        for line in self.lines:
            if line.module_id == module_id:
                return line
        raise KeyError(module_id)


@dataclass(frozen=True)
class PromoUsage:
    """How often each promo counts as used, overall and per tenant."""

    total: Mapping[PromoCode, int]
    per_tenant: Mapping[tuple[PromoCode, TenantId], int]


def promo_usage(redemptions: Iterable[Redemption]) -> PromoUsage:
    """Count APPLIED redemptions, except those a later refund fully reversed.

    A use is one (promo, work order) APPLIED event; it stops counting when the
    REFUNDED events of that work order give back its whole discount (and the
    discount was not zero — a zero discount has nothing to reverse).
    """
    applied: dict[tuple[str, str], tuple[TenantId, Credits]] = {}
    refunded: Counter[tuple[str, str]] = Counter()
    for r in redemptions:
        key = (r.promo_code, r.work_order_id)
        if r.event is RedemptionEvent.APPLIED:
            applied[key] = (r.tenant_id, r.amount_credits)
        else:
            refunded[key] += r.amount_credits
    total: Counter[str] = Counter()
    per_tenant: Counter[tuple[str, str]] = Counter()
    for (code, wo), (tenant, amount) in applied.items():
        if amount > 0 and refunded[(code, wo)] >= amount:
            continue
        total[code] += 1
        per_tenant[(code, tenant)] += 1
    return PromoUsage(dict(total), dict(per_tenant))


def price_lines(lines: Sequence[OrderLine], pricing: Iterable[PricingRow]) -> list[QuoteLine]:
    """Gross price of each line; a module without an active pricing row is not orderable."""
    active = {p.module_id: p for p in pricing if p.active}
    seen: set[str] = set()
    out: list[QuoteLine] = []
    for line in lines:
        if line.module_id in seen:
            raise OrderRejected(
                "MODULE_NOT_ORDERABLE", f"module {line.module_id} is listed twice", line.module_id
            )
        seen.add(line.module_id)
        row = active.get(line.module_id)
        if row is None:
            raise OrderRejected(
                "MODULE_NOT_ORDERABLE",
                f"module {line.module_id} has no active row in pricing.csv",
                line.module_id,
            )
        art = row.artifact_price_credits if line.purchase_release_artifacts else 0
        out.append(
            QuoteLine(
                line.module_id,
                row.product_code,
                row.price_credits,
                art,
                line.purchase_release_artifacts,
            )
        )
    return out


def check_promo(
    code: PromoCode,
    promos: Mapping[PromoCode, Promotion],
    module_ids: Sequence[ModuleId],
    *,
    tenant_id: TenantId,
    now: datetime,
    usage: PromoUsage,
) -> Promotion:
    """The promo named ``code`` if this tenant may apply it now, else ``OrderRejected``."""

    def bad(why: str) -> OrderRejected:
        return OrderRejected("PROMO_INVALID", f"promo {code}: {why}", code)

    promo = promos.get(code)
    if promo is None:
        raise bad("unknown code")
    if not promo.active:
        raise bad("inactive")
    if promo.starts_at is not None and now < promo.starts_at:
        raise bad(f"not valid before {promo.starts_at:%Y-%m-%dT%H:%M:%SZ}")
    if promo.ends_at is not None and now >= promo.ends_at:
        raise bad(f"expired at {promo.ends_at:%Y-%m-%dT%H:%M:%SZ}")
    if promo.max_redemptions is not None and usage.total.get(code, 0) >= promo.max_redemptions:
        raise bad(f"exhausted ({promo.max_redemptions} redemptions)")
    if (
        promo.max_redemptions_per_tenant is not None
        and usage.per_tenant.get((code, tenant_id), 0) >= promo.max_redemptions_per_tenant
    ):
        raise bad(
            f"exhausted for tenant {tenant_id} ({promo.max_redemptions_per_tenant} per tenant)"
        )
    if not any(promo.covers(m) for m in module_ids):
        raise bad("covers none of the work order's modules")
    return promo


def allocate(
    promo: Promotion, nets: Sequence[Credits], module_ids: Sequence[ModuleId]
) -> list[Credits]:
    """Discount per line for one promo, on the remaining nets, lines in listed order."""
    out: list[Credits] = []
    left = promo.value
    for module_id, n in zip(module_ids, nets, strict=True):
        if not promo.covers(module_id) or n <= 0:
            out.append(0)
        elif promo.kind is PromoKind.PERCENT:
            out.append(n * promo.value // 100)
        else:
            d = min(left, n)
            left -= d
            out.append(d)
    return out


def quote(
    lines: Sequence[OrderLine],
    pricing: Iterable[PricingRow],
    promotions: Iterable[Promotion] = (),
    promo_codes: Sequence[PromoCode] = (),
    *,
    tenant_id: TenantId = "",
    now: datetime | None = None,
    usage: PromoUsage | None = None,
) -> Quote:
    """Price a work order and apply its promo codes in listed order (docs/reference.md "Billing rules")."""
    priced = price_lines(lines, pricing)
    if promo_codes and now is None:
        raise ValueError("quote() needs `now` to check promo validity")
    usage = usage or PromoUsage({}, {})
    by_code = {p.promo_code: p for p in promotions}
    module_ids = [q.module_id for q in priced]
    nets = [q.gross for q in priced]
    allocs: list[list[Allocation]] = [[] for _ in priced]
    seen: set[str] = set()
    for code in promo_codes:
        if code in seen:
            raise OrderRejected("PROMO_INVALID", f"promo {code}: listed twice", code)
        seen.add(code)
        assert now is not None
        promo = check_promo(code, by_code, module_ids, tenant_id=tenant_id, now=now, usage=usage)
        for i, d in enumerate(allocate(promo, nets, module_ids)):
            if d:
                nets[i] -= d
                allocs[i].append(Allocation(code, module_ids[i], d))
    final = tuple(
        QuoteLine(
            q.module_id,
            q.product_code,
            q.price_credits,
            q.artifact_price_credits,
            q.purchase_release_artifacts,
            tuple(a),
        )
        for q, a in zip(priced, allocs, strict=True)
    )
    return Quote(final, tuple(promo_codes))
