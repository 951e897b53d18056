"""Turning quotes, refunds and top-ups into ledger postings (pure: IDs and time come in)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from workmill import ids
from workmill.errors import LedgerError
from workmill.ledger.pricing import Allocation, OrderRejected, Quote, QuoteLine
from workmill.ledger.records import (
    MAX_AMOUNT,
    MAX_BALANCE,
    Credits,
    Item,
    ItemKind,
    ModuleId,
    Posting,
    Redemption,
    RedemptionEvent,
    TenantId,
    TopupMethod,
    Transaction,
    TxType,
)

NewId = Callable[[ids.IdKind], str]

_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@#+=-]{0,127}")


def _item(
    new_id: NewId,
    tx_id: str,
    line_no: int,
    kind: ItemKind,
    amount: Credits,
    line: QuoteLine,
    promo: str = "",
    *,
    module_run_id: str = "",
    note: str = "",
) -> Item:
    """One item of a module line (SPEND and REFUND items share this shape)."""
    return Item(
        new_id(ids.IdKind.TRANSACTION_ITEM),
        tx_id,
        line_no,
        kind,
        amount,
        module_id=line.module_id,
        product_code=line.product_code,
        promo_code=promo,
        module_run_id=module_run_id,
        note=note,
    )


def spend_posting(
    q: Quote,
    *,
    tenant_id: TenantId,
    work_order_id: str,
    balance: Credits,
    now: str,
    new_id: NewId,
) -> Posting:
    """The SPEND of a quote; refused (INSUFFICIENT_CREDITS) when the balance is short."""
    total = q.total
    if balance < total:
        raise OrderRejected(
            "INSUFFICIENT_CREDITS",
            f"work order {work_order_id} costs {total}, tenant {tenant_id} has {balance}",
            tenant_id,
        )
    tx_id = new_id(ids.IdKind.TRANSACTION)
    items: list[Item] = []

    def add(kind: ItemKind, amount: Credits, line: QuoteLine, promo: str = "") -> None:
        items.append(_item(new_id, tx_id, len(items) + 1, kind, amount, line, promo))

    for line in q.lines:
        add(ItemKind.MODULE, line.price_credits, line)
        if line.purchase_release_artifacts:
            add(ItemKind.ARTIFACT, line.artifact_price_credits, line)
        for a in line.allocations:
            add(ItemKind.PROMO, -a.amount, line, a.promo_code)
    tx = Transaction(
        tx_id,
        tenant_id,
        work_order_id,
        TxType.SPEND,
        -total,
        balance - total,
        now,
        note=f"spend {total} = gross {q.gross} - promos {q.gross - total}",
    )
    reds = tuple(
        Redemption(
            new_id(ids.IdKind.REDEMPTION),
            code,
            tenant_id,
            work_order_id,
            tx_id,
            RedemptionEvent.APPLIED,
            q.promo_total(code),
            now,
        )
        for code in q.promo_codes
    )
    return Posting(tx, tuple(items), reds)


@dataclass(frozen=True)
class RefundLine:
    """Why a module line is refunded: its final status and reason code (for the note)."""

    status: str
    reason_code: str
    module_run_id: str = ""


def refund_note(q: Quote, refunded: Mapping[ModuleId, RefundLine]) -> str:
    """``refund 85 = module 003 FAILED 101003002 refundable (100 - WELCOME10 15)``."""
    parts: list[str] = []
    total = 0
    for line in q.lines:
        why = refunded.get(line.module_id)
        if why is None:
            continue
        total += line.net
        calc = f"{line.price_credits}"
        if line.purchase_release_artifacts:
            calc += f" + artifact {line.artifact_price_credits}"
        for a in line.allocations:
            calc += f" - {a.promo_code} {a.amount}"
        parts.append(f"module {line.module_id} {why.status} {why.reason_code} refundable ({calc})")
    return f"refund {total} = " + (" + ".join(parts) if parts else "no refundable module")


def refund_posting(
    q: Quote,
    refunded: Mapping[ModuleId, RefundLine],
    *,
    tenant_id: TenantId,
    work_order_id: str,
    balance: Credits,
    now: str,
    new_id: NewId,
) -> Posting:
    """The REFUND (always written, even for 0) giving back exactly the refunded lines' nets."""
    unknown = sorted(set(refunded) - {line.module_id for line in q.lines})
    if unknown:
        raise LedgerError(f"refund names modules not in the quote: {', '.join(unknown)}")
    tx_id = new_id(ids.IdKind.TRANSACTION)
    items: list[Item] = []
    reversed_by_promo: dict[str, Credits] = {}
    total = 0
    for line in q.lines:
        why = refunded.get(line.module_id)
        if why is None:
            continue
        total += line.net

        def add(kind: ItemKind, amount: Credits, promo: str = "", *, _line=line, _why=why) -> None:
            items.append(
                _item(
                    new_id,
                    tx_id,
                    len(items) + 1,
                    kind,
                    amount,
                    _line,
                    promo,
                    module_run_id=_why.module_run_id,
                    note=f"{_why.status} {_why.reason_code}",
                )
            )

        add(ItemKind.MODULE_REFUND, line.price_credits)
        if line.purchase_release_artifacts:
            add(ItemKind.ARTIFACT_REFUND, line.artifact_price_credits)
        for a in line.allocations:
            add(ItemKind.PROMO_REVERSAL, -a.amount, a.promo_code)
            reversed_by_promo[a.promo_code] = reversed_by_promo.get(a.promo_code, 0) + a.amount
    if balance + total > MAX_BALANCE:
        raise LedgerError(f"tenant {tenant_id}: balance would exceed {MAX_BALANCE}")
    tx = Transaction(
        tx_id,
        tenant_id,
        work_order_id,
        TxType.REFUND,
        total,
        balance + total,
        now,
        note=refund_note(q, refunded),
    )
    reds = tuple(
        Redemption(
            new_id(ids.IdKind.REDEMPTION),
            code,
            tenant_id,
            work_order_id,
            tx_id,
            RedemptionEvent.REFUNDED,
            reversed_by_promo[code],
            now,
        )
        for code in q.promo_codes
        if reversed_by_promo.get(code)
    )
    return Posting(tx, tuple(items), reds)


