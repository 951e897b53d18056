"""Plan: find work orders to process, reject or price and SPEND them, in one commit.

A work order is processed once. Its workorders_log rows tell where it stands:
none → new; last row RUNNING → a run died after its SPEND (resume it, no new
charge); a terminal row → skip. Leases keep two live processes off the same
work order; the SPEND itself is re-checked inside the commit, so a race that
slips past the lease still cannot charge twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import Problem, WorkmillError
from workmill.fsio import atomic_write_text
from workmill.ledger import OrderLine, OrderRejected
from workmill.maintenance import check_fresh
from workmill.orchestrator.context import RunContext
from workmill.orchestrator.gates import first_rejection
from workmill.orchestrator.records import Decision, ModulePlan, Plan, WorkOrderPlan
from workmill.orchestrator.statuses import TERMINAL, WorkOrderStatus
from workmill.specs import WorkOrderSpec
from workmill.state import BillingState
from workmill.validate import validate_work_order

PLAN_FILE = "plan.json"


@dataclass
class Candidate:
    tenant_id: str
    work_order_id: str
    path: Path
    spec: WorkOrderSpec | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.work_order_id)


def discover(ctx: RunContext) -> tuple[list[Candidate], list[Decision]]:
    """Work orders matching the filters, in work-order-id order (then tenant)."""
    repo, opts = ctx.repo, ctx.options
    found: list[Candidate] = []
    notes: list[Decision] = []
    tenants = repo.tenant_ids()
    if opts.tenant_id is not None and opts.tenant_id not in tenants:
        raise WorkmillError(f"--tenant-id {opts.tenant_id}: no such tenant under tenants/")
    for tenant_id in tenants:
        if opts.tenant_id is not None and tenant_id != opts.tenant_id:
            continue
        for path in repo.work_order_files(tenant_id):
            stem = path.name[:-4] if path.name.endswith(".yml") else path.name
            if opts.work_order_id is not None and stem != opts.work_order_id:
                continue
            if not ids.is_valid(ids.IdKind.WORK_ORDER, stem) or not path.name.endswith(".yml"):
                notes.append(
                    Decision(
                        tenant_id=tenant_id,
                        work_order_id=stem[:64],
                        status="INVALID",
                        message=f"{repo.rel(path)}: not <work_order_id>.yml; not processed",
                    )
                )
                continue
            found.append(Candidate(tenant_id, stem, path))
    if opts.work_order_id is not None and not found and not notes:
        raise WorkmillError(f"--work-order-id {opts.work_order_id}: no such work order")
    found.sort(key=lambda c: (c.work_order_id, c.tenant_id))
    return found, notes


def _load(ctx: RunContext, c: Candidate) -> None:
    c.problems = validate_work_order(ctx.repo, c.tenant_id, c.path)
    if not c.problems:
        try:
            c.spec = ctx.repo.work_order(c.tenant_id, c.work_order_id)
        except WorkmillError as exc:
            c.problems = [Problem(ctx.repo.rel(c.path), None, "", str(exc))]


def _rejection_reason(problems: list[Problem]) -> str:
    if problems and all("params" in p.field.split(".") for p in problems):
        return "PARAMS_INVALID"
    return "WORK_ORDER_INVALID"


def module_plans(ctx: RunContext, spec: WorkOrderSpec, new_run_id) -> list[ModulePlan]:
    listed = set(spec.module_ids)
    out = []
    for m in spec.modules:
        module = ctx.repo.module(m.module_id)
        out.append(
            ModulePlan(
                module_id=m.module_id,
                module_run_id=new_run_id(),
                module_version=module.version,
                reuse_output_type=m.reuse_output_type,
                params=dict(m.params),
                purchase_release_artifacts=m.purchase_release_artifacts,
                cache_retention_override=m.cache_retention_override,
                release_tag=m.release_tag,
                assets_folder_name=m.assets_folder_name,
                depends_on=[d for d in module.deps if d in listed],
            )
        )
    return out


def plan_file(ctx: RunContext, tenant_id: str, work_order_id: str) -> Path:
    return ctx.runtime_dir / tenant_id / work_order_id / PLAN_FILE


def _resume_plan(ctx: RunContext, state: BillingState, c: Candidate, row: dict) -> WorkOrderPlan:
    """The plan of a work order a dead run left RUNNING: its plan file, or rebuilt."""
    path = plan_file(ctx, c.tenant_id, c.work_order_id)
    if path.exists():
        try:
            return WorkOrderPlan.model_validate_json(path.read_bytes())
        except ValueError:
            pass
    if c.spec is not None:
        modules = module_plans(ctx, c.spec, lambda: state.new_id(ids.IdKind.MODULE_RUN))
    else:
        # the file no longer loads: settle every charged line as not delivered
        q = state.spend_quote(c.work_order_id)
        modules = [
            ModulePlan(
                module_id=line.module_id,
                module_run_id=state.new_id(ids.IdKind.MODULE_RUN),
                module_version="",
                reuse_output_type="new",
                unrunnable="work order file no longer valid: "
                + "; ".join(str(p) for p in c.problems[:3]),
            )
            for line in (q.lines if q else ())
        ]
    return WorkOrderPlan(
        tenant_id=c.tenant_id,
        work_order_id=c.work_order_id,
        mode=row.get("mode") or "STRICT",  # type: ignore[arg-type]
        spend_transaction_id=row.get("spend_transaction_id", ""),
        spend_credits=int(row.get("spend_credits") or 0),
        started_at=row.get("started_at") or clock.now_iso(),
        modules=modules,
    )


def _processed(c: Candidate, row: dict[str, str] | None) -> Decision | None:
    """A SKIPPED decision when the work order already has a terminal log row."""
    if row is None or row.get("status") not in TERMINAL:
        return None
    return Decision(
        tenant_id=c.tenant_id,
        work_order_id=c.work_order_id,
        status="SKIPPED",
        message=f"already processed ({row.get('status')})",
    )


def _log_row(c: Candidate, status: str, **kw) -> dict[str, object]:
    row: dict[str, object] = {
        "work_order_id": c.work_order_id,
        "tenant_id": c.tenant_id,
        "status": status,
        "mode": c.spec.mode if c.spec else "",
    }
    row.update(kw)
    return row


def _decide(
    ctx: RunContext, state: BillingState, candidates: Iterable[Candidate], now: str
) -> tuple[list[WorkOrderPlan], list[Decision]]:
    """The mutation of the plan commit (re-run from scratch on a conflict)."""
    plans: list[WorkOrderPlan] = []
    decisions: list[Decision] = []
    for c in candidates:
        row = state.work_order_status(c.tenant_id, c.work_order_id)
        if (done := _processed(c, row)) is not None:
            decisions.append(done)
            continue
        if row is not None:  # RUNNING: the run that charged it died; finish it
            plans.append(_resume_plan(ctx, state, c, row))
            continue

        def reject(reason: str, message: str, c: Candidate = c) -> None:
            code = ctx.code(reason)
            state.append(
                bt.WORKORDERS_LOG,
                [_log_row(c, "REJECTED", reason_code=code, started_at=now, finished_at=now)],
            )
            decisions.append(
                Decision(
                    tenant_id=c.tenant_id,
                    work_order_id=c.work_order_id,
                    status="REJECTED",
                    reason_code=code,
                    message=message,
                )
            )

        if c.problems or c.spec is None:
            reason = _rejection_reason(c.problems)
            if reason == "WORK_ORDER_INVALID" and "WORK_ORDER_INVALID" not in {
                r.name for r in ctx.catalog.by_code.values()
            }:
                reason = "PARAMS_INVALID"
            reject(reason, "; ".join(str(p) for p in c.problems[:5]))
            continue
        spec = c.spec
        if (refused := first_rejection(ctx, c.tenant_id, c.work_order_id, spec)) is not None:
            reject(refused.reason, refused.message)
            continue
        lines = [OrderLine(m.module_id, m.purchase_release_artifacts) for m in spec.modules]
        try:
            q = state.quote(c.tenant_id, lines, spec.promo_codes)
            posting = state.spend(q, c.tenant_id, c.work_order_id)
        except OrderRejected as exc:
            reject(exc.reason, str(exc))
            continue
        tx = posting.transaction
        wp = WorkOrderPlan(
            tenant_id=c.tenant_id,
            work_order_id=c.work_order_id,
            mode=spec.mode,
            spend_transaction_id=tx.transaction_id,
            spend_credits=-tx.amount_credits,
            started_at=now,
            modules=module_plans(ctx, spec, lambda: state.new_id(ids.IdKind.MODULE_RUN)),
        )
        state.append(
            bt.WORKORDERS_LOG,
            [
                _log_row(
                    c,
                    WorkOrderStatus.RUNNING.value,
                    spend_transaction_id=tx.transaction_id,
                    spend_credits=wp.spend_credits,
                    started_at=now,
                )
            ],
        )
        plans.append(wp)
    return plans, decisions


def plan(ctx: RunContext) -> Plan:
    """Plan phase: stale-state check, discovery, leases, then one durable commit."""
    check_fresh(ctx.repo)
    now = clock.now_iso()
    candidates, notes = discover(ctx)
    # cheap pre-filter (the commit re-checks): processed work orders need no lease
    seen = ctx.store.load()
    mine: list[Candidate] = []
    for c in candidates:
        done = _processed(c, seen.work_order_status(c.tenant_id, c.work_order_id))
        if done is not None:
            notes.append(done)
            continue
        if ctx.options.dry_run or ctx.leases.claim(f"{c.tenant_id}-{c.work_order_id}"):
            mine.append(c)
        else:
            notes.append(
                Decision(
                    tenant_id=c.tenant_id,
                    work_order_id=c.work_order_id,
                    status="BUSY",
                    message="another workmill process is working on it",
                )
            )
    disabled = []
    for c in mine:
        _load(ctx, c)
        if c.spec is not None and not c.spec.enabled:
            disabled.append(c)
    for c in disabled:
        mine.remove(c)
        ctx.leases.release(f"{c.tenant_id}-{c.work_order_id}")
        notes.append(
            Decision(
                tenant_id=c.tenant_id,
                work_order_id=c.work_order_id,
                status="DISABLED",
                message="enabled: false",
            )
        )
    if ctx.options.dry_run:
        plans, decisions = _decide(ctx, ctx.store.load(), mine, now)
    else:
        plans, decisions = ctx.store.commit_with_retry(lambda s: _decide(ctx, s, mine, now))
        for wp in plans:
            path = plan_file(ctx, wp.tenant_id, wp.work_order_id)
            atomic_write_text(path, wp.model_dump_json(indent=2) + "\n")
        planned = {wp.key for wp in plans}
        for c in mine:
            if c.key not in planned:
                ctx.leases.release(f"{c.tenant_id}-{c.work_order_id}")
    return Plan(
        created_at=now,
        lease_token=ctx.leases.token,
        work_orders=plans,
        decisions=notes + decisions,
    )
