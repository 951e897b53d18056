"""Ledger audit (``workmill ledger verify``): a list of small pure checks over table rows.

Each check takes the tables and returns every violation it finds, with the
rows involved, so a finance person can look them up. The same checks run on
a commit's new rows (``opening`` balances from the state it builds on) before
the store writes anything.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import WorkmillError, one_line
from workmill.ledger.records import ItemKind, RedemptionEvent, TxType

Row = Mapping[str, str]


@dataclass(frozen=True)
class Violation:
    """One broken invariant, with references to the rows involved."""

    check: str
    message: str
    rows: tuple[str, ...] = ()

    def __str__(self) -> str:
        # rows quote stored values verbatim: one violation must stay one line
        where = f" [{'; '.join(self.rows)}]" if self.rows else ""
        return one_line(f"{self.check}: {self.message}{where}")


@dataclass
class LedgerTables:
    """The ledger rows to audit.

    For a full audit ``opening`` is empty. For a commit's delta, the rows are the
    new ones, ``opening`` holds every tenant's balance before them, ``prior_ids``
    the folded IDs already stored and ``prior_transactions`` the stored
    transactions of the work orders the delta touches.
    """

    transactions: Sequence[Row]
    items: Sequence[Row]
    redemptions: Sequence[Row]
    tenants_credits: Sequence[Row]
    opening: Mapping[str, int] = field(default_factory=dict)
    prior_ids: frozenset[str] = frozenset()
    prior_transactions: Sequence[Row] = ()
    row_offset: int = 0  # line number of the first row minus 2 (delta rows follow history)
    # module outcomes (module_runs_log rows) that REFUND lines must agree with, and the
    # reason policy: refundable(code) is True/False, or None for a code it does not know
    module_runs: Sequence[Row] = ()
    refundable: Callable[[str], bool | None] | None = None
    # charged, unsettled work orders (open_work_orders rows) and when that is too long
    open_work_orders: Sequence[Row] = ()
    now: str = ""
    unsettled_alert_hours: float | None = None


def _int(v: str | None) -> int | None:
    s = (v or "").strip()
    if s.lstrip("-").isdigit() and len(s) <= 20:
        return int(s)
    return None


def _ref(table: str, i: int, row: Row, key: str, t: LedgerTables) -> str:
    return f"{table} line {i + 2 + t.row_offset} {key}={row.get(key, '')}"


def check_ids_and_fields(t: LedgerTables) -> list[Violation]:
    """Ids, then the fields of every transaction, item and redemption."""
    return _check_ids(t) + _transaction_fields(t) + _item_fields(t) + _redemption_fields(t)


def _check_ids(t: LedgerTables) -> list[Violation]:
    """Every id well-formed and unique (ignoring case), also against stored history."""
    out: list[Violation] = []
    specs = (
        (bt.TRANSACTIONS, t.transactions, "transaction_id", ids.IdKind.TRANSACTION),
        (bt.TRANSACTION_ITEMS, t.items, "transaction_item_id", ids.IdKind.TRANSACTION_ITEM),
        (bt.PROMOTION_REDEMPTIONS, t.redemptions, "redemption_id", ids.IdKind.REDEMPTION),
    )
    for table, rows, key, kind in specs:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            ref = _ref(table, i, row, key, t)
            v = row.get(key, "")
            msg = ids.check(kind, v)
            if msg:
                out.append(Violation("id-format", msg, (ref,)))
                continue
            f = ids.fold(v)
            if f in seen or f in t.prior_ids:
                first = seen.get(f)
                rows_ = (ref,) if first is None else (_ref(table, first, rows[first], key, t), ref)
                out.append(
                    Violation(
                        "id-unique", f"{key} {v!r} is used more than once (ignoring case)", rows_
                    )
                )
            seen.setdefault(f, i)
    return out


def _transaction_fields(t: LedgerTables) -> list[Violation]:
    """Tenant id, type, integer amounts, ids and timestamp of each transaction."""
    out: list[Violation] = []
    for i, row in enumerate(t.transactions):
        ref = _ref(bt.TRANSACTIONS, i, row, "transaction_id", t)
        if ids.check(ids.IdKind.TENANT, row.get("tenant_id", "")):
            out.append(
                Violation("field", f"tenant_id {row.get('tenant_id')!r} is not a tenant id", (ref,))
            )
        if row.get("type", "") not in TxType.__members__:
            out.append(
                Violation(
                    "field", f"type {row.get('type')!r} is not one of {', '.join(TxType)}", (ref,)
                )
            )
        for col in ("amount_credits", "balance_after"):
            if _int(row.get(col)) is None:
                out.append(Violation("field", f"{col} {row.get(col)!r} is not an integer", (ref,)))
        wo = row.get("work_order_id", "")
        if wo and not ids.is_valid(ids.IdKind.WORK_ORDER, wo):
            out.append(Violation("field", f"work_order_id {wo!r} is not a work order id", (ref,)))
        pid = row.get("payment_id", "")
        if pid and not ids.is_valid(ids.IdKind.PAYMENT, pid):
            out.append(Violation("field", f"payment_id {pid!r} is not a payment id", (ref,)))
        try:
            clock.parse_iso(row.get("created_at", ""))
        except Exception:
            out.append(
                Violation(
                    "field", f"created_at {row.get('created_at')!r} is not a timestamp", (ref,)
                )
            )
    return out


def _item_fields(t: LedgerTables) -> list[Violation]:
    """Kind and integer amounts of each item."""
    out: list[Violation] = []
    for i, row in enumerate(t.items):
        ref = _ref(bt.TRANSACTION_ITEMS, i, row, "transaction_item_id", t)
        if row.get("kind", "") not in ItemKind.__members__:
            out.append(Violation("field", f"kind {row.get('kind')!r} is not an item kind", (ref,)))
        for col in ("amount_credits", "line_no"):
            if _int(row.get(col)) is None:
                out.append(Violation("field", f"{col} {row.get(col)!r} is not an integer", (ref,)))
    return out


def _redemption_fields(t: LedgerTables) -> list[Violation]:
    """Event and non-negative amount of each redemption."""
    out: list[Violation] = []
    for i, row in enumerate(t.redemptions):
        ref = _ref(bt.PROMOTION_REDEMPTIONS, i, row, "redemption_id", t)
        if row.get("event", "") not in RedemptionEvent.__members__:
            out.append(
                Violation("field", f"event {row.get('event')!r} is not APPLIED or REFUNDED", (ref,))
            )
        n = _int(row.get("amount_credits"))
        if n is None or n < 0:
            out.append(
                Violation(
                    "field",
                    f"amount_credits {row.get('amount_credits')!r} is not an integer >= 0",
                    (ref,),
                )
            )
    return out


_SIGN = {"TOPUP": 1, "SPEND": -1, "REFUND": 1}


def check_balance_chains(t: LedgerTables) -> list[Violation]:
    """Every balance_after = previous + amount, never negative, with the type's sign."""
    out: list[Violation] = []
    bal: dict[str, int] = dict(t.opening)
    for i, row in enumerate(t.transactions):
        ref = _ref(bt.TRANSACTIONS, i, row, "transaction_id", t)
        amount, after = _int(row.get("amount_credits")), _int(row.get("balance_after"))
        if amount is None or after is None:
            continue
        tenant = row.get("tenant_id", "")
        sign = _SIGN.get(row.get("type", ""))
        if (sign == 1 and amount < 0) or (sign == -1 and amount > 0):
            out.append(Violation("amount-sign", f"{row.get('type')} has amount {amount}", (ref,)))
        if row.get("type") == "TOPUP" and amount == 0:
            out.append(Violation("amount-sign", "TOPUP of 0", (ref,)))
        expected = bal.get(tenant, 0) + amount
        if after != expected:
            out.append(
                Violation(
                    "balance-chain",
                    f"tenant {tenant}: balance_after {after}, expected {bal.get(tenant, 0)} + {amount} = {expected}",
                    (ref,),
                )
            )
        if after < 0:
            out.append(
                Violation("balance-negative", f"tenant {tenant}: balance_after {after} < 0", (ref,))
            )
        bal[tenant] = after
    return out


