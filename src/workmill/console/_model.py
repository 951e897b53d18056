"""What the console shows, as typed records, and the pure folds that compute it.

Every figure is computed here from table rows (no I/O), so the aggregation
rules — what counts as a failure, a cache lookup, a month — live in one place
and are tested without a browser (docs/reference.md "Operator console").
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple

from workmill import billing_tables as bt
from workmill.errors import StateError
from workmill.ledger.records import TxType
from workmill.orchestrator.statuses import ModuleStatus, WorkOrderStatus

# The columns the console reads, in table order (the record types below follow it).
TX_COLUMNS = tuple(c for c in bt.COLUMNS[bt.TRANSACTIONS] if c != "payment_id")
LOG_COLUMNS = tuple(
    c
    for c in bt.COLUMNS[bt.WORKORDERS_LOG]
    if c not in ("spend_transaction_id", "refund_transaction_id")
)
RUN_COLUMNS = tuple(c for c in bt.COLUMNS[bt.MODULE_RUNS_LOG] if c != "outputs_sha256")
# Module runs that asked the cache before running (a reuse of a release or of
# tenant assets does not, and a skipped module never got that far).
CACHE_LOOKUP_REUSE = frozenset({"new", "cache"})


class Tx(NamedTuple):
    """One ledger transaction as the console shows it (amounts already integers)."""

    transaction_id: str
    tenant_id: str
    work_order_id: str
    type: str
    amount: int
    balance_after: int
    created_at: str
    reference: str
    topup_method_id: str
    note: str


class LogRow(NamedTuple):
    """The latest ``workorders_log`` row of a work order."""

    work_order_id: str
    tenant_id: str
    status: str
    mode: str
    reason_code: str
    spend_credits: str
    refund_credits: str
    started_at: str
    finished_at: str


class RunRow(NamedTuple):
    """One ``module_runs_log`` row."""

    module_run_id: str
    work_order_id: str
    tenant_id: str
    module_id: str
    module_version: str
    status: str
    reason_code: str
    reuse_output_type: str
    cache_hit: str
    artifacts_published: str
    started_at: str
    finished_at: str
    duration_ms: str
    module_digest: str  # the module folder's digest when it ran; "" when reused or not recorded


@dataclass
class MonthTotals:
    topup: int = 0
    spent: int = 0
    refunded: int = 0
    adjusted: int = 0


@dataclass
class TenantTotals:
    topup: int = 0
    spent: int = 0
    refunded: int = 0
    transactions: int = 0


@dataclass
class LedgerFold:
    """Totals over all transactions and the most recent ``window`` of them."""

    months: dict[str, MonthTotals] = field(default_factory=dict)
    tenants: dict[str, TenantTotals] = field(default_factory=dict)
    recent: deque[Tx] = field(default_factory=deque)
    total: int = 0


def fold_ledger(cells: Iterable[tuple[str, ...]], window: int) -> LedgerFold:
    """One pass over the transactions: per-month and per-tenant sums, the recent window.

    The loop only adds into one dict keyed by (month, tenant, type); the
    per-month and per-tenant figures are folded from its few thousand keys.
    SPEND amounts are negative in the ledger; the console shows credits spent as
    a positive figure.
    """
    sums: dict[tuple[str, str, str], int] = {}
    counts: Counter[tuple[str, str, str]] = Counter()
    recent: deque[tuple[str, ...]] = deque(maxlen=max(window, 0))
    n = 0
    try:
        for n, c in enumerate(cells, start=1):  # noqa: B007 - n is the row count
            key = (c[6][:7], c[1], c[3])
            sums[key] = sums.get(key, 0) + int(c[4])
            counts[key] += 1
            recent.append(c)
    except ValueError as exc:
        raise StateError(f"transactions.csv: amount_credits is not an integer ({exc})") from exc
    out = LedgerFold(total=n)
    for (month, tenant, kind), amount in sorted(sums.items()):
        mt = out.months.setdefault(month, MonthTotals())
        tt = out.tenants.setdefault(tenant, TenantTotals())
        tt.transactions += counts[month, tenant, kind]
        _add(mt, tt, kind, amount)
    try:
        out.recent = deque((_tx(c) for c in recent), maxlen=recent.maxlen)
    except ValueError as exc:
        raise StateError(f"transactions.csv: balance_after is not an integer ({exc})") from exc
    return out


def _add(mt: MonthTotals, tt: TenantTotals, kind: str, amount: int) -> None:
    if kind == TxType.SPEND:
        mt.spent -= amount
        tt.spent -= amount
    elif kind == TxType.REFUND:
        mt.refunded += amount
        tt.refunded += amount
    elif kind == TxType.TOPUP:
        mt.topup += amount
        tt.topup += amount
    else:
        mt.adjusted += amount


def _tx(c) -> Tx:
    return Tx(c[0], c[1], c[2], c[3], int(c[4]), int(c[5] or 0), c[6], c[7], c[8], c[9])


def latest_log_rows(cells: Iterable[tuple[str, ...]]) -> dict[str, LogRow]:
    """The last log row of each work order, ordered by when that row was written (oldest first)."""
    newest_first: dict[str, tuple[str, ...]] = {}
    keep = newest_first.setdefault
    for c in reversed(list(cells)):
        keep(c[0], c)
    return {wo: LogRow._make(newest_first[wo]) for wo in reversed(newest_first)}


@dataclass
class ModuleStats:
    runs: int = 0
    failed: int = 0
    skipped: int = 0
    with_exception: int = 0
    cache_lookups: int = 0
    cache_hits: int = 0
    durations: list[int] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)
    digests: Counter[str] = field(default_factory=Counter)  # runs per digest that ran

    def off_pin(self, pin: str) -> int:
        """Runs whose recorded digest is not ``pin`` (none when nothing is pinned)."""
        return sum(n for d, n in self.digests.items() if pin and d != pin)

    @property
    def failure_rate(self) -> float:
        """Failed runs over runs that ran (skipped ones never started)."""
        ran = self.runs - self.skipped
        return self.failed / ran if ran else 0.0

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.durations) if self.durations else None


@dataclass
class RunFold:
    modules: dict[str, ModuleStats] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    by_work_order: dict[str, list[RunRow]] = field(default_factory=dict)
    total: int = 0

    @property
    def cache_lookups(self) -> int:
        return sum(m.cache_lookups for m in self.modules.values())

    @property
    def cache_hits(self) -> int:
        return sum(m.cache_hits for m in self.modules.values())


def fold_runs(cells: Iterable[tuple[str, ...]], keep: set[str]) -> RunFold:
    """Per-module statistics over every run; the runs of the work orders in ``keep``.

    Counting is done by ``Counter`` over column tuples (a C loop); the statistics
    are folded from the few (module, version, status, reuse, hit, digest) keys
    afterwards.
    """
    rows = list(cells)
    out = RunFold(total=len(rows))
    out.reasons.update(filter(None, map(itemgetter(6), rows)))
    raw: dict[str, list[str]] = {}
    for c in rows:
        if c[5] != ModuleStatus.SKIPPED:
            raw.setdefault(c[3], []).append(c[12] or "0")
    for (module, version, status, reuse, hit, digest), n in Counter(
        map(itemgetter(3, 4, 5, 7, 8, 13), rows)
    ).items():
        s = out.modules.setdefault(module, ModuleStats())
        s.runs += n
        s.versions.add(version)
        if digest:
            s.digests[digest] += n
        s.skipped += n if status == ModuleStatus.SKIPPED else 0
        s.failed += n if status == ModuleStatus.FAILED else 0
        s.with_exception += n if status == ModuleStatus.COMPLETED_WITH_EXCEPTION else 0
        if status != ModuleStatus.SKIPPED and reuse in CACHE_LOOKUP_REUSE:
            s.cache_lookups += n
            s.cache_hits += n if hit == "true" else 0
    try:
        for module, values in raw.items():
            out.modules[module].durations = list(map(int, values))
    except ValueError as exc:
        raise StateError(f"module_runs_log.csv: duration_ms is not an integer ({exc})") from exc
    for c in [c for c in rows if c[1] in keep]:
        out.by_work_order.setdefault(c[1], []).append(RunRow._make(c))
    return out


def status_counts(log: Iterable[LogRow]) -> Counter[str]:
    return Counter(r.status for r in log)


def work_order_reasons(log: Iterable[LogRow]) -> Counter[str]:
    """Reason codes of work orders that did not simply complete."""
    return Counter(
        r.reason_code for r in log if r.reason_code and r.status != WorkOrderStatus.COMPLETED
    )


@dataclass(frozen=True)
class GanttBar:
    label: str
    status: str
    x: float  # fraction of the time span, 0..1
    width: float
    title: str


def gantt_bars(runs: list[RunRow], names: dict[str, str]) -> tuple[list[GanttBar], int]:
    """Bars of a module timeline and its span in ms.

    A run starts at ``started_at`` (recorded to the second) and lasts
    ``duration_ms``; runs without a start time are left out.
    """
    from workmill.clock import parse_iso
    from workmill.errors import UsageError

    timed: list[tuple[RunRow, float, int]] = []
    for r in runs:
        try:
            start = parse_iso(r.started_at).timestamp() * 1000 if r.started_at else None
        except UsageError:
            start = None
        if start is not None:
            ms = r.duration_ms
            timed.append((r, start, max(int(ms), 0) if ms.isdigit() else 0))
    if not timed:
        return [], 0
    t0 = min(s for _, s, _ in timed)
    span = max(max(s + d for _, s, d in timed) - t0, 1)
    bars = [
        GanttBar(
            label=f"{r.module_id} {names.get(r.module_id, '')}".strip(),
            status=r.status,
            x=(s - t0) / span,
            width=d / span,
            title=f"module {r.module_id}: {r.status}, {d} ms",
        )
        for r, s, d in timed
    ]
    return bars, int(span)
