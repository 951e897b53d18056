"""``workmill smoke``: run modules with their ``smoke.params`` and ``WM_MODE=smoke``.

Each module runs through the runner exactly as in a work order (same workspace
layout, same sandbox, same output contract) but nothing is billed and no
state is written. Dependencies run first and hand their smoke outputs on as
inputs, in parallel up to ``max_parallel``; a module whose dependency failed is
SKIPPED. Declared secrets are placeholders (docs/supply-chain.md "Smoke").
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workmill import ids
from workmill.errors import NotFound
from workmill.inspection import deps_closure
from workmill.reasons import CATALOG_FILE, ReasonCatalog
from workmill.repo import PlatformRepo
from workmill.runner import ModuleRunRequest, run_module
from workmill.runner.workspace import workspace_path
from workmill.supply._secrets import secret_env
from workmill.validate import topological_order

SMOKE_TENANT = "000000"
SMOKE_WORK_ORDER = "SMOKERUN"
PASSED = ("COMPLETED", "COMPLETED_WITH_EXCEPTION")


@dataclass(frozen=True)
class SmokeRow:
    """One module's smoke outcome (a row of the table)."""

    module_id: str
    name: str
    version: str
    status: str
    reason_code: str
    message: str
    duration_ms: int
    requested: bool  # named on the command line (or all); else run as a dependency
    workspace: str

    @property
    def passed(self) -> bool:
        return self.status in PASSED

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "passed": self.passed}


@dataclass(frozen=True)
class SmokeReport:
    rows: list[SmokeRow]
    runtime_dir: Path

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tenant_id": SMOKE_TENANT,
            "work_order_id": SMOKE_WORK_ORDER,
            "runtime_dir": str(self.runtime_dir),
            "modules": [r.to_dict() for r in self.rows],
        }


def _stage_inputs(root: Path, module_id: str, deps: list[str]) -> Path:
    """``<dep>/<file>`` copies of each dependency's smoke outputs."""
    dest = root / ".inputs" / module_id
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for dep in deps:
        src = root / dep / "outputs"
        if src.is_dir():
            shutil.copytree(src, dest / dep, symlinks=True, copy_function=shutil.copyfile)
    return dest


class _Smoker:
    """Runs one module's smoke job and records its row (called from scheduler threads)."""

    def __init__(
        self, repo: PlatformRepo, runtime: Path, deps: dict[str, list[str]], requested: set[str]
    ) -> None:
        if not (repo.maintenance_dir / CATALOG_FILE).is_file():
            raise NotFound(
                f"maintenance-state/{CATALOG_FILE} not found: run `workmill maintenance` first"
            )
        self.repo = repo
        self.runtime = runtime
        self.deps = deps
        self.requested = requested
        self.catalog = ReasonCatalog.load(repo.maintenance_dir)
        self.root = workspace_path(runtime, SMOKE_TENANT, SMOKE_WORK_ORDER, "000").parent
        self.rows: dict[str, SmokeRow] = {}
        self.cancel = threading.Event()
        self._lock = threading.Lock()

    def _row(self, module_id: str, status: str, reason: str, message: str, ms: int) -> None:
        spec = self.repo.module(module_id)
        ws = workspace_path(self.runtime, SMOKE_TENANT, SMOKE_WORK_ORDER, module_id)
        row = SmokeRow(
            module_id,
            spec.name,
            spec.version,
            status,
            reason,
            message,
            ms,
            module_id in self.requested,
            str(ws),
        )
        with self._lock:
            self.rows[module_id] = row

    def run(self, module_id: str) -> str:
        spec = self.repo.module(module_id)
        inputs = _stage_inputs(self.root, module_id, self.deps[module_id])
        req = ModuleRunRequest.from_repo(
            self.repo,
            module_id,
            tenant_id=SMOKE_TENANT,
            work_order_id=SMOKE_WORK_ORDER,
            module_run_id=ids.generate(ids.IdKind.MODULE_RUN),
            params=dict(spec.smoke.params),
            catalog=self.catalog,
            runtime_dir=self.runtime,
            inputs_dir=inputs,
            mode="smoke",
            cancel=self.cancel,
            replace_existing=True,
            extra_env=secret_env(spec, smoke=True),
        )
        result = run_module(req)
        self._row(
            module_id, str(result.status), result.reason_code, result.message, result.duration_ms
        )
        return str(result.status)

    def skipped(self, module_id: str, reason: str) -> None:
        code = self.catalog.global_code(reason) if reason else ""
        self._row(module_id, "SKIPPED", code, f"not run: {reason}", 0)


def smoke(
    repo: PlatformRepo,
    module_ids: Sequence[str] | None = None,
    *,
    runtime_dir: Path | None = None,
    max_parallel: int | None = None,
    cancel: threading.Event | None = None,
) -> SmokeReport:
    """Smoke-test ``module_ids`` (default: every module) and the modules they depend on."""
    from workmill.orchestrator.dag import Job, Scheduler, Skip  # the orchestrator's scheduler
    from workmill.orchestrator.statuses import ModuleStatus

    roots = list(dict.fromkeys(module_ids or repo.module_ids()))
    for m in roots:
        if msg := ids.check(ids.IdKind.MODULE, m):
            raise NotFound(f"{m}: {msg}")
    deps = deps_closure(repo, roots)
    order = topological_order(sorted(deps), deps)
    runtime = (runtime_dir or repo.root / "runtime").resolve()
    smoker = _Smoker(repo, runtime, deps, set(roots))
    if smoker.root.exists():
        shutil.rmtree(smoker.root)  # a smoke run starts clean: no stale outputs as inputs
    if cancel is not None:
        smoker.cancel = cancel

    def on_skip(job: Job, why: Skip) -> None:
        smoker.skipped(str(job.key), why.reason)

    scheduler = Scheduler(
        jobs=[Job(m, "smoke", tuple(deps[m]), strict=False) for m in order],
        max_parallel=max_parallel or repo.max_parallel,
        run=lambda job: ModuleStatus(smoker.run(str(job.key))),
        on_skip=on_skip,
        cancel=smoker.cancel,
    )
    scheduler.execute()
    for key, exc in scheduler.errors.items():
        smoker._row(str(key), "FAILED", "", f"internal error: {type(exc).__name__}: {exc}", 0)
    return SmokeReport([smoker.rows[m] for m in order if m in smoker.rows], runtime)