def check_balances(t: LedgerTables) -> list[Violation]:
    """tenants_credits.csv holds exactly the sum of each tenant's transactions."""
    out: list[Violation] = []
    sums: dict[str, int] = dict(t.opening)
    for row in t.transactions:
        n = _int(row.get("amount_credits"))
        if n is not None:
            sums[row.get("tenant_id", "")] = sums.get(row.get("tenant_id", ""), 0) + n
    stated: dict[str, int] = {}
    for i, row in enumerate(t.tenants_credits):
        tenant = row.get("tenant_id", "")
        ref = f"{bt.TENANTS_CREDITS} line {i + 2} tenant_id={tenant}"
        n = _int(row.get("balance_credits"))
        if n is None:
            out.append(
                Violation(
                    "field",
                    f"balance_credits {row.get('balance_credits')!r} is not an integer",
                    (ref,),
                )
            )
            continue
        if tenant in stated:
            out.append(Violation("balance", f"tenant {tenant} has two rows", (ref,)))
        stated[tenant] = n
        if n != sums.get(tenant, 0):
            out.append(
                Violation(
                    "balance",
                    f"tenant {tenant}: balance_credits {n} but its transactions sum to {sums.get(tenant, 0)}",
                    (ref,),
                )
            )
    for tenant, total in sums.items():
        if tenant not in stated and total != 0:
            out.append(
                Violation(
                    "balance",
                    f"tenant {tenant} has transactions summing to {total} but no row in {bt.TENANTS_CREDITS}",
                )
            )
    return out


