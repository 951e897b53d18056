"""The orchestrator (docs/reference.md "Statuses", "Billing rules"): plan → execute → settle.

Library use::

    ctx = RunContext(PlatformRepo.open("."), RunOptions(max_parallel=2))
    result = run(ctx)            # or plan(ctx) / execute(ctx, plan) / settle_plan(ctx, plan)
    result.summary_rows()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workmill.orchestrator import shard_receipts, sharding
from workmill.orchestrator.context import RunContext, RunOptions
from workmill.orchestrator.executing import execute
from workmill.orchestrator.planning import UNSETTLED, plan
from workmill.orchestrator.records import Decision, ModuleOutcome, Plan, journal_path, read_journal
from workmill.orchestrator.settling import Settled, paid_plan, settle
from workmill.orchestrator.sharding import ShardSpec, shard_plan

__all__ = [
    "Plan",
    "RunContext",
    "RunOptions",
    "RunResult",
    "execute",
    "execute_plan",
    "plan",
    "run",
    "settle",
    "settle_plan",
    "unsettled",
]


@dataclass
class RunResult:
    plan: Plan
    settled: list[Settled] = field(default_factory=list)
    dry_run: bool = False

    @property
    def decisions(self) -> list[Decision]:
        return self.plan.decisions

    def summary_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for d in self.plan.decisions:
            rows.append(
                {
                    "work_order_id": d.work_order_id,
                    "tenant_id": d.tenant_id,
                    "status": d.status,
                    "reason_code": d.reason_code,
                    "reason_name": d.reason_name,
                    "message": d.message,
                    "spend_credits": None,
                    "refund_credits": None,
                    "duration_ms": None,
                    "modules": [],
                }
            )
        if self.dry_run:
            for wo in self.plan.work_orders:
                rows.append(
                    {
                        "work_order_id": wo.work_order_id,
                        "tenant_id": wo.tenant_id,
                        "status": "PLANNED",
                        "reason_code": "",
                        "message": "dry run: would be charged and run",
                        "spend_credits": wo.spend_credits,
                        "refund_credits": None,
                        "duration_ms": None,
                        "modules": [m.module_id for m in wo.modules],
                    }
                )
        for s in self.settled:
            rows.append(
                {
                    "work_order_id": s.work_order_id,
                    "tenant_id": s.tenant_id,
                    "status": s.status,
                    "reason_code": s.reason_code,
                    "reason_name": "",
                    "message": "; ".join(x for x in (s.note, s.refund_note) if x),
                    "spend_credits": s.spend_credits,
                    "refund_credits": s.refund_credits,
                    "duration_ms": s.duration_ms,
                    "modules": [
                        {
                            "module_id": m.module_id,
                            "status": m.status,
                            "reason_code": m.reason_code,
                            "reuse_output_type": m.reuse_output_type,
                            "cache_hit": m.cache_hit,
                            "artifacts": [p.filename for p in m.published],
                            "message": m.message,
                            "started_at": m.started_at,
                            "finished_at": m.finished_at,
                            "duration_ms": m.duration_ms,
                        }
                        for m in s.modules
                    ],
                }
            )
        rows.sort(key=lambda r: (r["work_order_id"], r["tenant_id"]))
        return rows


def _claim_for(ctx: RunContext, p: Plan) -> None:
    """Later phases continue the planning process's leases (same token)."""
    if p.lease_token:
        ctx.leases.token = p.lease_token
    for wo in p.work_orders:
        if not ctx.leases.claim(f"{wo.tenant_id}-{wo.work_order_id}"):
            raise RuntimeError(f"work order {wo.work_order_id} is held by another live process")


def _paid(ctx: RunContext, p: Plan) -> Plan:
    """The plan with each work order as its SPEND recorded it (a plan file passed between
    machines is a copy: what runs is what was paid for)."""
    if not p.work_orders:
        return p
    state = ctx.store.load()
    return p.model_copy(update={"work_orders": [paid_plan(state, wo) for wo in p.work_orders]})


def execute_plan(
    ctx: RunContext, p: Plan, shard: ShardSpec | None = None
) -> dict[tuple[str, str], dict[str, ModuleOutcome]]:
    """Execute the plan, or only shard ``(K, N)`` of it (a receipt tells settle it finished)."""
    p = _paid(ctx, p)
    if shard is None:
        _claim_for(ctx, p)
        return execute(ctx, p)
    mine = shard_plan(p, *shard)
    _claim_for(ctx, mine)
    receipt = shard_receipts.begin(ctx.runtime_dir, p, *shard, mine.work_orders)
    outcomes = execute(ctx, mine)
    if not ctx.cancel.is_set():  # a cancelled shard is finished by executing it again
        shard_receipts.finish(ctx.runtime_dir, receipt)
    return outcomes


def settle_plan(ctx: RunContext, p: Plan, shards: int | None = None) -> RunResult:
    """Settle a plan from the journals the execute phase left in the runtime dir.

    When the plan was executed in ``shards`` shards (given, or read from the
    receipts), work orders of a shard without a finished receipt are not
    settled: they keep their SPEND and come back as ``UNSETTLED`` decisions.
    """
    _claim_for(ctx, p)
    n = shards or shard_receipts.detect_shard_count(ctx.runtime_dir, p)
    held: list[Decision] = []
    if n:
        done = shard_receipts.finished_shards(ctx.runtime_dir, p, n)
        parts = sharding.split(p.work_orders, n)
        held = [
            Decision(
                tenant_id=wo.tenant_id,
                work_order_id=wo.work_order_id,
                status=UNSETTLED,
                message=f"shard {k}/{n} left no finished results: SPEND {wo.spend_credits} "
                f"stands, no REFUND yet; run `workmill execute --shard {k}/{n}` and settle again",
            )
            for k, part in enumerate(parts, start=1)
            if k not in done
            for wo in part
        ]
        waiting = {(d.tenant_id, d.work_order_id) for d in held}
        p = p.model_copy(
            update={
                "work_orders": [wo for wo in p.work_orders if wo.key not in waiting],
                "decisions": p.decisions + held,
            }
        )
    outcomes = {
        wo.key: {
            mid: rec
            for mid, rec in read_journal(
                journal_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id)
            ).items()
            if rec.module_run_id in {m.module_run_id for m in wo.modules}
        }
        for wo in p.work_orders
    }
    try:
        return RunResult(p, settle(ctx, p.work_orders, outcomes))
    finally:
        ctx.leases.release_all()


def run(ctx: RunContext) -> RunResult:
    """Plan, execute and settle every matching work order."""
    p = plan(ctx)
    if ctx.options.dry_run:
        return RunResult(p, dry_run=True)
    try:
        outcomes = execute(ctx, p)
        return RunResult(p, settle(ctx, p.work_orders, outcomes))
    finally:
        ctx.leases.release_all()


def unsettled(result: RunResult) -> list[Decision]:
    """Charged work orders this run had to leave RUNNING: a shard's results are missing,
    or the work order's billing record could not be settled (each with why)."""
    out = [d for d in result.decisions if d.status == UNSETTLED]
    out += [
        Decision(
            tenant_id=s.tenant_id,
            work_order_id=s.work_order_id,
            status=UNSETTLED,
            message=s.refund_note,
        )
        for s in result.settled
        if s.status == UNSETTLED
    ]
    return out


def default_plan_path(ctx: RunContext) -> Path:
    return ctx.runtime_dir / "plan.json"
