"""Checks a work order must pass before it is charged (docs/reference.md "Rejections").

Each gate is a small function ``(ctx, tenant_id, work_order_id, spec) -> Rejection | None``.
The planner runs them in order after the work order validates and before the quote, so
a refusal costs the tenant nothing. Concerns above the orchestrator (supply chain,
licences, quotas) register their gate here instead of editing the planner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from workmill.orchestrator.context import RunContext
from workmill.specs import WorkOrderSpec


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


GATES: list[Gate] = [_tenant_suspended]


def first_rejection(
    ctx: RunContext, tenant_id: str, work_order_id: str, spec: WorkOrderSpec
) -> Rejection | None:
    for gate in GATES:
        if (found := gate(ctx, tenant_id, work_order_id, spec)) is not None:
            return found
    return None
