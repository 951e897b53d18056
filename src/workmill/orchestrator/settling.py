"""Settle: REFUND, logs, cache index and release maps for finished work orders, one commit.

Idempotent: the mutation skips a work order that already has its terminal
log row (another process settled it), and the state refuses a second REFUND.
A module with no outcome (execute never reached it) is settled as SKIPPED
``INTERRUPTED`` — refundable by default — so no charge is ever left without
its refund. What is settled is the plan recorded with the SPEND (never a plan
file's copy), and each work order is settled inside ``BillingState.atomic``: a
corrupt record leaves that one work order RUNNING (reported as UNSETTLED) and
the others are settled in the same commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import WorkmillError, one_line
from workmill.ledger import RefundLine
from workmill.orchestrator.context import RunContext
from workmill.orchestrator.records import ModuleOutcome, WorkOrderPlan
from workmill.orchestrator.statuses import TERMINAL, ModuleStatus, work_order_status
from workmill.state import BillingState
from workmill.tables import header_with_extras

UNSETTLED = "UNSETTLED"  # charged, not settled by this run (results missing or record corrupt)


@dataclass
class Settled:
    tenant_id: str
    work_order_id: str
    status: str
    reason_code: str
    spend_credits: int
    refund_credits: int
    refund_transaction_id: str
    refund_note: str
    started_at: str
    finished_at: str
    modules: list[ModuleOutcome]
    skipped: bool = False  # already settled elsewhere
    note: str = ""  # e.g. the work order's file was edited or deleted since its SPEND

    @property
    def duration_ms(self) -> int:
        """Time spent in this work order's modules (the log's timestamps are whole seconds,
        and a work order waits for others' modules in a shared pool)."""
        return sum(m.duration_ms for m in self.modules)


def complete_outcomes(
    ctx: RunContext, wo: WorkOrderPlan, outcomes: dict[str, ModuleOutcome]
) -> list[ModuleOutcome]:
    """One outcome per planned module, in listed order (missing ones: SKIPPED INTERRUPTED)."""
    out = []
    now = clock.now_iso()
    for m in wo.modules:
        rec = outcomes.get(m.module_id)
        if rec is None:
            rec = ModuleOutcome(
                module_id=m.module_id,
                module_run_id=m.module_run_id,
                module_version=m.module_version,
                status=ModuleStatus.SKIPPED.value,
                reason_code=ctx.code("INTERRUPTED"),
                message="not executed before settle",
                reuse_output_type=m.reuse_output_type,
                started_at=now,
                finished_at=now,
            )
        out.append(rec)
    return out


def _settle_one(
    ctx: RunContext, state: BillingState, wo: WorkOrderPlan, mods: list[ModuleOutcome], now: str
) -> Settled:
    statuses = [ModuleStatus(m.status) for m in mods]
    status = work_order_status(wo.mode, statuses)
    failing = [m for m in mods if not ModuleStatus(m.status).succeeded]
    reason = failing[0].reason_code if failing and status.value != "COMPLETED" else ""
    refunded = {
        m.module_id: RefundLine(m.status, m.reason_code, m.module_run_id)
        for m in failing
        if m.reason_code and ctx.refundable(m.reason_code)
    }
    posting = state.refund(wo.work_order_id, refunded)
    tx = posting.transaction
    finished = max((m.finished_at for m in mods), default=now)
    state.append(
        bt.WORKORDERS_LOG,
        [
            {
                "work_order_id": wo.work_order_id,
                "tenant_id": wo.tenant_id,
                "status": status.value,
                "mode": wo.mode,
                "reason_code": reason,
                "spend_transaction_id": wo.spend_transaction_id,
                "refund_transaction_id": tx.transaction_id,
                "spend_credits": wo.spend_credits,
                "refund_credits": tx.amount_credits,
                "started_at": wo.started_at,
                "finished_at": finished,
            }
        ],
    )
    state.append(
        bt.MODULE_RUNS_LOG,
        [
            {
                "module_run_id": m.module_run_id,
                "work_order_id": wo.work_order_id,
                "tenant_id": wo.tenant_id,
                "module_id": m.module_id,
                "module_version": m.module_version,
                "status": m.status,
                "reason_code": m.reason_code,
                "reuse_output_type": m.reuse_output_type,
                "cache_hit": m.cache_hit,
                "artifacts_published": bool(m.published),
                "started_at": m.started_at,
                "finished_at": m.finished_at,
                "duration_ms": m.duration_ms,
                "outputs_sha256": m.outputs_sha256,
                "module_digest": m.module_digest,
            }
            for m in mods
        ],
    )
    published = [(m, p) for m in mods for p in m.published]
    if published:
        release_id = state.new_id(ids.IdKind.RELEASE)
        # the store's own ids (GitHub's numeric ids; "" locally): docs/reference.md "GitHub mode"
        remote_release, remote_assets = ctx.releases.remote_ids(
            f"wo-{wo.tenant_id}-{wo.work_order_id}", [p.filename for _, p in published]
        )
        state.append(
            bt.RELEASES_MAP,
            [
                {
                    "release_id": release_id,
                    "tag": f"wo-{wo.tenant_id}-{wo.work_order_id}",
                    "github_release_id": remote_release,
                    "tenant_id": wo.tenant_id,
                    "work_order_id": wo.work_order_id,
                    "created_at": wo.started_at,
                }
            ],
        )
        state.append(
            bt.ASSETS_MAP,
            [
                {
                    "asset_id": p.asset_id,
                    "release_id": release_id,
                    "asset_name": p.filename,
                    "github_asset_id": remote_assets.get(p.filename, ""),
                    "sha256": p.sha256,
                    "size_bytes": p.size_bytes,
                }
                for _, p in published
            ],
        )
    return Settled(
        tenant_id=wo.tenant_id,
        work_order_id=wo.work_order_id,
        status=status.value,
        reason_code=reason,
        spend_credits=wo.spend_credits,
        refund_credits=tx.amount_credits,
        refund_transaction_id=tx.transaction_id,
        refund_note=tx.note,
        started_at=wo.started_at,
        finished_at=finished,
        modules=mods,
        note=wo.note,
    )


