"""Ledger audit (``workmill ledger verify``, docs/reference.md "Ledger checks").

The checks are one accumulator, ``Audit``: rows are fed a batch at a time, table by
table (transactions, then module runs, items and redemptions), and ``finish`` gives
every violation, each with the rows involved so a finance person can look them up.
The full audit feeds the stored partitions one at a time, so what stays in memory is
compact per-id state (ids, types, amounts, running balances), never the rows; a
commit's new rows go through the same code (``verify``), with ``opening`` balances
from the state it builds on, before the store writes anything.

Each batch is first checked column by column with C-speed tests (``map`` over a
regex, set inclusion) that only ever accept valid values; a batch that fails one
is re-checked row by row with the exact rule, which reports the violations. Row
references (``transactions line 12 transaction_id=...``) are built only then.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import WorkmillError, one_line
from workmill.ledger.records import ItemKind, RedemptionEvent, TxType

Row = Mapping[str, str]
Cells = Sequence[str]


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


# The columns the checks read, in this order (``cells`` turns rows into these lists).
TX_COLUMNS = bt.COLUMNS[bt.TRANSACTIONS][:9]
ITEM_COLUMNS = bt.COLUMNS[bt.TRANSACTION_ITEMS][:9]
REDEMPTION_COLUMNS = bt.COLUMNS[bt.PROMOTION_REDEMPTIONS][:7]
RUN_COLUMNS = ("module_run_id", "work_order_id", "tenant_id", "module_id", "status", "reason_code")
T_ID, T_TENANT, T_WO, T_TYPE, T_AMOUNT, T_AFTER, T_AT, T_REF, T_PAY = range(9)
I_ID, I_TX, I_LINE, I_KIND, I_MODULE, _I_PRODUCT, I_PROMO, I_RUN, I_AMOUNT = range(9)
R_ID, R_PROMO, R_TENANT, R_WO, R_TX, R_EVENT, R_AMOUNT = range(7)
M_RUN, M_WO, _M_TENANT, M_MODULE, M_STATUS, M_REASON = range(6)

SPEND, REFUND, TOPUP = TxType.SPEND.value, TxType.REFUND.value, TxType.TOPUP.value
_TX_TYPES = frozenset(TxType.__members__)
_ITEM_KINDS_ALL = frozenset(ItemKind.__members__)
_EVENTS = frozenset(RedemptionEvent.__members__)
_PROMO_KINDS = ("PROMO", "PROMO_REVERSAL")
_ITEM_KINDS = {
    "SPEND": {"MODULE", "ARTIFACT", "PROMO"},
    "REFUND": {"MODULE_REFUND", "ARTIFACT_REFUND", "PROMO_REVERSAL"},
    "TOPUP": {"TOPUP"},
    "ADJUSTMENT": {"ADJUSTMENT"},
}
_KIND_FITS = frozenset((t, k) for t, kinds in _ITEM_KINDS.items() for k in kinds)
_SIGN = {"TOPUP": 1, "SPEND": -1, "REFUND": 1}
_NOT_DELIVERED = ("FAILED", "SKIPPED")
# accepts only what ``_int`` accepts (the fast path may be stricter, never looser)
_PLAIN_INTS = re.compile(r"(?:-?[0-9]{1,19},)*-?[0-9]{1,19}")
_ID = {kind: re.compile(rf"[0-9A-Za-z]{{{n}}}") for kind, n in ids.LENGTHS.items()}
_IDS = {
    kind: re.compile(rf"(?:[0-9A-Za-z]{{{n}}},)*[0-9A-Za-z]{{{n}}}")
    for kind, n in ids.LENGTHS.items()
}
_fold = str.lower  # ids.fold, without a Python call per id
assert _fold("aB0") == ids.fold("aB0")
# violations are reported check by check, in this order
STAGES = (
    "ids",
    "fields",
    "balance-chain",
    "balance",
    "items",
    "work-order",
    "redemption",
    "topup-reference",
    "payment-id",
    "unsettled",
    "refund",
)


def _int(v: str | None) -> int | None:
    s = (v or "").strip()
    if s.lstrip("-").isdigit() and len(s) <= 20:
        try:
            return int(s)
        except ValueError:  # "--1", or a digit int() does not read
            return None
    return None


def _all_plain(pattern: re.Pattern[str], values: Sequence[str]) -> bool:
    """Whether every value matches ``pattern``'s token (one regex run over the values
    joined by commas; as many commas as separators means no value held one)."""
    if not values:
        return True
    joined = ",".join(values)
    return joined.count(",") == len(values) - 1 and pattern.fullmatch(joined) is not None


def _plain_ints(values: Sequence[str]) -> bool:
    return _all_plain(_PLAIN_INTS, values)


def _ints(values: Sequence[str]) -> list[int | None]:
    if _plain_ints(values):
        return list(map(int, values))
    return [_int(v) for v in values]


def cells(rows: Iterable[Row], columns: Sequence[str]) -> list[list[str]]:
    """Rows as value lists in ``columns`` order (a missing cell reads as empty)."""
    return [[r.get(c) or "" for c in columns] for r in rows]


def _valid_ids(values: Iterable[str], kind: ids.IdKind) -> bool:
    return _all_plain(_IDS[kind], values if isinstance(values, Sequence) else list(values))


def _timestamps_ok(values: Iterable[str]) -> bool:
    for v in set(values):
        try:
            clock.parse_iso(v)
        except Exception:
            return False
    return True


class _WorkOrder:
    """What the SPEND/REFUND pairing rules need of one work order's transactions."""

    __slots__ = ("first_refund", "first_spend", "refund_amount", "refunds", "seen", "spend_amount")
    __slots__ += ("spends", "tenant", "tenants_differ")

    def __init__(self, tenant: str) -> None:
        self.spends = self.refunds = self.seen = 0
        self.first_spend = self.first_refund = -1
        self.spend_amount = self.refund_amount = ""
        self.tenant, self.tenants_differ = tenant, False

    def add(self, tx_type: str, tenant: str, amount: str) -> None:
        if tx_type == SPEND:
            if not self.spends:
                self.first_spend, self.spend_amount = self.seen, amount
            self.spends += 1
        elif tx_type == REFUND:
            if not self.refunds:
                self.first_refund, self.refund_amount = self.seen, amount
            self.refunds += 1
        if tenant != self.tenant:
            self.tenants_differ = True
        self.seen += 1

    def problems(self, wo: str) -> list[str]:
        found: list[str] = []
        if self.spends > 1:
            found.append(f"work order {wo} has {self.spends} SPEND transactions")
        if self.refunds > 1:
            found.append(f"work order {wo} has {self.refunds} REFUND transactions")
        if self.refunds and not self.spends:
            found.append(f"work order {wo} has a REFUND but no SPEND")
        if self.spends and self.refunds and self.first_refund < self.first_spend:
            found.append(f"work order {wo}: REFUND before SPEND")
        if self.tenants_differ:
            found.append(f"work order {wo} is charged to more than one tenant")
        if self.spends and self.refunds:
            s, r = _int(self.spend_amount), _int(self.refund_amount)
            if s is not None and r is not None and r > -s:
                found.append(f"work order {wo}: REFUND {r} exceeds SPEND {-s}")
        return found


