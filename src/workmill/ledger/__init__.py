"""Billing arithmetic (docs/reference.md "Billing rules"): pure functions over typed records, no I/O.

The store (``workmill.state``) loads and commits rows; everything that decides
an amount lives here so it can be tested exhaustively.
"""

from __future__ import annotations

from workmill.ledger.postings import (
    RefundLine,
    TopupOutcome,
    adjustment_posting,
    check_amount,
    parse_amount,
    quote_from_spend,
    refund_note,
    refund_posting,
    spend_posting,
    topup_posting,
)
from workmill.ledger.pricing import (
    Allocation,
    OrderLine,
    OrderRejected,
    PromoUsage,
    Quote,
    QuoteLine,
    allocate,
    promo_usage,
    quote,
)
from workmill.ledger.records import (
    MAX_AMOUNT,
    Credits,
    Item,
    ItemKind,
    Posting,
    PricingRow,
    PromoKind,
    Promotion,
    Redemption,
    RedemptionEvent,
    TopupMethod,
    Transaction,
    TxType,
    parse_pricing,
    parse_promotions,
    parse_redemptions,
    parse_topup_methods,
)
from workmill.ledger.verify import LedgerTables, Violation, verify

__all__ = [
    "MAX_AMOUNT",
    "Allocation",
    "Credits",
    "Item",
    "ItemKind",
    "LedgerTables",
    "OrderLine",
    "OrderRejected",
    "Posting",
    "PricingRow",
    "PromoKind",
    "PromoUsage",
    "Promotion",
    "Quote",
    "QuoteLine",
    "Redemption",
    "RedemptionEvent",
    "RefundLine",
    "TopupMethod",
    "TopupOutcome",
    "Transaction",
    "TxType",
    "Violation",
    "adjustment_posting",
    "allocate",
    "check_amount",
    "parse_amount",
    "parse_pricing",
    "parse_promotions",
    "parse_redemptions",
    "parse_topup_methods",
    "promo_usage",
    "quote",
    "quote_from_spend",
    "refund_note",
    "refund_posting",
    "spend_posting",
    "topup_posting",
    "verify",
]
