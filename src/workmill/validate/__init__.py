"""Whole-repo validation (docs/reference.md "Files of a platform repo", "Reason codes"): every problem, never just the first.

``validate_repo`` = load problems + the platform checks + every work order.
``validate_platform`` is the part maintenance depends on (modules, tenants,
reasons, registries): invalid *work orders* never block maintenance.
``validate_work_order`` lets the orchestrator reject one work order alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from workmill import ids
from workmill.errors import Problem
from workmill.repo import PlatformRepo
from workmill.validate._checks import (
    PLATFORM_CHECKS,
    REQUIRED_GLOBAL_REASONS,
    WARNING_CHECKS,
    action_problems,
)
from workmill.validate._graph import find_cycles, topological_order, transitive_deps
from workmill.validate._parallel import bulk_gc, fork_map
from workmill.validate._snapshot import (
    CATEGORY_COLUMNS,
    CATEGORY_REGISTRY,
    MODULE_REGISTRY,
    MODULE_REGISTRY_COLUMNS,
    REASON_REGISTRY,
    REASON_REGISTRY_COLUMNS,
    ModuleInfo,
    Snapshot,
    TenantInfo,
    discover_inputs,
    hash_inputs,
    load_snapshot,
    work_order_snapshot,
)
from workmill.validate._workorders import WorkOrderContext, check_work_order_file

__all__ = [
    "CATEGORY_COLUMNS",
    "CATEGORY_REGISTRY",
    "MODULE_REGISTRY",
    "MODULE_REGISTRY_COLUMNS",
    "REASON_REGISTRY",
    "REASON_REGISTRY_COLUMNS",
    "REQUIRED_GLOBAL_REASONS",
    "ModuleInfo",
    "Snapshot",
    "TenantInfo",
    "ValidationReport",
    "action_problems",
    "discover_inputs",
    "find_cycles",
    "hash_inputs",
    "load_snapshot",
    "sort_problems",
    "topological_order",
    "transitive_deps",
    "validate_platform",
    "validate_repo",
    "validate_repo_report",
    "validate_work_order",
]


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    modules: int = 0
    tenants: int = 0
    work_orders: int = 0
    warnings: list[Problem] = field(default_factory=list)  # reported, never a failure

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"ok: {self.modules} modules, {self.tenants} tenants, {self.work_orders} work orders"


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Stable, readable order: by file, then line; duplicates dropped."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.path, p.line or 0, p.field, p.message))


def validate_platform(snap: Snapshot) -> list[Problem]:
    """Load problems and every platform check: what maintenance refuses to compile over."""
    out = list(snap.problems)
    for check in PLATFORM_CHECKS:
        out += check(snap)
    return sort_problems(out)


def _work_order_files(snap: Snapshot) -> list[tuple[str, str, bool]]:
    """(tenant, path, is a folder) of every entry under each tenant's workorders/.

    One directory scan per tenant: its entries say whether they are folders, so
    tens of thousands of work orders cost no extra stat each.
    """
    out = []
    for t in snap.tenants:
        d = f"{snap.repo.tenant_dir(t)}/workorders"
        try:
            with os.scandir(d) as it:
                entries = sorted((e.name, e.is_dir()) for e in it if not e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            continue
        out += [(t, f"{d}/{name}", is_dir) for name, is_dir in entries]
    return out


def validate_repo_report(repo: PlatformRepo) -> ValidationReport:
    with bulk_gc():
        return _validate_repo_report(repo)


def _validate_repo_report(repo: PlatformRepo) -> ValidationReport:
    snap = load_snapshot(repo)
    problems = validate_platform(snap)
    ctx = WorkOrderContext(snap, report_broken_modules=False)
    files = _work_order_files(snap)
    found, stems = _check_files_parallel(ctx, files)
    problems += found
    owners = {os.path.basename(p)[:-4]: t for t, p, _ in files}
    for group in ids.duplicates_ignoring_case(stems):
        where = ", ".join(f"tenants/{owners[g]}/workorders/{g}.yml" for g in group)
        problems.append(
            Problem(
                f"tenants/{owners[group[0]]}/workorders/{group[0]}.yml",
                None,
                "work_order_id",
                f"work order ids must be unique ignoring case: {where}",
            )
        )
    warnings = [w for check in WARNING_CHECKS for w in check(snap)]
    return ValidationReport(
        sort_problems(problems),
        len(snap.modules),
        len(snap.tenants),
        len(files),
        sort_problems(warnings),
    )


def _check_files(ctx: WorkOrderContext, files: list[tuple[str, str, bool]]):
    problems: list[Problem] = []
    stems: list[str] = []
    for tenant_id, path, is_dir in files:
        name = os.path.basename(path)
        if is_dir:
            problems.append(
                Problem(f"tenants/{tenant_id}/workorders/{name}", None, "", "not a file")
            )
            continue
        problems += check_work_order_file(ctx, tenant_id, path)[1]
        if name.endswith(".yml"):
            stems.append(name[:-4])
    return problems, stems


PARALLEL_THRESHOLD = 2000


def _check_files_parallel(ctx: WorkOrderContext, files: list[tuple[str, str, bool]]):
    """Work orders are independent: on a big repo, check them on every CPU."""
    problems: list[Problem] = []
    stems: list[str] = []
    for found, names in fork_map(_check_files, ctx, files, threshold=PARALLEL_THRESHOLD):
        problems += found
        stems += names
    return problems, stems


def validate_repo(repo: PlatformRepo) -> list[Problem]:
    """Every problem of the repo, sorted by file and line (empty when valid)."""
    return validate_repo_report(repo).problems


_CTX_KEY = ("foundation", "work-order-context")


def validate_work_order(repo: PlatformRepo, tenant_id: str, path: Path | str) -> list[Problem]:
    """Problems of one work order, so the orchestrator can REJECT it alone.

    Only the modules a work order names are read (once per ``PlatformRepo``).
    """
    ctx = repo._cache.get(_CTX_KEY)
    if not isinstance(ctx, WorkOrderContext):
        ctx = WorkOrderContext(work_order_snapshot(repo), report_broken_modules=True)
        repo._cache[_CTX_KEY] = ctx
    p = Path(path)
    if not p.is_absolute():
        p = repo.root / p
    if tenant_id not in ctx.snap.tenants:
        return [Problem(f"tenants/{tenant_id}", None, "", f"unknown tenant {tenant_id!r}")]
    _, problems = check_work_order_file(ctx, tenant_id, p)
    return sort_problems(problems)