def _cache_rows(state: BillingState, mods: list[ModuleOutcome], tenant_id: str) -> None:
    from workmill.cache import index as cache_index  # here: most settles touch no cache row

    rows = state.rows(bt.CACHE_INDEX)
    changed = False
    for m in mods:
        if m.cache_hit and m.cache_key:
            rows = cache_index.record_hit(rows, m.cache_key, m.finished_at)
            changed = True
        elif m.cache_key and m.cache_created_at:
            rows = cache_index.record_save(
                rows,
                cache_key=m.cache_key,
                tenant_id=tenant_id,
                module_id=m.module_id,
                module_version=m.module_version,
                created_at=m.cache_created_at,
                expires_at=m.cache_expires_at,
                retention_days=m.cache_retention_days,
                size_bytes=m.cache_saved_bytes,
            )
            changed = True
    if changed:
        state.set_rows(bt.CACHE_INDEX, rows, header_with_extras(state.header(bt.CACHE_INDEX), rows))


def paid_plan(state: BillingState, wo: WorkOrderPlan) -> WorkOrderPlan:
    """The plan recorded with the work order's SPEND (``wo`` itself for a SPEND from
    before plans were recorded): a plan file edited in between changes nothing."""
    rec = state.recorded_plan(wo.tenant_id, wo.work_order_id)
    if rec is None:
        return wo
    recorded = WorkOrderPlan.model_validate_json(rec["plan"])
    return recorded.model_copy(update={"note": wo.note})


def _already_settled(row: dict[str, str], wo: WorkOrderPlan, mods: list[ModuleOutcome]) -> Settled:
    return Settled(
        wo.tenant_id,
        wo.work_order_id,
        row["status"],
        row.get("reason_code", ""),
        int(row.get("spend_credits") or 0),
        int(row.get("refund_credits") or 0),
        row.get("refund_transaction_id", ""),
        "",
        row.get("started_at", ""),
        row.get("finished_at", ""),
        mods,
        skipped=True,
    )


def _unsettled(wo: WorkOrderPlan, exc: Exception) -> Settled:
    return Settled(
        wo.tenant_id,
        wo.work_order_id,
        UNSETTLED,
        "",
        wo.spend_credits,
        0,
        "",
        f"cannot settle: {one_line(str(exc))}; its SPEND stands and it stays RUNNING until "
        "an operator repairs its billing record",
        wo.started_at,
        "",
        [],
    )


def settle(
    ctx: RunContext,
    work_orders: list[WorkOrderPlan],
    outcomes: dict[tuple[str, str], dict[str, ModuleOutcome]],
) -> list[Settled]:
    """Settle every given work order in one commit; returns what was settled (or skipped)."""
    if not work_orders:
        return []

    def settle_one(state: BillingState, given: WorkOrderPlan, now: str) -> Settled:
        wo = paid_plan(state, given)
        runs = {m.module_id: m.module_run_id for m in wo.modules}
        known = {
            mid: rec
            for mid, rec in outcomes.get(wo.key, {}).items()
            if runs.get(mid) == rec.module_run_id
        }
        mods = complete_outcomes(ctx, wo, known)
        row = state.work_order_status(wo.tenant_id, wo.work_order_id)
        if row is not None and row.get("status") in TERMINAL:
            return _already_settled(row, wo, mods)
        settled = _settle_one(ctx, state, wo, mods, now)
        _cache_rows(state, mods, wo.tenant_id)
        return settled

    def mutate(state: BillingState) -> list[Settled]:
        now = clock.now_iso()
        out = []
        for wo in work_orders:
            try:
                with state.atomic():
                    out.append(settle_one(state, wo, now))
            except (WorkmillError, ValueError, KeyError) as exc:
                out.append(_unsettled(wo, exc))
        return out

    return ctx.store.commit_with_retry(mutate)