_ITEM_KINDS = {
    "SPEND": {"MODULE", "ARTIFACT", "PROMO"},
    "REFUND": {"MODULE_REFUND", "ARTIFACT_REFUND", "PROMO_REVERSAL"},
    "TOPUP": {"TOPUP"},
    "ADJUSTMENT": {"ADJUSTMENT"},
}


def check_items(t: LedgerTables) -> list[Violation]:
    """Items belong to a transaction, have a fitting kind, and sum to |amount|."""
    out: list[Violation] = []
    txs = {row.get("transaction_id", ""): (i, row) for i, row in enumerate(t.transactions)}
    sums: dict[str, int] = defaultdict(int)
    refs: dict[str, list[str]] = defaultdict(list)
    for i, row in enumerate(t.items):
        ref = _ref(bt.TRANSACTION_ITEMS, i, row, "transaction_item_id", t)
        tx_id = row.get("transaction_id", "")
        n = _int(row.get("amount_credits"))
        if tx_id not in txs:
            out.append(
                Violation(
                    "item-orphan", f"item names transaction {tx_id!r}, which does not exist", (ref,)
                )
            )
            continue
        tx_type = txs[tx_id][1].get("type", "")
        kind = row.get("kind", "")
        if tx_type in _ITEM_KINDS and kind not in _ITEM_KINDS[tx_type]:
            out.append(Violation("item-kind", f"{kind} item on a {tx_type} transaction", (ref,)))
        if n is None:
            continue
        if (kind in ("PROMO", "PROMO_REVERSAL") and n > 0) or (
            kind not in ("PROMO", "PROMO_REVERSAL") and n < 0
        ):
            out.append(Violation("item-sign", f"{kind} item has amount {n}", (ref,)))
        sums[tx_id] += n
        refs[tx_id].append(ref)
    for tx_id, (i, row) in txs.items():
        amount = _int(row.get("amount_credits"))
        if amount is None:
            continue
        if sums.get(tx_id, 0) != abs(amount):
            out.append(
                Violation(
                    "items-sum",
                    f"transaction {tx_id}: items sum to {sums.get(tx_id, 0)}, |amount_credits| is {abs(amount)}",
                    (_ref(bt.TRANSACTIONS, i, row, "transaction_id", t), *refs.get(tx_id, [])),
                )
            )
    return out


def check_work_orders(t: LedgerTables) -> list[Violation]:
    """At most one SPEND and one REFUND per work order, REFUND after and within the SPEND."""
    out: list[Violation] = []
    by_wo: dict[str, list[tuple[str, Row]]] = defaultdict(list)
    for row in t.prior_transactions:
        by_wo[row.get("work_order_id", "")].append(
            (f"stored transaction_id={row.get('transaction_id')}", row)
        )
    for i, row in enumerate(t.transactions):
        by_wo[row.get("work_order_id", "")].append(
            (_ref(bt.TRANSACTIONS, i, row, "transaction_id", t), row)
        )
    for wo, rows in by_wo.items():
        out += _work_order_violations(wo, rows)
    return out


def _work_order_violations(wo: str, rows: list[tuple[str, Row]]) -> list[Violation]:
    """One work order's transactions: the SPEND/REFUND pairing rules."""
    if not wo:
        bad = tuple(ref for ref, r in rows if r.get("type") in ("SPEND", "REFUND"))
        return [Violation("work-order", "SPEND/REFUND without a work_order_id", bad)] if bad else []
    kinds = [r.get("type") for _, r in rows]
    refs = tuple(ref for ref, _ in rows)
    spends = [r for _, r in rows if r.get("type") == "SPEND"]
    refunds = [r for _, r in rows if r.get("type") == "REFUND"]
    found: list[str] = []
    if len(spends) > 1:
        found.append(f"work order {wo} has {len(spends)} SPEND transactions")
    if len(refunds) > 1:
        found.append(f"work order {wo} has {len(refunds)} REFUND transactions")
    if refunds and not spends:
        found.append(f"work order {wo} has a REFUND but no SPEND")
    if spends and refunds and kinds.index("REFUND") < kinds.index("SPEND"):
        found.append(f"work order {wo}: REFUND before SPEND")
    if len({r.get("tenant_id") for _, r in rows}) > 1:
        found.append(f"work order {wo} is charged to more than one tenant")
    if spends and refunds:
        s, r = _int(spends[0].get("amount_credits")), _int(refunds[0].get("amount_credits"))
        if s is not None and r is not None and r > -s:
            found.append(f"work order {wo}: REFUND {r} exceeds SPEND {-s}")
    return [Violation("work-order", message, refs) for message in found]


