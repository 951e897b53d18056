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
from typing import NamedTuple

from workmill.ledger.records import TxType
from workmill.orchestrator.statuses import ModuleStatus, WorkOrderStatus

TX_COLUMNS = (
    "transaction_id",
    "tenant_id",
    "work_order_id",
    "type",
    "amount_credits",
    "balance_after",
    "created_at",
    "reference",
    "topup_method_id",
    "note",
)
LOG_COLUMNS = (
    "work_order_id",
    "tenant_id",
    "status",
    "mode",
    "reason_code",
    "spend_credits",
    "refund_credits",
    "started_at",
    "finished_at",
)
RUN_COLUMNS = (
    "module_run_id",
    "work_order_id",
    "tenant_id",
    "module_id",
    "module_version",
    "status",
    "reason_code",
    "reuse_output_type",
    "cache_hit",
    "artifacts_published",
    "started_at",
    "finished_at",
    "duration_ms",
)
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


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


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

    SPEND amounts are negative in the ledger; the console shows credits spent as
    a positive figure.
    """
    out = LedgerFold(recent=deque(maxlen=max(window, 0)))
    months, tenants, recent = out.months, out.tenants, out.recent
    n = 0
    for c in cells:
        n += 1
        amount = _int(c[4])
        kind = c[3]
        month = months.get(c[6][:7])
        if month is None:
            month = months[c[6][:7]] = MonthTotals()
        t = tenants.get(c[1])
        if t is None:
            t = tenants[c[1]] = TenantTotals()
        t.transactions += 1
        if kind == TxType.SPEND:
            month.spent -= amount
            t.spent -= amount
        elif kind == TxType.REFUND:
            month.refunded += amount
            t.refunded += amount
        elif kind == TxType.TOPUP:
            month.topup += amount
            t.topup += amount
        else:
            month.adjusted += amount
        if window:
            recent.append(c)  # type: ignore[arg-type]
    out.total = n
    out.recent = deque((_tx(c) for c in recent), maxlen=recent.maxlen)
    return out


def _tx(c) -> Tx:
    return Tx(c[0], c[1], c[2], c[3], _int(c[4]), _int(c[5]), c[6], c[7], c[8], c[9])


def latest_log_rows(cells: Iterable[tuple[str, ...]]) -> dict[str, LogRow]:
    """The last log row of each work order, ordered by when that row was written (oldest first)."""
    out: dict[str, LogRow] = {}
    for c in cells:
        out.pop(c[0], None)
        out[c[0]] = LogRow(*c)
    return out


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
    """Per-module statistics over every run; the runs of the work orders in ``keep``."""
    out = RunFold()
    for c in cells:
        out.total += 1
        s = out.modules.get(c[3])
        if s is None:
            s = out.modules[c[3]] = ModuleStats()
        s.runs += 1
        s.versions.add(c[4])
        status = c[5]
        if status == ModuleStatus.SKIPPED:
            s.skipped += 1
        else:
            s.durations.append(_int(c[12]))
            if c[7] in CACHE_LOOKUP_REUSE:
                s.cache_lookups += 1
                s.cache_hits += c[8] == "true"
        if status == ModuleStatus.FAILED:
            s.failed += 1
        elif status == ModuleStatus.COMPLETED_WITH_EXCEPTION:
            s.with_exception += 1
        if c[6]:
            out.reasons[c[6]] += 1
        if c[1] in keep:
            out.by_work_order.setdefault(c[1], []).append(RunRow(*c))
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
            timed.append((r, start, max(_int(r.duration_ms), 0)))
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
