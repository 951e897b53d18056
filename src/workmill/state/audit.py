"""The full audit of one stored revision (``workmill ledger verify``), streamed.

Every partition of every table is read once and parsed once: its sha256 and row
count are checked against the manifest, then its rows are fed to the ledger checks
(``workmill.ledger.verify.Audit``) and to the derived-table checks, and dropped. So
memory holds one partition's rows plus the checks' compact per-id state, not the
history (docs/architecture.md "Ledger verification").

The derived work-order index is checked without building it: each side (the index
as stored; the rows the ledger tables give) is reduced to one sha256 per (bucket,
source) over the rows' CSV text in order. Equal digests mean equal rows; any
difference (or anything unusual, e.g. an unknown source) falls back to the exact
row-by-row comparison, which names what differs.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

from workmill import billing_tables as bt
from workmill import clock
from workmill.errors import NotFound, SpecError
from workmill.fsio import sha256_bytes
from workmill.ledger.verify import (
    ITEM_COLUMNS,
    REDEMPTION_COLUMNS,
    RUN_COLUMNS,
    TX_COLUMNS,
    Audit,
    Violation,
)
from workmill.state import workorder_index as wi
from workmill.state.billing_state import (
    TOPUP_REFERENCE_COLUMNS,
    TOPUP_REFERENCES,
    BillingState,
    columns_of,
)
from workmill.state.manifest import PartitionRef
from workmill.tables import parse_rows

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# ledger tables first, in the order the checks need them; every other table after
FEED_ORDER = (
    bt.TRANSACTIONS,
    bt.MODULE_RUNS_LOG,
    bt.TRANSACTION_ITEMS,
    bt.PROMOTION_REDEMPTIONS,
    bt.WORKORDERS_LOG,
    bt.WORKORDER_PLANS,
    wi.WORKORDER_INDEX,
    TOPUP_REFERENCES,
)
_FED = {
    bt.TRANSACTIONS: TX_COLUMNS,
    bt.MODULE_RUNS_LOG: RUN_COLUMNS,
    bt.TRANSACTION_ITEMS: ITEM_COLUMNS,
    bt.PROMOTION_REDEMPTIONS: REDEMPTION_COLUMNS,
}
_SOURCE_CODE = {table: code for code, table in wi.SOURCES.items()}
_WIDTH = len(wi.VALUE_COLUMNS)


def _render(values: Sequence[str]) -> str:
    """One row as the csv module writes it (the canonical text both index sides use)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()[:-1]


@dataclass
class _IndexDigests:
    """sha256 per (bucket, source) of index rows' text, in order, for one side."""

    digests: dict[tuple[str, str], hashlib._Hash] = field(default_factory=dict)

    def add(self, groups: list[str], source: str, lines: list[str]) -> None:
        """``lines[i]`` belongs to bucket ``groups[i]``: a stable sort by bucket keeps
        each bucket's lines in order, and each bucket's run is hashed in one call."""
        pairs = sorted(zip(groups, lines, strict=True), key=_FIRST)
        for group, run in groupby(pairs, key=_FIRST):
            key = (group, source)
            h = self.digests.get(key)
            if h is None:
                h = self.digests[key] = hashlib.sha256()
            h.update(("\n".join(map(_SECOND, run)) + "\n").encode())

    def result(self) -> dict[tuple[str, str], str]:
        return {k: h.hexdigest() for k, h in self.digests.items()}


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


