"""Checks a work order must pass before it is charged (docs/reference.md "Rejections").

Each gate is a small function ``(ctx, tenant_id, work_order_id, spec) -> Rejection | None``.
The planner runs them in order after the work order validates and before the quote, so
a refusal costs the tenant nothing. Concerns above the orchestrator (supply chain,
licences, quotas) register their gate here instead of editing the planner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from workmill import clock, supply
from workmill.errors import WorkmillError
from workmill.orchestrator.context import RunContext
from workmill.specs import WorkOrderSpec

if TYPE_CHECKING:
    from workmill.ledger import Quote
    from workmill.state import BillingState


class Rejection(NamedTuple):
    """Why a work order is refused before charge: a global reason name and a message."""

    reason: str
    message: str


Gate = Callable[[RunContext, str, str, WorkOrderSpec], "Rejection | None"]


def _tenant_suspended(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    if ctx.repo.tenant(tenant_id).status == "suspended":
        return Rejection("TENANT_SUSPENDED", f"tenant {tenant_id} is suspended")
    return None


def _warn_once(ctx: RunContext, message: str) -> None:
    # a commit retry re-runs the gates: say it once
    if message not in ctx.reporter.warnings:
        ctx.reporter.warn(message)


def _licence_required(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    """A premium module runs only for a tenant a valid (or in-grace) licence covers."""
    premium = [m for m in spec.module_ids if ctx.repo.module(m).tier == "premium"]
    if not premium:
        return None
    from workmill.licences import coverage, load_licences  # only premium work orders pay

    warnings: list[str] = []
    try:
        licences = load_licences(ctx.repo, warnings)
    except WorkmillError as exc:
        return Rejection("LICENCE_REQUIRED", str(exc))
    cov = coverage(licences, tenant_id, premium, clock.now(), ctx.repo.config.licence_grace_hours)
    for w in [*warnings, *cov.warnings]:
        _warn_once(ctx, f"{work_order_id}: {w}")
    return None if cov.allowed else Rejection("LICENCE_REQUIRED", cov.message)


def _runs_code(spec: WorkOrderSpec) -> list[str]:
    """Modules of the work order whose own code may run (reused outputs run nothing)."""
    return [m.module_id for m in spec.modules if m.reuse_output_type in ("new", "cache")]


def _module_not_pinned(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    """With ``require_pinned``, what runs is exactly what was reviewed (docs/supply-chain.md)."""
    if not ctx.repo.config.require_pinned:
        return None
    pins = ctx.module_pins
    for m in _runs_code(spec):
        status = supply.PinStatus(m, pins.get(m, ""), ctx.module_digest(m))
        if status.state is not supply.PinState.PINNED:
            return Rejection(
                "MODULE_NOT_PINNED", f"{supply.describe(status)}; review it and run `workmill pin`"
            )
    return None


def _module_secret_missing(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    for m in _runs_code(spec):
        if missing := supply.missing_secrets(ctx.repo.module(m)):
            return Rejection(
                "MODULE_SECRET_MISSING",
                f"module {m} requires secret(s) {', '.join(missing)}: set the environment "
                "variable(s) of that name for workmill",
            )
    return None


GATES: list[Gate] = [
    _tenant_suspended,
    _module_not_pinned,
    _module_secret_missing,
    _licence_required,
]


def first_rejection(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    for gate in GATES:
        if (found := gate(ctx, tenant_id, work_order_id, spec)) is not None:
            return found
    return None


# ------------------------------------------------------------------ after the quote
# Gates that need the price or the ledger as this plan has changed it so far (work
# orders charged earlier in the same plan count): ``(ctx, state, tenant, work order,
# spec, quote) -> Rejection | None``, run after pricing and before the SPEND.
QuoteGate = Callable[
    [RunContext, "BillingState", str, str, WorkOrderSpec, "Quote"], "Rejection | None"
]


def _quota_exceeded(
    ctx: RunContext,
    state: BillingState,
    tenant_id: str,
    work_order_id: str,
    spec: WorkOrderSpec,
    quote: Quote,
) -> Rejection | None:
    from workmill import quotas

    limits = [(src, q) for src, q in quotas.sources(ctx.repo, tenant_id) if quotas.has_limits(q)]
    if not limits:
        return None
    now = clock.now()
    used = quotas.tenant_usage(state, tenant_id, now)
    breach = quotas.check(
        limits, used, quote.total, now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    )
    return None if breach is None else Rejection("QUOTA_EXCEEDED", breach.message)


QUOTE_GATES: list[QuoteGate] = [_quota_exceeded]


def quote_rejection(
    ctx: RunContext,
    state: BillingState,
    tenant_id: str,
    work_order_id: str,
    spec: WorkOrderSpec,
    quote: Quote,
) -> Rejection | None:
    for gate in QUOTE_GATES:
        if (found := gate(ctx, state, tenant_id, work_order_id, spec, quote)) is not None:
            return found
    return None