def quote_from_spend(
    spend: Transaction, items: Sequence[Item], promo_codes: Sequence[str] = ()
) -> Quote:
    """Rebuild the quote a SPEND was written from, so a later process can refund it.

    ``promo_codes`` gives the applied order (from the redemptions); codes that only
    appear in items are appended in item order.
    """
    if spend.type is not TxType.SPEND:
        raise LedgerError(f"transaction {spend.transaction_id} is {spend.type}, not SPEND")
    lines: dict[str, dict] = {}
    order: list[str] = []
    codes = list(promo_codes)
    for it in sorted(items, key=lambda i: i.line_no):
        if it.transaction_id != spend.transaction_id:
            continue
        d = lines.get(it.module_id)
        if d is None:
            d = lines[it.module_id] = {
                "product": it.product_code,
                "price": 0,
                "art": 0,
                "buy": False,
                "allocs": [],
            }
            order.append(it.module_id)
        if it.kind is ItemKind.MODULE:
            d["price"] = it.amount_credits
        elif it.kind is ItemKind.ARTIFACT:
            d["art"], d["buy"] = it.amount_credits, True
        elif it.kind is ItemKind.PROMO:
            d["allocs"].append(Allocation(it.promo_code, it.module_id, -it.amount_credits))
            if it.promo_code not in codes:
                codes.append(it.promo_code)
    q = Quote(
        tuple(
            QuoteLine(
                m,
                lines[m]["product"],
                lines[m]["price"],
                lines[m]["art"],
                lines[m]["buy"],
                tuple(lines[m]["allocs"]),
            )
            for m in order
        ),
        tuple(codes),
    )
    if q.total != -spend.amount_credits:
        raise LedgerError(
            f"SPEND {spend.transaction_id}: items give {q.total}, transaction says {-spend.amount_credits}"
        )
    return q