class _Derived:
    """What the derived tables must hold, built while the ledger tables stream past."""

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        self.want = _IndexDigests()
        self.have = _IndexDigests()
        self.exact = True  # False: the digests cannot decide; compare row by row
        self._bucket: dict[str, str] = {}
        self._open: dict[tuple[str, str], dict[str, str]] = {}
        self.redemptions: list[dict[str, str]] = []
        self.topup_refs: dict[tuple[str, str], str] = {}

    def buckets(self, wos: list[str]) -> list[str]:
        """``wi.bucket`` of each work order (each distinct one hashed once)."""
        cache = self._bucket
        for wo in set(wos).difference(cache):
            cache[wo] = sys.intern(wi.bucket(wo))
        return list(map(cache.__getitem__, wos))

    def source_rows(
        self, table: str, header: list[str], rows: list[list[str]], plain: bool
    ) -> None:
        """Index rows these source rows give (``wi.derive``), into the wanted digests."""
        code = _SOURCE_CODE[table]
        if table == bt.TRANSACTION_ITEMS:  # items of SPENDs, under the SPEND's work order
            at = header.index("transaction_id")
            wos = self.audit.spend_work_orders([r[at] for r in rows])
        else:
            at = header.index("work_order_id")
            wos = [r[at] for r in rows]
        mine = [(wo, row) for wo, row in zip(wos, rows, strict=True) if wo]
        if plain and tuple(header) == wi.INDEXED[table][: len(header)]:
            pad = "," * (_WIDTH - len(header))
            lines = [f"{wo},{code},{','.join(row)}{pad}" for wo, row in mine]
        else:
            lines = [self._line(table, code, header, wo, row) for wo, row in mine]
        self.want.add(self.buckets([wo for wo, _ in mine]), code, lines)

    @staticmethod
    def _line(table: str, code: str, header: list[str], wo: str, row: list[str]) -> str:
        enc = wi.encode(wo, table, dict(zip(header, row, strict=True)))
        return _render([wo, code, *(enc[c] for c in wi.VALUE_COLUMNS)])

    def log_rows(self, header: list[str], rows: list[list[str]]) -> None:
        """Work orders whose latest log row is RUNNING (``wi.open_after``, streamed)."""
        t, w, s = (header.index(c) for c in ("tenant_id", "work_order_id", "status"))
        at = [header.index(c) for c in wi.OPEN_COLUMNS]
        cur = self._open
        for r in rows:
            if r[s] == "RUNNING":
                cur[(r[t], r[w])] = {c: r[j] for c, j in zip(wi.OPEN_COLUMNS, at, strict=True)}
            else:
                cur.pop((r[t], r[w]), None)

    def topup_references(self, part: _Read) -> None:
        """(tenant, reference) -> transaction id as stored (the last row wins)."""
        if part.rows is None:
            found = _REFERENCE.findall(part.body)
        else:
            at = [part.header.index(c) for c in ("tenant_id", "reference", "transaction_id")]
            found = [(r[at[0]], r[at[1]], r[at[2]]) for r in part.rows]
        if found:
            tenants, refs, txs = zip(*found, strict=True)
            self.topup_refs.update(zip(zip(tenants, refs, strict=True), txs, strict=True))

    def open_work_orders(self) -> list[dict[str, str]]:
        return [self._open[k] for k in sorted(self._open)]

    def index_rows(self, group: str, part: _Read) -> None:
        """Stored index rows of one partition, into the stored digests."""
        if tuple(part.header) != wi.WORKORDER_INDEX_COLUMNS:
            self.exact = False
            return
        if part.rows is None:  # plain text: each line is its row's canonical text
            found = _INDEX_LINE.findall(part.body)
        else:
            found = [(_render(row), row[1]) for row in part.rows]
        for source, run in groupby(sorted(found, key=_SECOND), key=_SECOND):
            lines = list(map(_FIRST, run))
            self.have.add([group] * len(lines), source, lines)


class _Read(NamedTuple):
    """One partition as read: its text, header, and rows (None: a plain derived table
    whose rows are taken from ``body`` by regular expression, see ``_lean``)."""

    text: str
    header: list[str]
    rows: list[list[str]] | None
    body: str = ""


# Derived tables read without splitting every row: in plain text (no quote, CR or NUL)
# where every line has exactly the header's number of cells, lines are rows.
_LEAN = {wi.WORKORDER_INDEX: wi.WORKORDER_INDEX_COLUMNS, TOPUP_REFERENCES: TOPUP_REFERENCE_COLUMNS}
_SHAPE = {
    n: re.compile(rf"(?:[^,\n]*(?:,[^,\n]*){{{n - 1}}}\n)*")
    for n in {len(c) for c in _LEAN.values()}
}
_INDEX_LINE = re.compile(r"^([^,\n]*,([^,\n]*),[^\n]*)$", re.MULTILINE)
_REFERENCE = re.compile(r"^([^,\n]*),([^,\n]*),([^,\n]*),", re.MULTILINE)


def _lean(table: str, text: str) -> _Read | None:
    cols = _LEAN.get(table)
    if cols is None or any(c in text for c in ('"', "\r", "\0")):
        return None
    end = text.find("\n")
    header = text[:end].split(",")
    body = text[end + 1 :]
    if end < 0 or tuple(header) != cols or not _SHAPE[len(cols)].fullmatch(body):
        return None
    return _Read(text, header, None, body)


