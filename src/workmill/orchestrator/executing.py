"""Execute: run the planned work orders' modules through the DAG scheduler.

Every finished (or skipped) module is journaled before the scheduler moves
on; a resumed work order starts from its journal, re-running only modules
whose outcome is unknown or whose outputs are no longer on disk. When every
module of a work order is done, its release manifest is uploaded (last).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Hashable

from workmill import clock
from workmill.artifacts.manifest import ReleaseItem, ReleaseManifest
from workmill.artifacts.naming import manifest_name, release_tag
from workmill.errors import WorkmillError
from workmill.orchestrator.context import RunContext
from workmill.orchestrator.dag import Job, Scheduler, Skip
from workmill.orchestrator.modules import (
    discard_prepared,
    execute_module,
    outputs_verified,
    prepare_module,
    uses_cache,
)
from workmill.orchestrator.records import (
    ModuleOutcome,
    ModulePlan,
    Plan,
    PublishedItem,
    WorkOrderPlan,
    append_outcome,
    journal_path,
    read_journal,
    sync_journal,
)
from workmill.orchestrator.statuses import ModuleStatus
from workmill.runner.api import PreparedRun
from workmill.specs import RELEASE_TAG

Key = tuple[str, str, str]  # tenant, work order, module


def known_outcomes(ctx: RunContext, wo: WorkOrderPlan) -> dict[str, ModuleOutcome]:
    """Journaled outcomes that still hold (succeeded ones need their outputs intact)."""
    journal = read_journal(journal_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id))
    keep = {}
    run_ids = {m.module_run_id for m in wo.modules}
    for mid, rec in journal.items():
        if rec.module_run_id not in run_ids:
            continue
        if ModuleStatus(rec.status).succeeded and not outputs_verified(ctx, wo, mid):
            continue
        if rec.reason_code and rec.reason_code == _safe_code(ctx, "INTERRUPTED"):
            continue  # interrupted last time: try again now
        keep[mid] = rec
    return keep


def _safe_code(ctx: RunContext, name: str) -> str:
    try:
        return ctx.code(name)
    except WorkmillError:
        return ""


def publish_manifest(
    ctx: RunContext, wo: WorkOrderPlan, outcomes: dict[str, ModuleOutcome]
) -> None:
    """Upload the release manifest last; stray assets of killed attempts are removed first."""
    listed = [m.module_id for m in wo.modules]
    items = [
        ReleaseItem(
            filename=p.filename,
            module_id=mid,
            module_version=outcomes[mid].module_version,
            item_id=p.item_id,
            source_name=p.source_name,
            sha256=p.sha256,
            size_bytes=p.size_bytes,
            content_type=p.content_type,
        )
        for mid in listed
        if mid in outcomes
        for p in outcomes[mid].published
    ]
    if not items:
        return
    tag = release_tag(wo.tenant_id, wo.work_order_id)
    name = manifest_name(wo.tenant_id, wo.work_order_id)
    manifest = ReleaseManifest(
        owning_tenant_id=wo.tenant_id,
        work_order_id=wo.work_order_id,
        release_tag=tag,
        created_at=wo.started_at,
        items=items,
    )
    existing = set(ctx.releases.list_assets(tag))
    if name in existing:
        # published by an earlier attempt (one that died after uploading it, or a shard
        # re-run from scratch on another runner): a manifest is never replaced, so what
        # it lists is what was published
        _adopt_published(ctx, wo, outcomes, tag, name, existing)
        return
    keep = {i.filename for i in items}
    for stray in existing - keep:
        ctx.releases.delete_asset(tag, stray)
    # the manifest vouches for these modules' outcomes: the journal must outlive a power loss
    sync_journal(journal_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id))
    ctx.releases.create_asset(tag, name, manifest.to_bytes())


def _adopt_published(
    ctx: RunContext,
    wo: WorkOrderPlan,
    outcomes: dict[str, ModuleOutcome],
    tag: str,
    name: str,
    existing: set[str],
) -> None:
    """Make the outcomes (and the journal) list the published manifest's items; remove
    the assets this attempt uploaded in vain."""
    data = ctx.releases.read_asset(tag, name)
    manifest = ReleaseManifest.parse(data, name)
    listed = {i.filename for i in manifest.items}
    journal = journal_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id)
    for mid, outcome in list(outcomes.items()):
        items = [
            PublishedItem(
                **i.model_dump(exclude={"module_id", "module_version"}), asset_id=i.item_id
            )
            for i in manifest.items_for(mid)
        ]
        if items != outcome.published:
            outcomes[mid] = outcome.model_copy(update={"published": items})
            append_outcome(journal, outcomes[mid])
    for stray in existing - listed - {name}:
        ctx.releases.delete_asset(tag, stray)


def _tenant_pools(ctx: RunContext, plan: Plan) -> Callable[[Job], tuple[Hashable, int] | None]:
    """Each tenant's ``max_parallel_modules`` quota as a scheduler pool (docs/reference.md
    "Registry, tiers, licences, quotas, usage")."""
    from workmill import quotas

    caps = {}
    for tenant_id in {wo.tenant_id for wo in plan.work_orders}:
        try:
            cap = quotas.parallel_limit(quotas.sources(ctx.repo, tenant_id))
        except WorkmillError:  # tenant.yml gone since the SPEND: no cap, the plan is paid
            cap = None
        if cap is not None:
            caps[tenant_id] = cap

    def pool_of(job: Job) -> tuple[Hashable, int] | None:
        tenant_id = job.key[0]  # type: ignore[index]
        return (tenant_id, caps[tenant_id]) if tenant_id in caps else None

    return pool_of


Outcomes = dict[tuple[str, str], dict[str, ModuleOutcome]]


class _Prepared:
    """Runs prepared ahead of their turn (workspace made, step agent starting), by job.

    Each is made for one module run and taken by that run only; what is not taken
    (the module was skipped, the run ended) is discarded (docs/architecture.md
    "Pre-started sandboxes")."""

    def __init__(self, ctx: RunContext, by_key: dict, modules: dict) -> None:
        self.ctx = ctx
        self.by_key = by_key
        self.modules = modules
        self.runs: dict[Hashable, PreparedRun] = {}
        self.lock = threading.Lock()

    def _plans(self, key: Hashable) -> tuple[WorkOrderPlan, ModulePlan]:
        tenant_id, wo_id, module_id = key  # type: ignore[misc]
        wo = self.by_key[(tenant_id, wo_id)]
        return wo, self.modules[(wo.key, module_id)]

    def prepare(self, job: Job) -> None:
        if self.ctx.cancel.is_set():
            return
        prep = prepare_module(self.ctx, *self._plans(job.key))
        if prep is not None:
            with self.lock:
                self.runs[job.key] = prep

    def take(self, key: Hashable) -> PreparedRun | None:
        with self.lock:
            return self.runs.pop(key, None)

    def discard(self, key: Hashable, prep: PreparedRun | None = None) -> None:
        prep = prep or self.take(key)
        if prep is not None:
            discard_prepared(self.ctx, *self._plans(key), prep)

    def discard_all(self) -> None:
        with self.lock:
            keys = list(self.runs)
        for key in keys:
            self.discard(key)


def _release_producers(wo: WorkOrderPlan, by_key: dict) -> set[tuple[str, str]]:
    """Work orders of this run whose release one of ``wo``'s modules reuses."""
    return {
        g
        for m in wo.modules
        if m.release_tag and (mt := RELEASE_TAG.fullmatch(m.release_tag))
        for g in [(mt.group(1), mt.group(2))]
        if g in by_key and g != wo.key
    }


