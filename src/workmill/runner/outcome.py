"""Exit code × reason file × policy → the module's status (docs/reference.md "Running a module"). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from workmill.reasons import ReasonCatalog
from workmill.runner.contract import ContractReport

MAX_REASON_BYTES = 256


class ModuleStatus(StrEnum):
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_EXCEPTION = "COMPLETED_WITH_EXCEPTION"
    FAILED = "FAILED"


# The platform reasons the runner can give; all must be in the catalog.
RUNNER_REASONS = (
    "MODULE_FAILED",
    "MODULE_TIMEOUT",
    "OUTPUT_CONTRACT_VIOLATION",
    "PARAMS_INVALID",
    "INTERNAL_ERROR",
    "INTERRUPTED",
)


@dataclass(frozen=True)
class Outcome:
    status: ModuleStatus
    reason_code: str  # "" for COMPLETED
    message: str


@dataclass(frozen=True)
class RunFacts:
    """What happened, as observed by the interpreter."""

    exit_code: int | None
    failed_step: str = ""  # "step 2 (build) exited with code 3": the first failing step
    timed_out: bool = False
    cancelled: bool = False
    internal_error: str = ""
    reason_written: str | None = None  # stripped text of WM_REASON_FILE, None if absent/empty


def failed(catalog: ReasonCatalog, name: str, message: str) -> Outcome:
    return Outcome(ModuleStatus.FAILED, catalog.global_code(name), message)


def decide(
    facts: RunFacts, contract: ContractReport, catalog: ReasonCatalog, module_id: str
) -> Outcome:
    """The status of one module run from what happened and what it left behind."""
    if facts.cancelled:
        return failed(catalog, "INTERRUPTED", "cancelled; the module's processes were killed")
    if facts.timed_out:
        return failed(catalog, "MODULE_TIMEOUT", "timed out; the module's processes were killed")
    if facts.internal_error:
        return failed(catalog, "INTERNAL_ERROR", facts.internal_error)
    if facts.reason_written:
        reason = catalog.resolve_module_reason(module_id, facts.reason_written)
        if reason is None:
            return failed(
                catalog,
                "MODULE_FAILED",
                f"the module wrote the unknown reason {facts.reason_written!r} to WM_REASON_FILE",
            )
        said = f"the module reported {reason.name} ({reason.code})"
        if facts.failed_step:
            said += f"; {facts.failed_step}"
        if reason.fail:
            return Outcome(ModuleStatus.FAILED, reason.code, said)
        if not contract.ok:
            return failed(
                catalog, "OUTPUT_CONTRACT_VIOLATION", said + "; " + "; ".join(contract.problems)
            )
        return Outcome(ModuleStatus.COMPLETED_WITH_EXCEPTION, reason.code, said)
    if facts.exit_code != 0:
        return failed(
            catalog,
            "MODULE_FAILED",
            facts.failed_step or f"the module exited with code {facts.exit_code}",
        )
    if not contract.ok:
        return failed(catalog, "OUTPUT_CONTRACT_VIOLATION", "; ".join(contract.problems))
    return Outcome(ModuleStatus.COMPLETED, "", "completed")