def check_redemptions(t: LedgerTables) -> list[Violation]:
    """APPLIED/REFUNDED events equal the PROMO/PROMO_REVERSAL items of their transaction."""
    out: list[Violation] = []
    txs = {row.get("transaction_id", ""): row for row in t.transactions}
    from_items: dict[tuple[str, str, str], int] = defaultdict(int)
    for row in t.items:
        kind = row.get("kind")
        n = _int(row.get("amount_credits"))
        if kind in ("PROMO", "PROMO_REVERSAL") and n is not None:
            ev = "APPLIED" if kind == "PROMO" else "REFUNDED"
            from_items[(row.get("transaction_id", ""), row.get("promo_code", ""), ev)] += -n
    from_events: dict[tuple[str, str, str], int] = defaultdict(int)
    counts: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for i, row in enumerate(t.redemptions):
        ref = _ref(bt.PROMOTION_REDEMPTIONS, i, row, "redemption_id", t)
        tx_id, ev = row.get("transaction_id", ""), row.get("event", "")
        tx = txs.get(tx_id)
        if tx is None:
            out.append(
                Violation(
                    "redemption",
                    f"redemption names transaction {tx_id!r}, which does not exist",
                    (ref,),
                )
            )
            continue
        want = "SPEND" if ev == "APPLIED" else "REFUND"
        if tx.get("type") != want:
            out.append(
                Violation("redemption", f"{ev} event on a {tx.get('type')} transaction", (ref,))
            )
        if tx.get("tenant_id") != row.get("tenant_id") or tx.get("work_order_id") != row.get(
            "work_order_id"
        ):
            out.append(
                Violation("redemption", "tenant/work order differ from its transaction's", (ref,))
            )
        key = (tx_id, row.get("promo_code", ""), ev)
        from_events[key] += _int(row.get("amount_credits")) or 0
        counts[key].append(ref)
    for key, refs in counts.items():
        if len(refs) > 1:
            out.append(
                Violation(
                    "redemption",
                    f"promo {key[1]}: {len(refs)} {key[2]} events in transaction {key[0]}",
                    tuple(refs),
                )
            )
    for key in sorted(set(from_items) | set(from_events)):
        a, b = from_items.get(key, 0), from_events.get(key, 0)
        if a != b or (a and key not in counts):
            tx_id, code, ev = key
            out.append(
                Violation(
                    "redemption",
                    f"transaction {tx_id} promo {code}: items give {a}, {ev} events say {b}",
                    tuple(counts.get(key, [])),
                )
            )
    return out


def check_topup_references(t: LedgerTables) -> list[Violation]:
    """A (tenant, reference) names one top-up: a second TOPUP with it is a double credit."""
    out: list[Violation] = []
    first: dict[tuple[str, str], str] = {}
    for i, row in enumerate(t.transactions):
        ref = row.get("reference", "")
        if row.get("type") != "TOPUP" or not ref:
            continue
        key = (row.get("tenant_id", ""), ref)
        here = _ref(bt.TRANSACTIONS, i, row, "transaction_id", t)
        if key in first:
            out.append(
                Violation(
                    "topup-reference",
                    f"tenant {key[0]}: reference {ref!r} is used by more than one TOPUP",
                    (first[key], here),
                )
            )
        first.setdefault(key, here)
    return out


def check_payment_ids(t: LedgerTables) -> list[Violation]:
    """A payment pays once: one payment id on two transactions is one payment counted twice."""
    out: list[Violation] = []
    first: dict[str, str] = {}
    for i, row in enumerate(t.transactions):
        pid = row.get("payment_id", "")
        if not pid:
            continue
        here = _ref(bt.TRANSACTIONS, i, row, "transaction_id", t)
        if ids.fold(pid) in first:
            out.append(
                Violation(
                    "payment-id",
                    f"payment_id {pid!r} is used by more than one transaction",
                    (first[ids.fold(pid)], here),
                )
            )
        first.setdefault(ids.fold(pid), here)
    return out