def check_amount(amount: object, what: str = "amount_credits") -> Credits:
    """A positive integer no larger than MAX_AMOUNT, or LedgerError saying why not."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise LedgerError(f"{what} must be a positive integer, got {amount!r}")
    if amount <= 0:
        raise LedgerError(f"{what} must be a positive integer, got {amount}")
    if amount > MAX_AMOUNT:
        raise LedgerError(f"{what} {amount} is larger than the maximum {MAX_AMOUNT}")
    return amount


def parse_amount(text: str, what: str = "--amount-credits") -> Credits:
    """Parse a CLI amount strictly: digits only (no sign, decimals, exponents, spaces)."""
    t = text.strip()
    if not t.isascii() or not t.isdigit():
        raise LedgerError(f"{what} must be a positive integer, got {text!r}")
    if len(t) > 19:
        raise LedgerError(f"{what} {t} is larger than the maximum {MAX_AMOUNT}")
    return check_amount(int(t), what)


def check_reference(reference: str) -> str:
    if not _REFERENCE.fullmatch(reference or ""):
        raise LedgerError(
            f"--reference {reference!r} must be 1-128 characters [A-Za-z0-9._:/@#+=-], starting alphanumeric"
        )
    return reference


@dataclass(frozen=True)
class TopupOutcome:
    """A new top-up posting, or the earlier transaction this (tenant, reference) already made."""

    posting: Posting | None
    existing: Transaction | None = None

    @property
    def transaction(self) -> Transaction:
        if self.posting is not None:
            return self.posting.transaction
        assert self.existing is not None
        return self.existing

    @property
    def created(self) -> bool:
        return self.posting is not None


def topup_posting(
    *,
    tenant_id: TenantId,
    method: TopupMethod | None,
    method_id: str,
    amount: Credits,
    reference: str,
    payment_id: str,
    balance: Credits,
    existing: Transaction | None,
    now: str,
    new_id: NewId,
) -> TopupOutcome:
    """A TOPUP posting, idempotent per (tenant, reference) as TigerBeetle's client IDs are."""
    check_amount(amount)
    check_reference(reference)
    if existing is not None:
        if existing.amount_credits != amount or existing.topup_method_id != method_id:
            raise LedgerError(
                f"reference {reference!r} was already used for tenant {tenant_id} by transaction "
                f"{existing.transaction_id} ({existing.amount_credits} credits via "
                f"{existing.topup_method_id}); a different top-up needs a new reference"
            )
        return TopupOutcome(None, existing)
    if method is None:
        raise LedgerError(f"top-up method {method_id!r} is not in topup_methods.csv")
    if not method.active:
        raise LedgerError(f"top-up method {method_id!r} ({method.name}) is not active")
    if payment_id and not ids.is_valid(ids.IdKind.PAYMENT, payment_id):
        raise LedgerError(f"--payment-id: {ids.check(ids.IdKind.PAYMENT, payment_id)}")
    if balance + amount > MAX_BALANCE:
        raise LedgerError(f"tenant {tenant_id}: balance would exceed {MAX_BALANCE}")
    tx_id = new_id(ids.IdKind.TRANSACTION)
    tx = Transaction(
        tx_id,
        tenant_id,
        "",
        TxType.TOPUP,
        amount,
        balance + amount,
        now,
        reference=reference,
        payment_id=payment_id,
        topup_method_id=method_id,
        note=f"top-up {amount} via {method_id} ({method.name})",
    )
    item = Item(
        new_id(ids.IdKind.TRANSACTION_ITEM), tx_id, 1, ItemKind.TOPUP, amount, note=reference
    )
    return TopupOutcome(Posting(tx, (item,)))


def adjustment_posting(
    *, tenant_id: TenantId, amount: Credits, note: str, balance: Credits, now: str, new_id: NewId
) -> Posting:
    """An operator correction (signed); it may never take the balance below zero."""
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int)
        or amount == 0
        or abs(amount) > MAX_AMOUNT
    ):
        raise LedgerError(
            f"adjustment must be a non-zero integer within ±{MAX_AMOUNT}, got {amount!r}"
        )
    if not note.strip():
        raise LedgerError("an adjustment needs a note saying why")
    if balance + amount < 0:
        raise LedgerError(f"tenant {tenant_id}: adjustment {amount} would leave a negative balance")
    tx_id = new_id(ids.IdKind.TRANSACTION)
    tx = Transaction(
        tx_id, tenant_id, "", TxType.ADJUSTMENT, amount, balance + amount, now, note=note
    )
    item = Item(
        new_id(ids.IdKind.TRANSACTION_ITEM), tx_id, 1, ItemKind.ADJUSTMENT, abs(amount), note=note
    )
    return Posting(tx, (item,))
