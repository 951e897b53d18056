"""Billing arithmetic (SPEC §8): pricing, promos, SPEND/REFUND postings — pure functions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workmill import ids
from workmill.errors import LedgerError
from workmill.ledger import (
    ItemKind,
    OrderLine,
    OrderRejected,
    PricingRow,
    PromoKind,
    Promotion,
    Redemption,
    RedemptionEvent,
    RefundLine,
    TopupMethod,
    parse_amount,
    promo_usage,
    quote,
    quote_from_spend,
    refund_posting,
    spend_posting,
    topup_posting,
)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _ids():
    counter = itertools.count()
    return lambda kind: f"{next(counter):0{ids.LENGTHS[kind]}d}"


def promo(code="WELCOME10", kind="FIXED", value=15, modules=(), **kw) -> Promotion:
    args = dict(
        starts_at=None,
        ends_at=None,
        max_redemptions=None,
        max_redemptions_per_tenant=None,
        active=True,
    )
    args.update(kw)
    return Promotion(code, PromoKind(kind), value, frozenset(modules), **args)


PRICING = [
    PricingRow("001", "P01", 100, 20, True),
    PricingRow("002", "P02", 50, 0, True),
    PricingRow("003", "P03", 100, 0, True),
    PricingRow("009", "P09", 10, 0, False),
]


def test_quote__gross_includes_artifacts_only_when_bought():
    q = quote([OrderLine("001", True), OrderLine("002")], PRICING)
    assert [line.gross for line in q.lines] == [120, 50]
    assert q.total == 170


def test_quote__module_without_active_price_is_not_orderable():
    with pytest.raises(OrderRejected) as exc:
        quote([OrderLine("001"), OrderLine("009")], PRICING)
    assert exc.value.reason == "MODULE_NOT_ORDERABLE"
    assert "009" in str(exc.value)


def test_quote__percent_floors_on_remaining_net_in_listed_order():
    p1 = promo("HALF", "PERCENT", 33)
    p2 = promo("TEN", "FIXED", 70)
    q = quote(
        [OrderLine("001", True), OrderLine("002")], PRICING, [p1, p2], ["HALF", "TEN"], now=NOW
    )
    # 120 -> floor(120*33/100)=39 -> 81; 50 -> 16 -> 34; FIXED 70: 70 from line 1
    assert [a.amount for a in q.lines[0].allocations] == [39, 70]
    assert [a.amount for a in q.lines[1].allocations] == [16]
    assert [line.net for line in q.lines] == [11, 34]
    assert q.total == 45


def test_quote__fixed_left_carries_over_to_next_covered_line():
    p = promo("BIG", "FIXED", 130, modules=("002", "003"))
    q = quote(
        [OrderLine("001"), OrderLine("002"), OrderLine("003")], PRICING, [p], ["BIG"], now=NOW
    )
    assert [line.net for line in q.lines] == [100, 0, 20]


@pytest.mark.parametrize(
    ("p", "why"),
    [
        (promo(active=False), "inactive"),
        (promo(ends_at=datetime(2026, 1, 1, tzinfo=UTC)), "expired"),
        (promo(starts_at=datetime(2027, 1, 1, tzinfo=UTC)), "not valid before"),
        (promo(modules=("777",)), "covers none"),
        (promo(max_redemptions=1), "exhausted"),
        (promo(max_redemptions_per_tenant=1), "exhausted for tenant"),
    ],
)
def test_quote__invalid_promo_is_rejected_naming_the_code(p, why):
    used = Redemption(
        "00000001", "WELCOME10", "Ab12Cd", "Wo000001", "Tx000001", RedemptionEvent.APPLIED, 15, ""
    )
    with pytest.raises(OrderRejected) as exc:
        quote(
            [OrderLine("001")],
            PRICING,
            [p],
            ["WELCOME10"],
            tenant_id="Ab12Cd",
            now=NOW,
            usage=promo_usage([used]),
        )
    assert exc.value.reason == "PROMO_INVALID"
    assert "WELCOME10" in str(exc.value) and why in str(exc.value)


def test_quote__unknown_promo_is_rejected():
    with pytest.raises(OrderRejected, match="PROMO_INVALID: promo NOPE: unknown"):
        quote([OrderLine("001")], PRICING, [], ["NOPE"], now=NOW)


def test_promo_usage__fully_reversed_promo_stops_counting():
    a = Redemption("r1", "P", "Ab12Cd", "W1", "t1", RedemptionEvent.APPLIED, 15, "")
    b = Redemption("r2", "P", "Ab12Cd", "W2", "t2", RedemptionEvent.APPLIED, 15, "")
    partial = Redemption("r3", "P", "Ab12Cd", "W2", "t3", RedemptionEvent.REFUNDED, 5, "")
    full = Redemption("r4", "P", "Ab12Cd", "W1", "t4", RedemptionEvent.REFUNDED, 15, "")
    assert promo_usage([a, b, partial]).total == {"P": 2}
    u = promo_usage([a, b, partial, full])
    assert u.total == {"P": 1} and u.per_tenant == {("P", "Ab12Cd"): 1}


def test_spend_posting__items_and_redemption_match_spec_example():
    q = quote([OrderLine("003")], PRICING, [promo()], ["WELCOME10"], now=NOW)
    p = spend_posting(
        q, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=1000, now="t", new_id=_ids()
    )
    assert p.transaction.amount_credits == -85 and p.transaction.balance_after == 915
    assert [(i.kind, i.amount_credits) for i in p.items] == [
        (ItemKind.MODULE, 100),
        (ItemKind.PROMO, -15),
    ]
    assert [(r.promo_code, r.event, r.amount_credits) for r in p.redemptions] == [
        ("WELCOME10", RedemptionEvent.APPLIED, 15)
    ]


def test_spend_posting__insufficient_credits_rejected():
    q = quote([OrderLine("003")], PRICING)
    with pytest.raises(OrderRejected) as exc:
        spend_posting(
            q, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=99, now="t", new_id=_ids()
        )
    assert exc.value.reason == "INSUFFICIENT_CREDITS"


def test_refund_posting__note_is_checkable_by_hand():
    q = quote(
        [OrderLine("001"), OrderLine("003")],
        PRICING,
        [promo(modules=("003",))],
        ["WELCOME10"],
        now=NOW,
    )
    p = refund_posting(
        q,
        {"003": RefundLine("FAILED", "101003002")},
        tenant_id="Ab12Cd",
        work_order_id="Qw3Er5Ty",
        balance=0,
        now="t",
        new_id=_ids(),
    )
    assert (
        p.transaction.note
        == "refund 85 = module 003 FAILED 101003002 refundable (100 - WELCOME10 15)"
    )
    assert [(i.kind, i.amount_credits) for i in p.items] == [
        (ItemKind.MODULE_REFUND, 100),
        (ItemKind.PROMO_REVERSAL, -15),
    ]
    assert [(r.event, r.amount_credits) for r in p.redemptions] == [(RedemptionEvent.REFUNDED, 15)]


def test_refund_posting__nothing_refundable_is_a_zero_refund():
    q = quote([OrderLine("001")], PRICING)
    p = refund_posting(
        q, {}, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=5, now="t", new_id=_ids()
    )
    assert p.transaction.amount_credits == 0 and p.items == () and p.transaction.balance_after == 5
    assert p.transaction.note == "refund 0 = no refundable module"


def test_quote_from_spend__round_trips_the_quote():
    q = quote(
        [OrderLine("001", True), OrderLine("003")],
        PRICING,
        [promo("A", "PERCENT", 10), promo()],
        ["A", "WELCOME10"],
        now=NOW,
    )
    p = spend_posting(
        q, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=10**6, now="t", new_id=_ids()
    )
    assert quote_from_spend(p.transaction, p.items, ["A", "WELCOME10"]) == q


@pytest.mark.parametrize(
    "text", ["0", "-5", "5.0", "1e3", "+5", " ", "abc", "5 5", "１２", "99999999999999999999"]
)
def test_parse_amount__rejects_non_positive_integers(text):
    with pytest.raises(LedgerError):
        parse_amount(text)


def test_topup_posting__same_reference_twice_is_one_topup_and_different_amount_errors():
    m = TopupMethod("AD", "admin", True)
    first = topup_posting(
        tenant_id="Ab12Cd",
        method=m,
        method_id="AD",
        amount=5,
        reference="r1",
        payment_id="",
        balance=0,
        existing=None,
        now="t",
        new_id=_ids(),
    )
    assert first.created and first.transaction.balance_after == 5
    again = topup_posting(
        tenant_id="Ab12Cd",
        method=m,
        method_id="AD",
        amount=5,
        reference="r1",
        payment_id="",
        balance=5,
        existing=first.transaction,
        now="t",
        new_id=_ids(),
    )
    assert not again.created and again.transaction == first.transaction
    with pytest.raises(LedgerError, match="already used"):
        topup_posting(
            tenant_id="Ab12Cd",
            method=m,
            method_id="AD",
            amount=6,
            reference="r1",
            payment_id="",
            balance=5,
            existing=first.transaction,
            now="t",
            new_id=_ids(),
        )


def test_topup_posting__inactive_method_refused():
    with pytest.raises(LedgerError, match="not active"):
        topup_posting(
            tenant_id="Ab12Cd",
            method=TopupMethod("AD", "admin", False),
            method_id="AD",
            amount=5,
            reference="r1",
            payment_id="",
            balance=0,
            existing=None,
            now="t",
            new_id=_ids(),
        )


# ---------------------------------------------------------------- properties

MODULES = [f"{i:03d}" for i in range(1, 7)]


@st.composite
def orders(draw):
    pricing = [
        PricingRow(m, "", draw(st.integers(0, 10**6)), draw(st.integers(0, 10**4)), True)
        for m in MODULES
    ]
    chosen = draw(st.lists(st.sampled_from(MODULES), min_size=1, max_size=6, unique=True))
    lines = [OrderLine(m, draw(st.booleans())) for m in chosen]
    promos = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["PERCENT", "FIXED"]))
        value = draw(st.integers(0, 100)) if kind == "PERCENT" else draw(st.integers(0, 10**6))
        cover = draw(st.lists(st.sampled_from(chosen), max_size=3, unique=True))
        promos.append(promo(f"P{i}", kind, value, cover))
    return pricing, lines, promos


@settings(max_examples=200, deadline=None)
@given(orders(), st.data())
def test_properties__totals_refunds_and_promos(order, data):
    pricing, lines, promos = order
    codes = [p.promo_code for p in promos]
    q = quote(lines, pricing, promos, codes, now=NOW)
    q2 = quote(lines, pricing, promos, codes, now=NOW)
    assert q == q2  # deterministic
    assert all(0 <= line.net <= line.gross for line in q.lines)  # promos never make a line negative
    spend = spend_posting(
        q, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=q.total, now="t", new_id=_ids()
    )
    assert (
        sum(i.amount_credits for i in spend.items) == -spend.transaction.amount_credits == q.total
    )
    assert spend.transaction.balance_after == 0
    assert sum(r.amount_credits for r in spend.redemptions) == q.gross - q.total
    subset = data.draw(st.lists(st.sampled_from([line.module_id for line in lines]), unique=True))
    refunded = {m: RefundLine("FAILED", "101001001") for m in subset}
    ref = refund_posting(
        q, refunded, tenant_id="Ab12Cd", work_order_id="Qw3Er5Ty", balance=0, now="t", new_id=_ids()
    )
    paid_for_subset = sum(q.line(m).net for m in subset)
    assert ref.transaction.amount_credits == paid_for_subset <= q.total
    assert sum(i.amount_credits for i in ref.items) == ref.transaction.amount_credits
    assert ref.transaction.note.startswith(f"refund {paid_for_subset} = ")
    everything = refund_posting(
        q,
        {line.module_id: RefundLine("SKIPPED", "001001001") for line in lines},
        tenant_id="Ab12Cd",
        work_order_id="Qw3Er5Ty",
        balance=0,
        now="t",
        new_id=_ids(),
    )
    assert everything.transaction.amount_credits == -spend.transaction.amount_credits
    assert sum(r.amount_credits for r in everything.redemptions) == sum(
        r.amount_credits for r in spend.redemptions
    )
