"""Module and work-order statuses (docs/reference.md "Statuses") and the pure rule deriving one from the other."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class ModuleStatus(StrEnum):
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_EXCEPTION = "COMPLETED_WITH_EXCEPTION"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"

    @property
    def succeeded(self) -> bool:
        return self in (ModuleStatus.COMPLETED, ModuleStatus.COMPLETED_WITH_EXCEPTION)


class WorkOrderStatus(StrEnum):
    COMPLETED = "COMPLETED"
    PARTIALLY_COMPLETED = "PARTIALLY_COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    RUNNING = "RUNNING"

    @property
    def terminal(self) -> bool:
        return self is not WorkOrderStatus.RUNNING


TERMINAL = frozenset(s.value for s in WorkOrderStatus if s.terminal)


def work_order_status(mode: str, statuses: Iterable[ModuleStatus]) -> WorkOrderStatus:
    """COMPLETED if all succeeded; PARTIALLY_COMPLETED (PARTIAL_ALLOWED, some of each); else FAILED."""
    states = list(statuses)
    ok = sum(1 for s in states if s.succeeded)
    if states and ok == len(states):
        return WorkOrderStatus.COMPLETED
    if ok == 0:
        return WorkOrderStatus.FAILED
    if mode == "STRICT":
        return WorkOrderStatus.FAILED
    return WorkOrderStatus.PARTIALLY_COMPLETED