def check_unsettled(t: LedgerTables) -> list[Violation]:
    """Work orders charged longer ago than ``unsettled_alert_hours`` and still RUNNING."""
    if t.unsettled_alert_hours is None or not t.now:
        return []
    now = clock.parse_iso(t.now)
    out: list[Violation] = []
    for row in t.open_work_orders:
        try:
            started = clock.parse_iso(row.get("started_at", ""))
        except WorkmillError:
            continue  # a malformed log row is the field checks' business
        hours = (now - started).total_seconds() / 3600
        if hours > t.unsettled_alert_hours:
            age = f"{hours:.0f} h"
            out.append(
                Violation(
                    "unsettled",
                    f"work order {row.get('work_order_id')} of tenant {row.get('tenant_id')} "
                    f"has been RUNNING for {age} (alert after {t.unsettled_alert_hours:g} h): "
                    "charged, never refunded; run `workmill run` to finish it",
                    (f"SPEND transaction_id={row.get('spend_transaction_id', '')}",),
                )
            )
    return out


_NOT_DELIVERED = ("FAILED", "SKIPPED")


def _refund_runs(t: LedgerTables) -> dict[str, dict[str, tuple[str, Row]]]:
    """REFUND transaction id -> module_run_id -> (item reference, MODULE_REFUND item)."""
    refunds = {r.get("transaction_id", "") for r in t.transactions if r.get("type") == "REFUND"}
    out: dict[str, dict[str, tuple[str, Row]]] = {tx: {} for tx in refunds}
    for i, row in enumerate(t.items):
        tx = row.get("transaction_id", "")
        if tx in out and row.get("kind") == "MODULE_REFUND":
            ref = _ref(bt.TRANSACTION_ITEMS, i, row, "transaction_item_id", t)
            out[tx][row.get("module_run_id", "")] = (ref, row)
    return out


def _refund_disagreements(
    refunded: dict[str, tuple[str, Row]], runs: dict[str, Row], t: LedgerTables
) -> list[Violation]:
    out: list[Violation] = []
    for run_id, (ref, item) in refunded.items():
        run = runs.get(run_id)
        mid = item.get("module_id", "")
        if run is None:
            out.append(
                Violation("refund-outcome", f"module {mid} refunded, no recorded outcome", (ref,))
            )
        elif run.get("status") not in _NOT_DELIVERED:
            out.append(
                Violation("refund-outcome", f"module {mid} refunded but {run['status']}", (ref,))
            )
        elif t.refundable is not None and t.refundable(run.get("reason_code", "")) is False:
            out.append(
                Violation(
                    "refund-policy",
                    f"module {mid} refunded but reason {run.get('reason_code')} is not refundable",
                    (ref,),
                )
            )
    for run_id, run in runs.items():
        code = run.get("reason_code", "")
        owed = run.get("status") in _NOT_DELIVERED and t.refundable is not None
        if owed and run_id not in refunded and t.refundable(code):  # type: ignore[misc]
            out.append(
                Violation(
                    "refund-policy",
                    f"work order {run.get('work_order_id')}: module {run.get('module_id')} "
                    f"{run.get('status')} with refundable reason {code}, not refunded",
                    (f"{bt.MODULE_RUNS_LOG} module_run_id={run_id}",),
                )
            )
    return out


def check_refund_outcomes(t: LedgerTables) -> list[Violation]:
    """REFUND lines agree with the recorded module outcomes and the reason policy: a module
    line is refunded exactly when its run FAILED or was SKIPPED with a refundable reason."""
    if not t.module_runs:
        return []
    by_wo: dict[str, dict[str, Row]] = defaultdict(dict)
    for row in t.module_runs:
        by_wo[row.get("work_order_id", "")][row.get("module_run_id", "")] = row
    wo_of = {r.get("transaction_id", ""): r.get("work_order_id", "") for r in t.transactions}
    out: list[Violation] = []
    for tx, refunded in _refund_runs(t).items():
        runs = by_wo.get(wo_of.get(tx, ""), {})
        if runs:  # outcomes recorded with this REFUND (older ledgers may lack them)
            out.extend(_refund_disagreements(refunded, runs, t))
    return out


CHECKS: tuple[Callable[[LedgerTables], list[Violation]], ...] = (
    check_ids_and_fields,
    check_balance_chains,
    check_balances,
    check_items,
    check_work_orders,
    check_redemptions,
    check_topup_references,
    check_payment_ids,
    check_unsettled,
    check_refund_outcomes,
)


def verify(t: LedgerTables) -> list[Violation]:
    """Run every check; an empty list means the ledger is sound."""
    out: list[Violation] = []
    for check in CHECKS:
        out.extend(check(t))
    return out