@dataclass
class _Integrity:
    problems: list[tuple[str, int, Violation]] = field(default_factory=list)

    def add(self, table: str, pos: int, message: str, check: str = "manifest") -> None:
        self.problems.append((table, pos, Violation(check, message)))

    def sorted(self) -> list[Violation]:
        return [v for _, _, v in sorted(self.problems, key=lambda p: (p[0], p[1]))]


def _partitions(state: BillingState, table: str) -> list[tuple[int, PartitionRef]]:
    """(position in the manifest, partition) in key order (the table's row order)."""
    ref = state.manifest.tables[table]
    return sorted(enumerate(ref.partitions), key=lambda p: p[1].key)


def _read(
    state: BillingState, table: str, pos: int, p: PartitionRef, bad: _Integrity
) -> _Read | None:
    """One partition checked against the manifest and parsed, or None (reported)."""
    try:
        data = state.asset_bytes(p.asset)
    except NotFound:
        bad.add(table, pos, f"{table}: asset {p.asset} is missing")
        return None
    if sha256_bytes(data) != p.sha256:
        bad.add(table, pos, f"{table}: asset {p.asset} sha256 differs from state_manifest.json")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    part = _lean(table, text)
    try:
        if part is None:
            header, rows = parse_rows(data, f"{state.where}{p.asset}", columns_of(table))
            part = _Read(text, header, rows)
    except SpecError as exc:
        bad.add(table, pos, str(exc), check="table")
        return None
    n = part.body.count("\n") if part.rows is None else len(part.rows)
    if n != p.rows:
        bad.add(table, pos, f"{table}: asset {p.asset} has {n} rows, manifest says {p.rows}")
        return None
    return part


def _feeder(audit: Audit, table: str) -> Callable[[Sequence[Sequence[str]]], None] | None:
    return {
        bt.TRANSACTIONS: audit.add_transactions,
        bt.MODULE_RUNS_LOG: audit.add_module_runs,
        bt.TRANSACTION_ITEMS: audit.add_items,
        bt.PROMOTION_REDEMPTIONS: audit.add_redemptions,
    }.get(table)


def _feed(audit: Audit, derived: _Derived, table: str, group: str, part: _Read) -> None:
    if table == wi.WORKORDER_INDEX:
        derived.index_rows(group, part)
        return
    if table == TOPUP_REFERENCES:
        derived.topup_references(part)
        return
    header, rows = part.header, part.rows or []
    feed = _feeder(audit, table)
    if feed is not None and rows:
        pick = itemgetter(*(header.index(c) for c in _FED[table]))
        feed(list(map(pick, rows)))
    if table in wi.INDEXED:
        plain = not any(c in part.text for c in ('"', "\\", "\r", "\0"))
        derived.source_rows(table, header, rows, plain)
    if table == bt.WORKORDERS_LOG:
        derived.log_rows(header, rows)
    elif table == bt.PROMOTION_REDEMPTIONS:
        derived.redemptions += [dict(zip(header, r, strict=True)) for r in rows]


# The two halves run in two processes on a large local store: the ledger checks over
# the ledger tables, and everything else (the log and plans' index rows, the stored
# index, top-up references, every other table's integrity). Neither needs the other's
# state until the end.
LEDGER_TABLES = (
    bt.TRANSACTIONS,
    bt.MODULE_RUNS_LOG,
    bt.TRANSACTION_ITEMS,
    bt.PROMOTION_REDEMPTIONS,
)
PARALLEL_BYTES = 8 << 20  # below this, a second process costs more than it saves


@dataclass
class _Part:
    """What one half found (picklable: the other half sends it through a pipe)."""

    problems: list[tuple[str, int, Violation]]
    want: dict[tuple[str, str], str]
    have: dict[tuple[str, str], str]
    exact: bool
    open: list[dict[str, str]]
    topup_refs: dict[tuple[str, str], str]  # left empty when sent: the digest stands for it
    topup_digest: str
    redemptions: list[dict[str, str]]