class _Ids:
    """Ids of one table: well-formed and unique ignoring case (also against stored ones)."""

    def __init__(self, table: str, key: str, kind: ids.IdKind, prior: frozenset[str]) -> None:
        self.table, self.key, self.kind, self.prior = table, key, kind, prior
        self.values: list[str] = []  # by row, for references
        self.folded: set[str] = set()
        self._first: dict[str, int] | None = None  # built on the first duplicate only

    def add(self, values: Sequence[str], ref: Callable[[int], str]) -> list[Violation]:
        start = len(self.values)
        self.values.extend(values)
        # a batch with no upper-case letter folds to itself: keep the same strings
        joined = ",".join(values)
        folded = list(values) if joined.isascii() and joined.islower() else list(map(_fold, values))
        batch = set(folded)
        clean = (
            self._first is None
            and len(batch) == len(folded)
            and self.folded.isdisjoint(batch)
            and self.prior.isdisjoint(batch)
            and _valid_ids(values, self.kind)
        )
        if clean:
            self.folded.update(batch)
            return []
        return self._rows(start, values, folded, ref)

    def _rows(
        self, start: int, values: Sequence[str], folded: list[str], ref: Callable[[int], str]
    ) -> list[Violation]:
        if self._first is None:
            self._first = {}
            for i, v in enumerate(self.values[:start]):
                if ids.is_valid(self.kind, v):
                    self._first.setdefault(ids.fold(v), i)
        first_of, out = self._first, []
        for i, v, f in zip(count(start), values, folded, strict=False):
            msg = ids.check(self.kind, v)
            if msg:
                out.append(Violation("id-format", msg, (ref(i),)))
                continue
            if f in first_of or f in self.prior:
                first = first_of.get(f)
                rows = (ref(i),) if first is None else (ref(first), ref(i))
                out.append(
                    Violation(
                        "id-unique",
                        f"{self.key} {v!r} is used more than once (ignoring case)",
                        rows,
                    )
                )
            first_of.setdefault(f, i)
            self.folded.add(f)
        return out