def _build_jobs(
    ctx: RunContext, plan: Plan, by_key: dict[tuple[str, str], WorkOrderPlan]
) -> tuple[list[Job], dict[Hashable, ModuleStatus], Outcomes]:
    """One job per planned module; a resumed module's journaled status is its initial one."""
    outcomes: Outcomes = {}
    jobs: list[Job] = []
    initial: dict[Hashable, ModuleStatus] = {}
    cache_writer: dict[tuple[str, str], Key] = {}  # (tenant, module) -> last job that may store
    for wo in plan.work_orders:
        known = known_outcomes(ctx, wo)
        outcomes[wo.key] = dict(known)
        producers = tuple(sorted(_release_producers(wo, by_key)))
        for m in wo.modules:
            key: Key = (wo.tenant_id, wo.work_order_id, m.module_id)
            slot = (wo.tenant_id, m.module_id)
            waits = (
                (cache_writer[slot],)
                if m.reuse_output_type == "cache" and slot in cache_writer
                else ()
            )
            if uses_cache(ctx, m):
                cache_writer[slot] = key
            jobs.append(
                Job(
                    key,
                    wo.key,
                    deps=tuple((wo.tenant_id, wo.work_order_id, d) for d in m.depends_on),
                    strict=wo.mode == "STRICT",
                    after_groups=producers if m.reuse_output_type == "release" else (),
                    after_jobs=waits,
                )
            )
            if m.module_id in known:
                initial[key] = ModuleStatus(known[m.module_id].status)
    return jobs, initial, outcomes


