"""Plan: find work orders to process, reject or price and SPEND them, in one commit.

A work order is processed once. Its workorders_log rows tell where it stands:
none → new; last row REJECTED → new again (nothing was charged: a top-up, a
pricing row or a fixed file may let it through now); last row RUNNING → a run
died after its SPEND: finish the plan that SPEND recorded, whatever the file
says now (edited, disabled, deleted); another terminal row → skip.

Every problem of one work order (a reused id, ids differing only in case, a
corrupt record) rejects or fails that work order alone: each one's changes are
made inside ``BillingState.atomic`` so a failure leaves nothing half-written in
the commit the others share (docs/reference.md "Billing rules").

Leases keep two live processes off the same work order; the SPEND itself is
re-checked inside the commit, so a race that slips past the lease still cannot
charge twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import Problem, WorkmillError, one_line
from workmill.ledger import OrderLine, OrderRejected
from workmill.maintenance import check_fresh
from workmill.orchestrator.context import RunContext
from workmill.orchestrator.gates import first_rejection, quote_rejection
from workmill.orchestrator.records import Decision, ModulePlan, Plan, WorkOrderPlan
from workmill.orchestrator.settling import UNSETTLED
from workmill.orchestrator.statuses import TERMINAL, WorkOrderStatus
from workmill.specs import WorkOrderSpec
from workmill.state import BillingState
from workmill.validate import validate_work_order

REJECTED = WorkOrderStatus.REJECTED.value
RUNNING = WorkOrderStatus.RUNNING.value
# terminal rows that end a work order for good (REJECTED charged nothing: planned again)
PROCESSED = TERMINAL - {REJECTED}


@dataclass
class Candidate:
    tenant_id: str
    work_order_id: str
    path: Path
    spec: WorkOrderSpec | None = None
    problems: list[Problem] = field(default_factory=list)
    content_sha256: str = ""  # "" when the file is gone
    clash: str = ""  # another work-order file whose id differs only in case

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.work_order_id)


def _wanted(ctx: RunContext, tenant_id: str, work_order_id: str) -> bool:
    opts = ctx.options
    return (opts.tenant_id is None or tenant_id == opts.tenant_id) and (
        opts.work_order_id is None or work_order_id == opts.work_order_id
    )


def discover(
    ctx: RunContext, open_rows: Iterable[dict[str, str]] = ()
) -> tuple[list[Candidate], list[Decision]]:
    """Work orders matching the filters, in work-order-id order (then tenant).

    ``open_rows`` are charged, unsettled work orders from the billing state: one whose
    file is gone is still a candidate (its recorded plan is finished).
    """
    repo, opts = ctx.repo, ctx.options
    found: list[Candidate] = []
    notes: list[Decision] = []
    tenants = repo.tenant_ids()
    for tenant_id in tenants:
        for path in repo.work_order_files(tenant_id):
            stem = path.name[:-4] if path.name.endswith(".yml") else path.name
            if not _wanted(ctx, tenant_id, stem):
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
    keys = {c.key for c in found}
    for row in open_rows:
        key = (row.get("tenant_id", ""), row.get("work_order_id", ""))
        if key not in keys and _wanted(ctx, *key):
            found.append(Candidate(*key, repo.work_order_path(*key)))
    if opts.tenant_id is not None and opts.tenant_id not in tenants and not found:
        raise WorkmillError(f"--tenant-id {opts.tenant_id}: no such tenant under tenants/")
    if opts.work_order_id is not None and not found and not notes:
        raise WorkmillError(f"--work-order-id {opts.work_order_id}: no such work order")
    found.sort(key=lambda c: (c.work_order_id, c.tenant_id))
    _mark_case_clashes(ctx, found)
    return found, notes


def _mark_case_clashes(ctx: RunContext, found: list[Candidate]) -> None:
    """Ids are unique ignoring case (artifact names are lower-case): files whose ids
    differ only in case are each refused unless already charged."""
    groups: dict[str, list[Candidate]] = {}
    for c in found:
        groups.setdefault(ids.fold(c.work_order_id), []).append(c)
    for group in groups.values():
        ids_ = {c.work_order_id for c in group}
        if len(ids_) < 2:
            continue
        for c in group:
            other = next(o for o in group if o.work_order_id != c.work_order_id)
            c.clash = (
                f"work order id {c.work_order_id} differs only in case from "
                f"{ctx.repo.rel(other.path)}; ids must be unique ignoring case: rename one"
            )


def _load(ctx: RunContext, c: Candidate) -> None:
    if not c.path.is_file():
        c.problems = [Problem(ctx.repo.rel(c.path), None, "", "work order file not found")]
        return
    c.content_sha256 = hashlib.sha256(c.path.read_bytes()).hexdigest()
    c.problems = validate_work_order(ctx.repo, c.tenant_id, c.path)
    if not c.problems:
        try:
            c.spec = ctx.repo.work_order(c.tenant_id, c.work_order_id)
        except WorkmillError as exc:
            c.problems = [Problem(ctx.repo.rel(c.path), None, "", str(exc))]


def _rejection_reason(ctx: RunContext, problems: list[Problem]) -> str:
    if problems and all("params" in p.field.split(".") for p in problems):
        return "PARAMS_INVALID"
    if "WORK_ORDER_INVALID" in {r.name for r in ctx.catalog.by_code.values()}:
        return "WORK_ORDER_INVALID"
    return "PARAMS_INVALID"  # a catalog from before WORK_ORDER_INVALID


def module_plans(
    ctx: RunContext, spec: WorkOrderSpec, new_run_id: Callable[[], str]
) -> list[ModulePlan]:
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
                module_digest=ctx.module_digest(m.module_id),
            )
        )
    return out


# ------------------------------------------------------------------ resuming
def _file_note(c: Candidate, recorded_sha256: str) -> str:
    """How the work-order file differs from what was charged (for the summary)."""
    if not c.path.is_file():
        return "work order file deleted since it was charged; finishing the paid plan"
    if c.spec is not None and not c.spec.enabled:
        return "work order disabled since it was charged; finishing the paid plan"
    if recorded_sha256 and c.content_sha256 and c.content_sha256 != recorded_sha256:
        return "work order file edited since it was charged; finishing the paid plan"
    return ""


def _unrunnable_plan(
    state: BillingState, c: Candidate, row: dict[str, str], why: str
) -> WorkOrderPlan:
    """Every charged line as a module that cannot run (settled per its reason's policy)."""
    q = state.spend_quote(c.work_order_id)
    if q is None:
        raise WorkmillError(f"work order {c.work_order_id} is RUNNING but has no SPEND")
    modules = [
        ModulePlan(
            module_id=line.module_id,
            module_run_id=state.new_id(ids.IdKind.MODULE_RUN),
            module_version="",
            reuse_output_type="new",
            unrunnable=why,
        )
        for line in q.lines
    ]
    return _plan_from_row(c, row, modules)


def _plan_from_row(c: Candidate, row: dict[str, str], modules: list[ModulePlan]) -> WorkOrderPlan:
    mode = row.get("mode") or "STRICT"
    return WorkOrderPlan(
        tenant_id=c.tenant_id,
        work_order_id=c.work_order_id,
        mode=mode if mode in ("STRICT", "PARTIAL_ALLOWED") else "STRICT",  # type: ignore[arg-type]
        spend_transaction_id=row.get("spend_transaction_id", ""),
        spend_credits=int(row.get("spend_credits") or 0),
        started_at=row.get("started_at") or clock.now_iso(),
        modules=modules,
    )


def _legacy_plan(
    ctx: RunContext, state: BillingState, c: Candidate, row: dict[str, str]
) -> WorkOrderPlan:
    """A SPEND from before plans were recorded: its quote's modules, params from the file
    where it still lists them (a module no longer listed cannot run: settled per policy)."""
    q = state.spend_quote(c.work_order_id)
    if q is None:
        raise WorkmillError(f"work order {c.work_order_id} is RUNNING but has no SPEND")
    paid = [line.module_id for line in q.lines]
    current = {m.module_id: m for m in module_plans(ctx, c.spec, lambda: "")} if c.spec else {}
    modules = []
    for mid in paid:
        mp = current.get(mid)
        new_id = state.new_id(ids.IdKind.MODULE_RUN)
        if mp is None:
            modules.append(
                ModulePlan(
                    module_id=mid,
                    module_run_id=new_id,
                    module_version="",
                    reuse_output_type="new",
                    unrunnable="charged module no longer in the work order file",
                )
            )
        else:
            deps = [d for d in mp.depends_on if d in paid]
            modules.append(mp.model_copy(update={"module_run_id": new_id, "depends_on": deps}))
    return _plan_from_row(c, row, modules)


def resume_plan(
    ctx: RunContext, state: BillingState, c: Candidate, row: dict[str, str]
) -> WorkOrderPlan:
    """The plan a dead run's SPEND paid for, as recorded with it in the billing state."""
    rec = state.recorded_plan(c.tenant_id, c.work_order_id)
    if rec is None:
        wp = _legacy_plan(ctx, state, c, row)
    else:
        try:
            if hashlib.sha256(rec["plan"].encode()).hexdigest() != rec.get("plan_sha256"):
                raise ValueError("plan_sha256 does not match")
            wp = WorkOrderPlan.model_validate_json(rec["plan"])
            if wp.key != c.key or wp.spend_transaction_id != row.get("spend_transaction_id"):
                raise ValueError("it belongs to another work order or SPEND")
        except ValueError as exc:
            why = f"recorded plan unreadable ({one_line(str(exc))[:200]})"
            wp = _unrunnable_plan(state, c, row, why)
    return wp.model_copy(update={"note": _file_note(c, wp.content_sha256)})


# ------------------------------------------------------------------ deciding
def _processed(c: Candidate, row: dict[str, str] | None) -> Decision | None:
    """A SKIPPED decision when the work order is finished for good (not REJECTED)."""
    if row is None or row.get("status") not in PROCESSED:
        return None
    return Decision(
        tenant_id=c.tenant_id,
        work_order_id=c.work_order_id,
        status="SKIPPED",
        reason_code=row.get("reason_code", ""),
        message=f"already processed ({row.get('status')})",
    )


def _log_row(c: Candidate, status: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {
        "work_order_id": c.work_order_id,
        "tenant_id": c.tenant_id,
        "status": status,
        "mode": c.spec.mode if c.spec else "",
    }
    row.update(kw)
    return row


class _Planner:
    """One attempt of the plan commit's mutation (re-run from scratch on a conflict)."""

    def __init__(self, ctx: RunContext, state: BillingState, now: str) -> None:
        self.ctx, self.state, self.now = ctx, state, now
        self.plans: list[WorkOrderPlan] = []
        self.decisions: list[Decision] = []

    def reject(self, c: Candidate, reason: str, message: str, row: dict[str, str] | None) -> None:
        """REJECTED: a new log row only when the reason or the file changed."""
        code = self.ctx.code(reason)
        same = (
            row is not None
            and row.get("status") == REJECTED
            and row.get("reason_code") == code
            and row.get(bt.LOG_CONTENT_SHA256, "") == c.content_sha256
        )
        if not same:
            self.state.append(
                bt.WORKORDERS_LOG,
                [
                    _log_row(
                        c,
                        REJECTED,
                        reason_code=code,
                        started_at=self.now,
                        finished_at=self.now,
                        **{bt.LOG_CONTENT_SHA256: c.content_sha256},
                    )
                ],
            )
        self.decisions.append(
            Decision(
                tenant_id=c.tenant_id,
                work_order_id=c.work_order_id,
                status=REJECTED,
                reason_code=code,
                reason_name=reason,
                message=one_line(message),
                logged=not same,
            )
        )

    def _id_taken(self, c: Candidate) -> str:
        """Why the id cannot be charged to this tenant ('' when it can)."""
        owners = self.state.work_order_record(c.work_order_id).owners() - {c.tenant_id}
        if owners:
            return (
                f"work order id {c.work_order_id} is already used by tenant "
                f"{', '.join(sorted(owners))}; work order ids are unique across tenants"
            )
        return c.clash

    def decide(self, c: Candidate) -> None:
        row = self.state.work_order_status(c.tenant_id, c.work_order_id)
        if (done := _processed(c, row)) is not None:
            self.decisions.append(done)
        elif row is not None and row.get("status") == RUNNING:
            # the run that charged it died: finish what its SPEND paid for
            self.plans.append(resume_plan(self.ctx, self.state, c, row))
        elif c.spec is not None and not c.spec.enabled:
            self.decisions.append(
                Decision(
                    tenant_id=c.tenant_id,
                    work_order_id=c.work_order_id,
                    status="DISABLED",
                    message="enabled: false",
                )
            )
        elif not c.path.is_file():
            pass  # nothing charged and no file: nothing to do
        elif taken := self._id_taken(c):
            self.reject(c, _rejection_reason(self.ctx, []), taken, row)
        elif c.problems or c.spec is None:
            reason = _rejection_reason(self.ctx, c.problems)
            self.reject(c, reason, "; ".join(str(p) for p in c.problems[:5]), row)
        else:
            self.charge(c, c.spec, row)

    def charge(self, c: Candidate, spec: WorkOrderSpec, row: dict[str, str] | None) -> None:
        state = self.state
        if (refused := first_rejection(self.ctx, c.tenant_id, c.work_order_id, spec)) is not None:
            self.reject(c, refused.reason, refused.message, row)
            return
        lines = [OrderLine(m.module_id, m.purchase_release_artifacts) for m in spec.modules]
        try:
            q = state.quote(c.tenant_id, lines, spec.promo_codes)
            if over := quote_rejection(self.ctx, state, c.tenant_id, c.work_order_id, spec, q):
                raise OrderRejected(over.reason, over.message)
            posting = state.spend(q, c.tenant_id, c.work_order_id)
        except OrderRejected as exc:
            self.reject(c, exc.reason, str(exc), row)
            return
        tx = posting.transaction
        wp = WorkOrderPlan(
            tenant_id=c.tenant_id,
            work_order_id=c.work_order_id,
            mode=spec.mode,
            spend_transaction_id=tx.transaction_id,
            spend_credits=-tx.amount_credits,
            started_at=self.now,
            modules=module_plans(self.ctx, spec, lambda: state.new_id(ids.IdKind.MODULE_RUN)),
            content_sha256=c.content_sha256,
        )
        state.record_plan(c.tenant_id, c.work_order_id, tx.transaction_id, wp.recorded_json())
        state.append(
            bt.WORKORDERS_LOG,
            [
                _log_row(
                    c,
                    RUNNING,
                    spend_transaction_id=tx.transaction_id,
                    spend_credits=wp.spend_credits,
                    started_at=self.now,
                )
            ],
        )
        self.plans.append(wp)

    def decide_isolated(self, c: Candidate) -> None:
        """``decide``, with any failure confined to this work order."""
        try:
            with self.state.atomic():
                self.decide(c)
        except (WorkmillError, ValueError, KeyError) as exc:
            self.fail(c, exc)

    def fail(self, c: Candidate, exc: Exception) -> None:
        row = self.state.work_order_status(c.tenant_id, c.work_order_id)
        message = f"cannot plan: {one_line(str(exc))}"
        if row is not None and row.get("status") == RUNNING:
            self.decisions.append(
                Decision(
                    tenant_id=c.tenant_id,
                    work_order_id=c.work_order_id,
                    status=UNSETTLED,
                    reason_code=row.get("reason_code", ""),
                    message=f"{message}; its SPEND stands and it stays RUNNING until an "
                    "operator repairs its billing record",
                )
            )
            return
        try:
            with self.state.atomic():
                self.reject(c, "INTERNAL_ERROR", message, row)
        except WorkmillError:
            self.decisions.append(
                Decision(
                    tenant_id=c.tenant_id,
                    work_order_id=c.work_order_id,
                    status=REJECTED,
                    message=message,
                )
            )


def _decide(
    ctx: RunContext, state: BillingState, candidates: Iterable[Candidate], now: str
) -> tuple[list[WorkOrderPlan], list[Decision]]:
    """The mutation of the plan commit (re-run from scratch on a conflict)."""
    planner = _Planner(ctx, state, now)
    for c in candidates:
        planner.decide_isolated(c)
    return planner.plans, planner.decisions


def _claim(
    ctx: RunContext, seen: BillingState, candidates: list[Candidate], notes: list[Decision]
) -> list[Candidate]:
    """Candidates this process holds a lease on (processed ones need none)."""
    mine: list[Candidate] = []
    for c in candidates:
        done = _processed(c, seen.work_order_status(c.tenant_id, c.work_order_id))
        if done is not None:
            notes.append(done)
        elif ctx.options.dry_run or ctx.leases.claim(f"{c.tenant_id}-{c.work_order_id}"):
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
    return mine


def plan(ctx: RunContext) -> Plan:
    """Plan phase: stale-state check, discovery, leases, then one durable commit."""
    check_fresh(ctx.repo)
    now = clock.now_iso()
    seen = ctx.store.load()  # cheap pre-filter (the commit re-checks)
    candidates, notes = discover(ctx, seen.open_work_orders())
    mine = _claim(ctx, seen, candidates, notes)
    for c in mine:
        _load(ctx, c)
    if ctx.options.dry_run:
        plans, decisions = _decide(ctx, ctx.store.load(), mine, now)
    else:
        # the pre-filter's state is the commit's first try: at a long history, reading
        # the manifest and the work orders' index buckets again is most of a plan
        plans, decisions = ctx.store.commit_with_retry(
            lambda s: _decide(ctx, s, mine, now), loaded=seen
        )
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