class Audit:
    """Every ledger check, fed rows in order; ``finish`` returns the violations."""

    def __init__(
        self,
        *,
        opening: Mapping[str, int] | None = None,
        prior_ids: frozenset[str] = frozenset(),
        prior_transactions: Sequence[Row] = (),
        row_offset: int = 0,
        refundable: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.row_offset = row_offset
        self.refundable = refundable
        self._out: dict[str, list[Violation]] = {s: [] for s in STAGES}
        self._tx_ids = _Ids(bt.TRANSACTIONS, "transaction_id", ids.IdKind.TRANSACTION, prior_ids)
        self._item_ids = _Ids(
            bt.TRANSACTION_ITEMS, "transaction_item_id", ids.IdKind.TRANSACTION_ITEM, prior_ids
        )
        self._red_ids = _Ids(
            bt.PROMOTION_REDEMPTIONS, "redemption_id", ids.IdKind.REDEMPTION, prior_ids
        )
        # transactions: by row number, and the row number of each id (the last one wins)
        self._tx_index: dict[str, int] = {}
        self._tx_type: list[str] = []
        self._tx_tenant: list[str] = []
        self._tx_wo: list[str] = []
        self._tx_amount: list[int | None] = []
        self._balance: dict[str, int] = dict(opening or {})
        self._sums: dict[str, int] = dict(opening or {})
        self._wos: dict[str, _WorkOrder | None] = {}
        self._prior_refs: dict[str, list[str]] = defaultdict(list)
        self._no_wo: list[int] = []  # SPEND/REFUND rows without a work order
        self._topups: dict[tuple[str, str], int] = {}
        self._topup_last: dict[tuple[str, str], int] = {}
        self._payments: dict[str, int] = {}
        # items: the transaction row each names (-1: none; -2: amount not an integer)
        self._item_tx = array("q")
        self._item_sum: list[int] = []
        self._promo_items: dict[tuple[str, str, str], int] = defaultdict(int)
        # REFUND transaction id -> (module run id, item row, module id) of its MODULE_REFUND lines
        self._refunded: dict[str, list[tuple[str, int, str]]] = {}
        # redemptions
        self._events: dict[tuple[str, str, str], int] = defaultdict(int)
        self._event_rows: dict[tuple[str, str, str], list[int]] = defaultdict(list)
        # module runs of work orders with a REFUND: work order -> run id -> cells
        self._refund_wos: set[str] | None = None
        self._runs: dict[str, list[Cells]] = {}
        for row in prior_transactions:
            self._prior_transaction(row)

    # ------------------------------------------------------------ references
    def _ref(self, table: str, key: str, i: int, value: str) -> str:
        return f"{table} line {i + 2 + self.row_offset} {key}={value}"

    def tx_ref(self, k: int) -> str:
        return self._ref(bt.TRANSACTIONS, "transaction_id", k, self._tx_ids.values[k])

    def item_ref(self, i: int) -> str:
        return self._ref(bt.TRANSACTION_ITEMS, "transaction_item_id", i, self._item_ids.values[i])

    def red_ref(self, i: int) -> str:
        return self._ref(bt.PROMOTION_REDEMPTIONS, "redemption_id", i, self._red_ids.values[i])

    # ------------------------------------------------------------ transactions
    def _prior_transaction(self, row: Row) -> None:
        wo = row.get("work_order_id", "")
        if not wo:  # the delta path brings the stored rows of work orders only
            return
        self._prior_refs[wo].append(f"stored transaction_id={row.get('transaction_id')}")
        st = self._wos.get(wo)
        if st is None:
            st = self._wos[wo] = _WorkOrder(row.get("tenant_id", ""))
        st.add(row.get("type", ""), row.get("tenant_id", ""), row.get("amount_credits", ""))

    def add_transactions(self, rows: Sequence[Cells]) -> None:
        """Feed transaction rows (``TX_COLUMNS`` order), in ledger order."""
        if not rows:
            return
        start = len(self._tx_type)
        cols = list(zip(*rows, strict=True))
        self._out["ids"] += self._tx_ids.add(cols[T_ID], self.tx_ref)
        if not self._tx_fields_ok(cols):
            self._tx_fields(rows, start)
        amounts, afters = _ints(cols[T_AMOUNT]), _ints(cols[T_AFTER])
        tenants = list(map(sys.intern, cols[T_TENANT]))
        types = list(map(sys.intern, cols[T_TYPE]))
        self._tx_index.update(zip(cols[T_ID], range(start, start + len(rows)), strict=True))
        self._tx_type += types
        self._tx_tenant += tenants
        self._tx_wo += cols[T_WO]
        self._tx_amount += amounts
        self._chains(start, tenants, types, amounts, afters)
        self._work_orders(start, cols[T_WO], types, tenants, cols[T_AMOUNT])
        self._references(start, types, tenants, cols[T_REF], cols[T_PAY])

    @staticmethod
    def _tx_fields_ok(cols: list[tuple[str, ...]]) -> bool:
        return (
            _valid_ids(set(cols[T_TENANT]), ids.IdKind.TENANT)
            and set(cols[T_TYPE]) <= _TX_TYPES
            and _plain_ints(cols[T_AMOUNT])
            and _plain_ints(cols[T_AFTER])
            and _valid_ids(set(cols[T_WO]) - {""}, ids.IdKind.WORK_ORDER)
            and _valid_ids(set(cols[T_PAY]) - {""}, ids.IdKind.PAYMENT)
            and _timestamps_ok(cols[T_AT])
        )

    def _tx_fields(self, rows: Sequence[Cells], start: int) -> None:
        """Tenant id, type, integer amounts, ids and timestamp of each transaction."""
        out = self._out["fields"]
        for k, row in enumerate(rows, start):
            ref = (self.tx_ref(k),)
            if ids.check(ids.IdKind.TENANT, row[T_TENANT]):
                out.append(
                    Violation("field", f"tenant_id {row[T_TENANT]!r} is not a tenant id", ref)
                )
            if row[T_TYPE] not in _TX_TYPES:
                out.append(
                    Violation(
                        "field", f"type {row[T_TYPE]!r} is not one of {', '.join(TxType)}", ref
                    )
                )
            for col, j in (("amount_credits", T_AMOUNT), ("balance_after", T_AFTER)):
                if _int(row[j]) is None:
                    out.append(Violation("field", f"{col} {row[j]!r} is not an integer", ref))
            for col, j, kind, what in (
                ("work_order_id", T_WO, ids.IdKind.WORK_ORDER, "a work order id"),
                ("payment_id", T_PAY, ids.IdKind.PAYMENT, "a payment id"),
            ):
                if row[j] and not ids.is_valid(kind, row[j]):
                    out.append(Violation("field", f"{col} {row[j]!r} is not {what}", ref))
            if not _timestamps_ok((row[T_AT],)):
                out.append(Violation("field", f"created_at {row[T_AT]!r} is not a timestamp", ref))

    def _chains(
        self,
        start: int,
        tenants: list[str],
        types: list[str],
        amounts: list[int | None],
        afters: list[int | None],
    ) -> None:
        """balance_after = previous + amount, never negative, with the type's sign; and the
        per-tenant sums that tenants_credits.csv must hold."""
        bal, sums = self._balance, self._sums
        for k, tenant, typ, a, b in zip(count(start), tenants, types, amounts, afters):
            if a is None:
                continue
            sums[tenant] = sums.get(tenant, 0) + a
            if b is None:
                continue
            prev = bal.get(tenant, 0)
            if b != prev + a or b < 0 or (a <= 0 and typ == TOPUP) or _SIGN.get(typ, 0) * a < 0:
                self._chain_violations(k, tenant, typ, a, b, prev)
            bal[tenant] = b

    def _chain_violations(self, k: int, tenant: str, typ: str, a: int, b: int, prev: int) -> None:
        ref, out = (self.tx_ref(k),), self._out["balance-chain"]
        sign = _SIGN.get(typ)
        if (sign == 1 and a < 0) or (sign == -1 and a > 0):
            out.append(Violation("amount-sign", f"{typ} has amount {a}", ref))
        if typ == TOPUP and a == 0:
            out.append(Violation("amount-sign", "TOPUP of 0", ref))
        if b != prev + a:
            out.append(
                Violation(
                    "balance-chain",
                    f"tenant {tenant}: balance_after {b}, expected {prev} + {a} = {prev + a}",
                    ref,
                )
            )
        if b < 0:
            out.append(
                Violation("balance-negative", f"tenant {tenant}: balance_after {b} < 0", ref)
            )

    def _work_orders(
        self, start: int, wos: Sequence[str], types: list[str], tenants: list[str], amounts: Cells
    ) -> None:
        states = self._wos
        for k, wo, typ, tenant, amount in zip(count(start), wos, types, tenants, amounts):
            if not wo:
                states.setdefault("", None)
                if typ in (SPEND, REFUND):
                    self._no_wo.append(k)
                continue
            st = states.get(wo)
            if st is None:
                st = states[wo] = _WorkOrder(tenant)
            st.add(typ, tenant, amount)

    def _references(
        self, start: int, types: list[str], tenants: list[str], refs: Cells, payments: Cells
    ) -> None:
        """A (tenant, reference) names one top-up; a payment id pays once."""
        topups, last = self._topups, self._topup_last
        for k, typ, tenant, ref in zip(count(start), types, tenants, refs):
            if ref and typ == TOPUP:
                first = topups.setdefault((tenant, ref), k)
                if first != k:
                    last[(tenant, ref)] = k
                    self._out["topup-reference"].append(
                        Violation(
                            "topup-reference",
                            f"tenant {tenant}: reference {ref!r} is used by more than one TOPUP",
                            (self.tx_ref(first), self.tx_ref(k)),
                        )
                    )
        for k, pid in zip(count(start), payments):
            if pid:
                first = self._payments.setdefault(ids.fold(pid), k)
                if first != k:
                    self._out["payment-id"].append(
                        Violation(
                            "payment-id",
                            f"payment_id {pid!r} is used by more than one transaction",
                            (self.tx_ref(first), self.tx_ref(k)),
                        )
                    )

    def topup_references(self) -> dict[tuple[str, str], str]:
        """(tenant, reference) -> the transaction id of its (last) TOPUP, as
        ``topup_references.csv`` must hold it."""
        values = self._tx_ids.values
        out = {key: values[k] for key, k in self._topups.items()}
        out.update((key, values[k]) for key, k in self._topup_last.items())
        return out

    def spend_work_orders(self, tx_ids: Sequence[str]) -> list[str]:
        """The work order of each named transaction that is a fed SPEND, else ''."""
        types, wos = self._tx_type, self._tx_wo
        return [
            wos[k] if k is not None and types[k] == SPEND else ""
            for k in map(self._tx_index.get, tx_ids)
        ]

    # ------------------------------------------------------------ module runs
    def add_module_runs(self, rows: Sequence[Cells]) -> None:
        """Feed module_runs_log rows (``RUN_COLUMNS`` order), after the transactions.
        Only runs of work orders with a REFUND are kept, without their tenant."""
        if self._refund_wos is None:
            self._refund_wos = {
                wo for typ, wo in zip(self._tx_type, self._tx_wo, strict=True) if typ == REFUND
            }
        wanted, runs, intern = self._refund_wos, self._runs, sys.intern
        for row in rows:
            wo = row[M_WO]
            if wo in wanted:
                kept = (row[M_RUN], wo, "", intern(row[M_MODULE]), intern(row[M_STATUS]))
                runs.setdefault(wo, []).append((*kept, intern(row[M_REASON])))

    # ------------------------------------------------------------ items
    def add_items(self, rows: Sequence[Cells]) -> None:
        """Feed transaction item rows (``ITEM_COLUMNS`` order), after the transactions."""
        if not rows:
            return
        start = len(self._item_tx)
        cols = list(zip(*rows, strict=True))
        self._out["ids"] += self._item_ids.add(cols[I_ID], self.item_ref)
        kinds = cols[I_KIND]
        fields_ok = (
            set(kinds) <= _ITEM_KINDS_ALL
            and _plain_ints(cols[I_AMOUNT])
            and _plain_ints(cols[I_LINE])
        )
        if not fields_ok:
            self._item_fields(rows, start)
        if len(self._item_sum) < len(self._tx_type):
            self._item_sum += [0] * (len(self._tx_type) - len(self._item_sum))
        amounts = _ints(cols[I_AMOUNT])
        owners = list(map(self._tx_index.get, cols[I_TX]))
        self._item_links(start, owners, kinds, amounts, cols[I_TX])
        if not set(kinds).isdisjoint(_PROMO_KINDS):
            self._promos(rows, amounts)
        if "MODULE_REFUND" in kinds:
            self._refund_lines(start, rows, owners)

    def _item_fields(self, rows: Sequence[Cells], start: int) -> None:
        out = self._out["fields"]
        for i, row in enumerate(rows, start):
            if row[I_KIND] not in _ITEM_KINDS_ALL:
                out.append(
                    Violation(
                        "field", f"kind {row[I_KIND]!r} is not an item kind", (self.item_ref(i),)
                    )
                )
            for col, j in (("amount_credits", I_AMOUNT), ("line_no", I_LINE)):
                if _int(row[j]) is None:
                    out.append(
                        Violation(
                            "field", f"{col} {row[j]!r} is not an integer", (self.item_ref(i),)
                        )
                    )

    def _item_links(
        self,
        start: int,
        owners: list[int | None],
        kinds: Cells,
        amounts: list[int | None],
        tx_ids: Cells,
    ) -> None:
        """Items belong to a transaction, have a fitting kind and sign; sums per transaction."""
        types, sums, links = self._tx_type, self._item_sum, self._item_tx
        for i, k, kind, n in zip(count(start), owners, kinds, amounts):
            if k is None:
                links.append(-1)
                self._out["items"].append(
                    Violation(
                        "item-orphan",
                        f"item names transaction {tx_ids[i - start]!r}, which does not exist",
                        (self.item_ref(i),),
                    )
                )
                continue
            typ = types[k]
            if (typ, kind) not in _KIND_FITS and typ in _ITEM_KINDS:
                self._out["items"].append(
                    Violation(
                        "item-kind", f"{kind} item on a {typ} transaction", (self.item_ref(i),)
                    )
                )
            if n is None:
                links.append(-2)
                continue
            if (n > 0) if kind in _PROMO_KINDS else (n < 0):
                self._out["items"].append(
                    Violation("item-sign", f"{kind} item has amount {n}", (self.item_ref(i),))
                )
            sums[k] += n
            links.append(k)

    def _promos(self, rows: Sequence[Cells], amounts: list[int | None]) -> None:
        for row, n in zip(rows, amounts, strict=True):
            if row[I_KIND] in _PROMO_KINDS and n is not None:
                ev = "APPLIED" if row[I_KIND] == "PROMO" else "REFUNDED"
                self._promo_items[(row[I_TX], row[I_PROMO], ev)] += -n

    def _refund_lines(self, start: int, rows: Sequence[Cells], owners: list[int | None]) -> None:
        types = self._tx_type
        for i, row, k in zip(count(start), rows, owners):
            if k is not None and row[I_KIND] == "MODULE_REFUND" and types[k] == REFUND:
                line = (row[I_RUN], i, sys.intern(row[I_MODULE]))
                self._refunded.setdefault(row[I_TX], []).append(line)

    # ------------------------------------------------------------ redemptions
    def add_redemptions(self, rows: Sequence[Cells]) -> None:
        """Feed promotion redemption rows (``REDEMPTION_COLUMNS`` order), after the items."""
        if not rows:
            return
        start = len(self._red_ids.values)
        cols = list(zip(*rows, strict=True))
        self._out["ids"] += self._red_ids.add(cols[R_ID], self.red_ref)
        for i, row in enumerate(rows, start):
            self._redemption(i, row)

    def _redemption(self, i: int, row: Cells) -> None:
        ref, fields, out = (self.red_ref(i),), self._out["fields"], self._out["redemption"]
        if row[R_EVENT] not in _EVENTS:
            fields.append(
                Violation("field", f"event {row[R_EVENT]!r} is not APPLIED or REFUNDED", ref)
            )
        n = _int(row[R_AMOUNT])
        if n is None or n < 0:
            fields.append(
                Violation("field", f"amount_credits {row[R_AMOUNT]!r} is not an integer >= 0", ref)
            )
        tx_id, ev = row[R_TX], row[R_EVENT]
        k = self._tx_index.get(tx_id)
        if k is None:
            out.append(
                Violation(
                    "redemption",
                    f"redemption names transaction {tx_id!r}, which does not exist",
                    ref,
                )
            )
            return
        typ = self._tx_type[k]
        if typ != (SPEND if ev == "APPLIED" else REFUND):
            out.append(Violation("redemption", f"{ev} event on a {typ} transaction", ref))
        if self._tx_tenant[k] != row[R_TENANT] or self._tx_wo[k] != row[R_WO]:
            out.append(
                Violation("redemption", "tenant/work order differ from its transaction's", ref)
            )
        key = (tx_id, row[R_PROMO], ev)
        self._events[key] += n or 0
        self._event_rows[key].append(i)

    # ------------------------------------------------------------ the end
    def finish(
        self,
        tenants_credits: Sequence[Row] = (),
        open_work_orders: Sequence[Row] = (),
        now: str = "",
        unsettled_alert_hours: float | None = None,
    ) -> list[Violation]:
        """Every violation, check by check (the cross-row checks are decided here)."""
        self._out["balance"] += self._balances(tenants_credits)
        self._out["items"] += self._item_sums()
        self._out["work-order"] += self._work_order_violations()
        self._out["redemption"] += self._redemption_totals()
        self._out["unsettled"] += _unsettled(open_work_orders, now, unsettled_alert_hours)
        self._out["refund"] += self._refund_outcomes()
        return [v for stage in STAGES for v in self._out[stage]]

    def _balances(self, tenants_credits: Sequence[Row]) -> list[Violation]:
        """tenants_credits.csv holds exactly the sum of each tenant's transactions."""
        out: list[Violation] = []
        sums = self._sums
        stated: dict[str, int] = {}
        for i, row in enumerate(tenants_credits):
            tenant = row.get("tenant_id", "")
            ref = (f"{bt.TENANTS_CREDITS} line {i + 2} tenant_id={tenant}",)
            n = _int(row.get("balance_credits"))
            if n is None:
                value = row.get("balance_credits")
                out.append(Violation("field", f"balance_credits {value!r} is not an integer", ref))
                continue
            if tenant in stated:
                out.append(Violation("balance", f"tenant {tenant} has two rows", ref))
            stated[tenant] = n
            if n != sums.get(tenant, 0):
                out.append(
                    Violation(
                        "balance",
                        f"tenant {tenant}: balance_credits {n} but its transactions sum to "
                        f"{sums.get(tenant, 0)}",
                        ref,
                    )
                )
        for tenant, total in sums.items():
            if tenant not in stated and total != 0:
                out.append(
                    Violation(
                        "balance",
                        f"tenant {tenant} has transactions summing to {total} but no row in "
                        f"{bt.TENANTS_CREDITS}",
                    )
                )
        return out

    def _item_sums(self) -> list[Violation]:
        """Items of a transaction sum to |amount_credits|."""
        sums, amounts = self._item_sum, self._tx_amount
        sums += [0] * (len(amounts) - len(sums))
        bad = [
            (tx_id, k)
            for tx_id, k in self._tx_index.items()
            if amounts[k] is not None and sums[k] != abs(amounts[k])  # type: ignore[arg-type]
        ]
        if not bad:
            return []
        wanted = {k for _, k in bad}
        mine: dict[int, list[str]] = defaultdict(list)
        for i, k in enumerate(self._item_tx):
            if k in wanted:
                mine[k].append(self.item_ref(i))
        return [
            Violation(
                "items-sum",
                f"transaction {tx_id}: items sum to {sums[k]}, |amount_credits| is "
                f"{abs(amounts[k])}",  # type: ignore[arg-type]
                (self.tx_ref(k), *mine[k]),
            )
            for tx_id, k in bad
        ]

    def _work_order_violations(self) -> list[Violation]:
        """At most one SPEND and one REFUND per work order, REFUND after and within the SPEND."""
        found: list[tuple[str, str]] = []
        for wo, st in self._wos.items():
            if st is not None:
                found += [(wo, message) for message in st.problems(wo)]
            elif self._no_wo:
                found.append(("", "SPEND/REFUND without a work_order_id"))
        if not found:
            return []
        wanted = {wo for wo, _ in found}
        refs: dict[str, list[str]] = {wo: list(self._prior_refs.get(wo, [])) for wo in wanted}
        refs[""] = [self.tx_ref(k) for k in self._no_wo]
        for k, wo in enumerate(self._tx_wo):
            if wo and wo in wanted:
                refs[wo].append(self.tx_ref(k))
        return [Violation("work-order", message, tuple(refs[wo])) for wo, message in found]

    def _redemption_totals(self) -> list[Violation]:
        """APPLIED/REFUNDED events equal the PROMO/PROMO_REVERSAL items of their transaction."""
        out: list[Violation] = []
        rows = self._event_rows
        for key, found in rows.items():
            if len(found) > 1:
                out.append(
                    Violation(
                        "redemption",
                        f"promo {key[1]}: {len(found)} {key[2]} events in transaction {key[0]}",
                        tuple(map(self.red_ref, found)),
                    )
                )
        for key in sorted(set(self._promo_items) | set(self._events)):
            a, b = self._promo_items.get(key, 0), self._events.get(key, 0)
            if a != b or (a and key not in rows):
                tx_id, code, ev = key
                out.append(
                    Violation(
                        "redemption",
                        f"transaction {tx_id} promo {code}: items give {a}, {ev} events say {b}",
                        tuple(map(self.red_ref, rows.get(key, []))),
                    )
                )
        return out

    def _refund_outcomes(self) -> list[Violation]:
        """REFUND lines agree with the recorded module outcomes and the reason policy: a
        module line is refunded exactly when its run FAILED or was SKIPPED with a
        refundable reason."""
        if not self._runs:
            return []
        out: list[Violation] = []
        values, seen = self._tx_ids.values, set()
        for k, typ in enumerate(self._tx_type):
            if typ != REFUND or values[k] in seen:
                continue
            seen.add(values[k])
            runs = self._runs.get(self._tx_wo[self._tx_index[values[k]]])
            if runs:  # outcomes recorded with this REFUND (older ledgers may lack them)
                refunded = {run: (i, mid) for run, i, mid in self._refunded.get(values[k], ())}
                out += self._refund_disagreements(refunded, {r[M_RUN]: r for r in runs})
        return out

    def _refund_disagreements(
        self, refunded: dict[str, tuple[int, str]], runs: dict[str, Cells]
    ) -> list[Violation]:
        out: list[Violation] = []
        policy = self.refundable
        for run_id, (i, mid) in refunded.items():
            run, ref = runs.get(run_id), (self.item_ref(i),)
            if run is None:
                out.append(
                    Violation("refund-outcome", f"module {mid} refunded, no recorded outcome", ref)
                )
            elif run[M_STATUS] not in _NOT_DELIVERED:
                out.append(
                    Violation("refund-outcome", f"module {mid} refunded but {run[M_STATUS]}", ref)
                )
            elif policy is not None and policy(run[M_REASON]) is False:
                out.append(
                    Violation(
                        "refund-policy",
                        f"module {mid} refunded but reason {run[M_REASON]} is not refundable",
                        ref,
                    )
                )
        for run_id, run in runs.items():
            code = run[M_REASON]
            owed = run[M_STATUS] in _NOT_DELIVERED and policy is not None
            if owed and run_id not in refunded and policy(code):  # type: ignore[misc]
                out.append(
                    Violation(
                        "refund-policy",
                        f"work order {run[M_WO]}: module {run[M_MODULE]} "
                        f"{run[M_STATUS]} with refundable reason {code}, not refunded",
                        (f"{bt.MODULE_RUNS_LOG} module_run_id={run_id}",),
                    )
                )
        return out


def _unsettled(
    open_work_orders: Sequence[Row], now_iso: str, alert_hours: float | None
) -> list[Violation]:
    """Work orders charged longer ago than ``unsettled_alert_hours`` and still RUNNING."""
    if alert_hours is None or not now_iso:
        return []
    now = clock.parse_iso(now_iso)
    out: list[Violation] = []
    for row in open_work_orders:
        try:
            started = clock.parse_iso(row.get("started_at", ""))
        except WorkmillError:
            continue  # a malformed log row is the field checks' business
        hours = (now - started).total_seconds() / 3600
        if hours > alert_hours:
            out.append(
                Violation(
                    "unsettled",
                    f"work order {row.get('work_order_id')} of tenant {row.get('tenant_id')} "
                    f"has been RUNNING for {hours:.0f} h (alert after {alert_hours:g} h): "
                    "charged, never refunded; run `workmill run` to finish it",
                    (f"SPEND transaction_id={row.get('spend_transaction_id', '')}",),
                )
            )
    return out


def verify(t: LedgerTables) -> list[Violation]:
    """Run every check; an empty list means the ledger is sound."""
    audit = Audit(
        opening=t.opening,
        prior_ids=t.prior_ids,
        prior_transactions=t.prior_transactions,
        row_offset=t.row_offset,
        refundable=t.refundable,
    )
    audit.add_transactions(cells(t.transactions, TX_COLUMNS))
    if t.module_runs:
        audit.add_module_runs(cells(t.module_runs, RUN_COLUMNS))
    audit.add_items(cells(t.items, ITEM_COLUMNS))
    audit.add_redemptions(cells(t.redemptions, REDEMPTION_COLUMNS))
    return audit.finish(t.tenants_credits, t.open_work_orders, t.now, t.unsettled_alert_hours)
