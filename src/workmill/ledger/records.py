"""Typed, immutable ledger records and their admin-table counterparts.

The store keeps rows as ``dict[str, str]`` (CSV cells); the arithmetic works on
these records so that a bad cell is caught once, at the boundary, with the
table, row and field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workmill import clock, ids
from workmill.errors import Problem, SpecError
from workmill.tables import parse_bool, parse_int

Credits = int
TenantId = str
ModuleId = str
PromoCode = str

# Largest amount one operation may move: absurd amounts are refused long before
# any balance could leave the signed 64-bit range a CSV consumer may assume.
MAX_AMOUNT: Credits = 10**12
MAX_BALANCE: Credits = 2**63 - 1


class TxType(StrEnum):
    TOPUP = "TOPUP"
    SPEND = "SPEND"
    REFUND = "REFUND"
    ADJUSTMENT = "ADJUSTMENT"


class ItemKind(StrEnum):
    MODULE = "MODULE"
    ARTIFACT = "ARTIFACT"
    PROMO = "PROMO"
    MODULE_REFUND = "MODULE_REFUND"
    ARTIFACT_REFUND = "ARTIFACT_REFUND"
    PROMO_REVERSAL = "PROMO_REVERSAL"
    TOPUP = "TOPUP"
    ADJUSTMENT = "ADJUSTMENT"


class RedemptionEvent(StrEnum):
    APPLIED = "APPLIED"
    REFUNDED = "REFUNDED"


class PromoKind(StrEnum):
    PERCENT = "PERCENT"
    FIXED = "FIXED"


@dataclass(frozen=True)
class Transaction:
    """One row of transactions.csv; ``amount_credits`` is the signed balance effect."""

    transaction_id: str
    tenant_id: TenantId
    work_order_id: str
    type: TxType
    amount_credits: Credits
    balance_after: Credits
    created_at: str
    reference: str = ""
    payment_id: str = ""
    topup_method_id: str = ""
    note: str = ""

    def to_row(self) -> dict[str, str]:
        return {
            "transaction_id": self.transaction_id,
            "tenant_id": self.tenant_id,
            "work_order_id": self.work_order_id,
            "type": str(self.type),
            "amount_credits": str(self.amount_credits),
            "balance_after": str(self.balance_after),
            "created_at": self.created_at,
            "reference": self.reference,
            "payment_id": self.payment_id,
            "topup_method_id": self.topup_method_id,
            "note": self.note,
        }


@dataclass(frozen=True)
class Item:
    """One row of transaction_items.csv, in its transaction's own direction."""

    transaction_item_id: str
    transaction_id: str
    line_no: int
    kind: ItemKind
    amount_credits: Credits
    module_id: str = ""
    product_code: str = ""
    promo_code: str = ""
    module_run_id: str = ""
    note: str = ""

    def to_row(self) -> dict[str, str]:
        return {
            "transaction_item_id": self.transaction_item_id,
            "transaction_id": self.transaction_id,
            "line_no": str(self.line_no),
            "kind": str(self.kind),
            "module_id": self.module_id,
            "product_code": self.product_code,
            "promo_code": self.promo_code,
            "module_run_id": self.module_run_id,
            "amount_credits": str(self.amount_credits),
            "note": self.note,
        }