def execute(ctx: RunContext, plan: Plan) -> Outcomes:
    """Run every planned module; returns the outcomes per work order (also journaled)."""
    by_key: dict[tuple[str, str], WorkOrderPlan] = {wo.key: wo for wo in plan.work_orders}
    jobs, initial, outcomes = _build_jobs(ctx, plan, by_key)
    lock = threading.Lock()

    modules = {(wo.key, m.module_id): m for wo in plan.work_orders for m in wo.modules}
    prepared = _Prepared(ctx, by_key, modules)

    def record(wo: WorkOrderPlan, outcome: ModuleOutcome) -> None:
        append_outcome(journal_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id), outcome)
        with lock:
            outcomes[wo.key][outcome.module_id] = outcome
        ctx.reporter.module_finished(
            wo.tenant_id, wo.work_order_id, outcome.module_id, outcome.status
        )

    def run(job: Job) -> ModuleStatus:
        tenant_id, wo_id, module_id = job.key  # type: ignore[misc]
        wo = by_key[(tenant_id, wo_id)]
        ctx.reporter.module_started(tenant_id, wo_id, module_id)
        prep = prepared.take(job.key)
        try:
            outcome = execute_module(ctx, wo, modules[(wo.key, module_id)], prep)
        finally:
            prepared.discard(job.key, prep)
        record(wo, outcome)
        return ModuleStatus(outcome.status)

    def skip(job: Job, why: Skip) -> None:
        prepared.discard(job.key)
        tenant_id, wo_id, module_id = job.key  # type: ignore[misc]
        wo = by_key[(tenant_id, wo_id)]
        mp = modules[(wo.key, module_id)]
        now = clock.now_iso()
        record(
            wo,
            ModuleOutcome(
                module_id=module_id,
                module_run_id=mp.module_run_id,
                module_version=mp.module_version,
                status=ModuleStatus.SKIPPED.value,
                reason_code=ctx.code(why.reason),
                message=f"not run: {why.reason}",
                reuse_output_type=mp.reuse_output_type,
                started_at=now,
                finished_at=now,
            ),
        )

    def group_done(group: Hashable) -> None:
        wo = by_key[group]  # type: ignore[index]
        try:
            publish_manifest(ctx, wo, outcomes[wo.key])
        except (OSError, WorkmillError) as exc:
            ctx.reporter.warn(f"{wo.work_order_id}: release manifest not published: {exc}")

    if any(m.reuse_output_type == "cache" for wo in plan.work_orders for m in wo.modules):
        _ = ctx.cache_index_rows  # read once, before the worker threads need it
    pending = sum(1 for j in jobs if j.key not in initial)
    ctx.reporter.start(len(plan.work_orders), pending)
    # what is alive now (specs, plans, libraries) lives through the run: the collector
    # need not rescan it after every module
    gc.freeze()
    try:
        Scheduler(
            jobs,
            ctx.max_parallel,
            run,
            skip,
            cancel=ctx.cancel,
            initial=initial,
            on_group_done=group_done,
            pool_of=_tenant_pools(ctx, plan),
            prepare=prepared.prepare,
        ).execute()
    finally:
        prepared.discard_all()
        gc.unfreeze()
        ctx.reporter.stop()
    return outcomes