def _run_part(state: BillingState, audit: Audit, tables: Sequence[str]) -> _Part:
    derived = _Derived(audit)
    bad = _Integrity()
    for table in tables:
        for pos, p in _partitions(state, table):
            part = _read(state, table, pos, p, bad)
            if part is not None and not bad.problems:
                _feed(audit, derived, table, p.group, part)
    return _Part(
        bad.problems,
        derived.want.result(),
        derived.have.result(),
        derived.exact,
        derived.open_work_orders(),
        derived.topup_refs,
        _digest(derived.topup_refs),
        derived.redemptions,
    )


def _digest(refs: dict[tuple[str, str], str]) -> str:
    """sha256 of (tenant, reference, transaction) triples in order: equal maps, equal digests."""
    triples = sorted([t, r, x] for (t, r), x in refs.items())
    return hashlib.sha256(json.dumps(triples).encode()).hexdigest()


def _child(conn: Connection, state: BillingState, tables: Sequence[str]) -> None:
    try:
        part = _run_part(state, Audit(), tables)
        part.topup_refs = {}  # the parent re-reads them only if the digests differ
        conn.send(part)
    except BaseException:  # the parent does this half itself
        conn.send(None)
    finally:
        conn.close()


def _other_half(state: BillingState, tables: Sequence[str], parallel: bool) -> Callable[[], _Part]:
    """Start the non-ledger half in a forked process (when it pays); returns its result."""
    size = sum(p.bytes for name in tables for p in state.manifest.tables[name].partitions)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    # a fork copies only this thread: with others running, a lock they hold stays held
    if not parallel or size < PARALLEL_BYTES or cores < 2 or threading.active_count() > 1:
        return lambda: _run_part(state, Audit(), tables)
    import multiprocessing  # only a large local audit forks (start-up stays lean)

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, state, tables), daemon=True)
    proc.start()
    send.close()

    def result() -> _Part:
        try:
            found = recv.recv()
        except EOFError:
            found = None
        proc.join()
        return found if found is not None else _run_part(state, Audit(), tables)

    return result


def audit_state(state: BillingState, *, parallel: bool = False) -> list[Violation]:
    """Integrity of every stored asset against the manifest, then every ledger and
    derived-table invariant: what ``state.verify_all() + state.verify_derived()`` give
    after the integrity pass, reading each partition once. ``parallel``: the store is
    local files, so a forked process may read them too."""
    # millions of small containers, none of them cyclic: the cyclic collector would
    # walk all of them again and again (superlinear); it is back on when this returns
    was_on = gc.isenabled()
    gc.disable()
    try:
        return _audit(state, parallel)
    finally:
        if was_on:
            gc.enable()


def _audit(state: BillingState, parallel: bool) -> list[Violation]:
    tables = state.manifest.tables
    mine = [t for t in LEDGER_TABLES if t in tables]
    others = [t for t in FEED_ORDER if t in tables and t not in LEDGER_TABLES]
    others += sorted(set(tables) - set(FEED_ORDER))
    other = _other_half(state, others, parallel)
    audit = Audit(refundable=state.refundable)
    a = _run_part(state, audit, mine)
    b = other()
    if a.problems or b.problems:
        return _Integrity(a.problems + b.problems).sorted()
    opened = (
        state.open_work_orders() if wi.OPEN_WORK_ORDERS in tables else b.open
    )  # a store from before the table: the log gives it
    out = audit.finish(
        state.rows(bt.TENANTS_CREDITS), opened, clock.now_iso(), state.unsettled_alert_hours
    )
    same_index = a.exact and b.exact and {**a.want, **b.want} == b.have
    if state.index_ready and not same_index:
        return out + state.verify_derived()  # the exact comparison names what differs
    out += state.promo_usage_violations(a.redemptions)
    out += state.open_violations(b.open)
    if TOPUP_REFERENCES in tables:
        want = audit.topup_references()
        if _digest(want) != b.topup_digest:
            have = b.topup_refs or _run_part(state, Audit(), [TOPUP_REFERENCES]).topup_refs
            out += _topup_references(state, want, have)
    return out


def _topup_references(
    state: BillingState, want: dict[tuple[str, str], str], have: dict[tuple[str, str], str]
) -> list[Violation]:
    """Only the keys that differ go to the (set-building) comparison that words them."""
    differ = [k for k, tx in have.items() if want.get(k) != tx]
    differ += [k for k in want if k not in have]
    pick = set(differ)
    return state.topup_reference_violations(
        {k: v for k, v in want.items() if k in pick}, {k: v for k, v in have.items() if k in pick}
    )