@dataclass(frozen=True)
class Redemption:
    """One row of promotion_redemptions.csv; ``amount_credits`` is the discount (>= 0)."""

    redemption_id: str
    promo_code: PromoCode
    tenant_id: TenantId
    work_order_id: str
    transaction_id: str
    event: RedemptionEvent
    amount_credits: Credits
    created_at: str

    def to_row(self) -> dict[str, str]:
        return {
            "redemption_id": self.redemption_id,
            "promo_code": self.promo_code,
            "tenant_id": self.tenant_id,
            "work_order_id": self.work_order_id,
            "transaction_id": self.transaction_id,
            "event": str(self.event),
            "amount_credits": str(self.amount_credits),
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Posting:
    """What one ledger operation appends: a transaction, its items, its promo events."""

    transaction: Transaction
    items: tuple[Item, ...] = ()
    redemptions: tuple[Redemption, ...] = ()


@dataclass(frozen=True)
class PricingRow:
    module_id: ModuleId
    product_code: str
    price_credits: Credits
    artifact_price_credits: Credits
    active: bool


@dataclass(frozen=True)
class Promotion:
    promo_code: PromoCode
    kind: PromoKind
    value: int
    module_ids: frozenset[ModuleId]  # empty = every module
    starts_at: datetime | None
    ends_at: datetime | None
    max_redemptions: int | None
    max_redemptions_per_tenant: int | None
    active: bool

    def covers(self, module_id: ModuleId) -> bool:
        return not self.module_ids or module_id in self.module_ids


@dataclass(frozen=True)
class TopupMethod:
    topup_method_id: str
    name: str
    active: bool


@dataclass
class _Cells:
    """Reads typed cells of one row, collecting every problem (file, line, field)."""

    table: str
    line: int
    row: Mapping[str, str]
    problems: list[Problem] = field(default_factory=list)

    def text(self, name: str) -> str:
        return (self.row.get(name) or "").strip()

    def integer(self, name: str, *, optional: bool = False, minimum: int | None = None) -> int:
        v = self.text(name)
        if optional and not v:
            return -1
        try:
            n = parse_int(v, self.table, name, self.line)
        except SpecError as exc:
            self.problems.extend(exc.problems)
            return 0
        if minimum is not None and n < minimum:
            self.problems.append(Problem(self.table, self.line, name, f"must be >= {minimum}"))
        return n

    def boolean(self, name: str) -> bool:
        try:
            return parse_bool(self.text(name), self.table, name, self.line)
        except SpecError as exc:
            self.problems.extend(exc.problems)
            return False

    def time(self, name: str) -> datetime | None:
        v = self.text(name)
        if not v:
            return None
        try:
            return clock.parse_iso(v)
        except Exception:
            self.problems.append(Problem(self.table, self.line, name, f"not a timestamp: {v!r}"))
            return None

    def ident(self, name: str, kind: ids.IdKind) -> str:
        v = self.text(name)
        msg = ids.check(kind, v)
        if msg:
            self.problems.append(Problem(self.table, self.line, name, msg))
        return v


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise SpecError(problems)


def parse_pricing(rows: list[Mapping[str, str]], table: str = "pricing.csv") -> list[PricingRow]:
    out: list[PricingRow] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):
        c = _Cells(table, i, row)
        module_id = c.ident("module_id", ids.IdKind.MODULE)
        product = c.text("product_code")
        if product:
            c.ident("product_code", ids.IdKind.PRODUCT_CODE)
        pr = PricingRow(
            module_id,
            product,
            c.integer("price_credits", minimum=0),
            c.integer("artifact_price_credits", minimum=0)
            if c.text("artifact_price_credits")
            else 0,
            c.boolean("active"),
        )
        if pr.price_credits > MAX_AMOUNT or pr.artifact_price_credits > MAX_AMOUNT:
            c.problems.append(Problem(table, i, "price_credits", f"more than {MAX_AMOUNT}"))
        if pr.active and module_id in seen:
            c.problems.append(
                Problem(table, i, "module_id", f"module {module_id} has two active rows")
            )
        if pr.active:
            seen.add(module_id)
        problems += c.problems
        out.append(pr)
    _raise(problems)
    return out


def parse_promotions(
    rows: list[Mapping[str, str]], table: str = "promotions.csv"
) -> list[Promotion]:
    out: list[Promotion] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):
        c = _Cells(table, i, row)
        code = c.text("promo_code")
        if not code or len(code) > 64 or not code.replace("_", "").replace("-", "").isalnum():
            c.problems.append(Problem(table, i, "promo_code", f"invalid promo code {code!r}"))
        if code.upper() in seen:
            c.problems.append(Problem(table, i, "promo_code", f"duplicate promo code {code!r}"))
        seen.add(code.upper())
        kind_s = c.text("kind")
        if kind_s not in PromoKind.__members__:
            c.problems.append(
                Problem(table, i, "kind", f"expected PERCENT or FIXED, got {kind_s!r}")
            )
            kind_s = "FIXED"
        kind = PromoKind(kind_s)
        value = c.integer("value", minimum=0)
        if kind is PromoKind.PERCENT and value > 100:
            c.problems.append(Problem(table, i, "value", "a PERCENT promo is at most 100"))
        if value > MAX_AMOUNT:
            c.problems.append(Problem(table, i, "value", f"more than {MAX_AMOUNT}"))
        mods = frozenset(m.strip() for m in c.text("module_ids").split(";") if m.strip())
        for m in mods:
            if not ids.is_valid(ids.IdKind.MODULE, m):
                c.problems.append(
                    Problem(table, i, "module_ids", ids.check(ids.IdKind.MODULE, m) or "")
                )
        max_r = c.integer("max_redemptions", optional=True)
        max_t = c.integer("max_redemptions_per_tenant", optional=True)
        out.append(
            Promotion(
                code,
                kind,
                value,
                mods,
                c.time("starts_at"),
                c.time("ends_at"),
                None if max_r < 0 else max_r,
                None if max_t < 0 else max_t,
                c.boolean("active"),
            )
        )
        problems += c.problems
    _raise(problems)
    return out


def parse_topup_methods(
    rows: list[Mapping[str, str]], table: str = "topup_methods.csv"
) -> list[TopupMethod]:
    out: list[TopupMethod] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=2):
        c = _Cells(table, i, row)
        mid = c.ident("topup_method_id", ids.IdKind.TOPUP_METHOD)
        if ids.fold(mid) in seen:
            c.problems.append(Problem(table, i, "topup_method_id", f"duplicate id {mid!r}"))
        seen.add(ids.fold(mid))
        out.append(TopupMethod(mid, c.text("name"), c.boolean("active")))
        problems += c.problems
    _raise(problems)
    return out


def parse_redemptions(
    rows: list[Mapping[str, str]], table: str = "promotion_redemptions.csv"
) -> list[Redemption]:
    out: list[Redemption] = []
    problems: list[Problem] = []
    for i, row in enumerate(rows, start=2):
        c = _Cells(table, i, row)
        ev = c.text("event")
        if ev not in RedemptionEvent.__members__:
            c.problems.append(
                Problem(table, i, "event", f"expected APPLIED or REFUNDED, got {ev!r}")
            )
            ev = "APPLIED"
        out.append(
            Redemption(
                c.text("redemption_id"),
                c.text("promo_code"),
                c.text("tenant_id"),
                c.text("work_order_id"),
                c.text("transaction_id"),
                RedemptionEvent(ev),
                c.integer("amount_credits"),
                c.text("created_at"),
            )
        )
        problems += c.problems
    _raise(problems)
    return out


def transaction_from_row(row: Mapping[str, str]) -> Transaction:
    """A stored row as a record (rows are checked by ``verify``; bad ints raise ValueError)."""
    return Transaction(
        row["transaction_id"],
        row["tenant_id"],
        row.get("work_order_id", ""),
        TxType(row["type"]),
        int(row["amount_credits"]),
        int(row["balance_after"]),
        row.get("created_at", ""),
        row.get("reference", ""),
        row.get("payment_id", ""),
        row.get("topup_method_id", ""),
        row.get("note", ""),
    )


def item_from_row(row: Mapping[str, str]) -> Item:
    return Item(
        row["transaction_item_id"],
        row["transaction_id"],
        int(row["line_no"]),
        ItemKind(row["kind"]),
        int(row["amount_credits"]),
        row.get("module_id", ""),
        row.get("product_code", ""),
        row.get("promo_code", ""),
        row.get("module_run_id", ""),
        row.get("note", ""),
    )
