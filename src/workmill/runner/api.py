"""``run_module``: one module run, start to outcome, for the orchestrator and the CLI.

It never raises for anything the module does (that is an outcome); it raises
:class:`RunnerError` only when the request itself is unusable (bad IDs, the
workspace already exists, the reason catalog lacks a platform reason).
Thread-safe: all state is per call, ``os.environ`` is never changed.
"""

from __future__ import annotations

import os
import stat
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workmill import clock, ids
from workmill.errors import SpecError
from workmill.params import ParamsInvalid, load_params_schema, resolve_params
from workmill.reasons import ReasonCatalog
from workmill.repo import PlatformRepo
from workmill.runner.contract import ContractReport, check_outputs
from workmill.runner.evaluate import Contexts
from workmill.runner.interpreter import (
    ActionRefused,
    ExecutionResult,
    ExecutionSettings,
    StepRecord,
    execute,
    plan_action,
)
from workmill.runner.logs import DEFAULT_LOG_CAP, CappedLog, Masker
from workmill.runner.manifest import OutputsManifest, build_manifest, write_manifest
from workmill.runner.outcome import (
    MAX_REASON_BYTES,
    RUNNER_REASONS,
    ModuleStatus,
    Outcome,
    RunFacts,
    decide,
    failed,
)
from workmill.runner.process import ProcessGroups
from workmill.runner.workspace import (
    RunnerError,
    Workspace,
    base_environment,
    create_workspace,
    param_env,
    runner_os,
    workspace_path,
    write_params,
)
from workmill.sandbox import (
    CREDENTIAL_VARS,
    SandboxChoice,
    SandboxError,
    SandboxUnavailable,
    StepLauncher,
    choose_sandbox,
    sandbox_setting,
    scrub_own_secrets,
)
from workmill.specs import ActionSpec, ModuleSpec

Mode = Literal["run", "smoke"]
SandboxSetting = Literal["auto", "bwrap", "none"]
DEFAULT_MAX_OUTPUT_BYTES = 2 * 1024**3
_UNSET: Any = object()


@dataclass(frozen=True)
class ModuleRunRequest:
    """Everything one module run needs; build it with :meth:`from_repo` or by hand."""

    module_dir: Path
    module: ModuleSpec
    action: ActionSpec
    tenant_id: str
    work_order_id: str
    module_run_id: str
    params: Mapping[str, Any]
    runtime_dir: Path
    catalog: ReasonCatalog
    inputs_dir: Path | None = None  # $WM_INPUTS_DIR, <dep_module_id>/<file> filled by the caller
    cache_dir: Path | None = None  # $WM_CACHE_DIR; default <runtime_dir>/.deps/<module_id>/<tenant>
    mode: Mode = "run"
    timeout_seconds: float | None = None  # default: module.timeout_minutes * 60
    cancel: threading.Event | None = None
    secrets: tuple[str, ...] = ()  # values masked in every log line
    # Variables for this module's steps only (module.yml `secrets:`), masked in its logs;
    # they reach the sandboxed steps and nothing else (not workmill's env, not other modules).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    sandbox: SandboxSetting = "auto"  # workmill.yml `sandbox`
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES  # workmill.yml `max_output_bytes`
    replace_existing: bool = False  # else an existing workspace is refused
    log_cap_bytes: int = DEFAULT_LOG_CAP  # per step log
    kill_grace_seconds: float = 5.0  # SIGTERM → SIGKILL
    params_schema: Any = _UNSET  # dict | None; default: the module's schemas/params.schema.json

    @classmethod
    def from_repo(
        cls,
        repo: PlatformRepo,
        module_id: str,
        *,
        tenant_id: str,
        work_order_id: str,
        module_run_id: str,
        params: Mapping[str, Any],
        catalog: ReasonCatalog,
        runtime_dir: Path | None = None,
        **kw: Any,
    ) -> ModuleRunRequest:
        """A request for ``modules/<module_id>`` of ``repo``; WM_CACHE_DIR defaults to
        ``<local_cache_dir>/deps/<module_id>/<tenant_id>`` (never shared between tenants:
        docs/reference.md "Sandbox"), sandbox and output cap to workmill.yml."""
        kw.setdefault("cache_dir", repo.local_cache_dir / "deps" / module_id / tenant_id)
        kw.setdefault("sandbox", sandbox_setting(repo.config.sandbox))
        kw.setdefault("max_output_bytes", repo.config.max_output_bytes)
        return cls(
            module_dir=repo.module_dir(module_id),
            module=repo.module(module_id),
            action=repo.action(module_id),
            tenant_id=tenant_id,
            work_order_id=work_order_id,
            module_run_id=module_run_id,
            params=params,
            runtime_dir=runtime_dir or repo.root / "runtime",
            catalog=catalog,
            **kw,
        )


@dataclass(frozen=True)
class ModuleRunResult:
    module_id: str
    module_run_id: str
    module_version: str
    status: ModuleStatus
    reason_code: str  # "" when COMPLETED
    message: str
    workspace: Path
    outputs_dir: Path
    manifest_path: Path
    manifest: OutputsManifest
    runner_log: Path
    step_logs: list[Path]
    steps: list[StepRecord]
    action_outputs: dict[str, str]
    warnings: list[str]
    exit_code: int | None
    started_at: str
    finished_at: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not ModuleStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "module_id": self.module_id,
            "module_run_id": self.module_run_id,
            "module_version": self.module_version,
            "status": str(self.status),
            "reason_code": self.reason_code,
            "message": self.message,
            "exit_code": self.exit_code,
            "workspace": str(self.workspace),
            "outputs_dir": str(self.outputs_dir),
            "manifest_path": str(self.manifest_path),
            "outputs": self.manifest.to_dict()["files"],
            "outputs_sha256": self.manifest.outputs_sha256,
            "action_outputs": self.action_outputs,
            "runner_log": str(self.runner_log),
            "step_logs": [str(p) for p in self.step_logs],
            "steps": [
                {
                    "index": s.index,
                    "id": s.id,
                    "name": s.name,
                    "outcome": s.outcome,
                    "conclusion": s.conclusion,
                    "exit_code": s.exit_code,
                    "duration_ms": s.duration_ms,
                    "log": str(s.log_path) if s.log_path else None,
                    "message": s.message,
                }
                for s in self.steps
            ],
            "warnings": self.warnings,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_ms": self.duration_ms,
        }


def _check_request(req: ModuleRunRequest) -> None:
    for kind, value in (
        (ids.IdKind.TENANT, req.tenant_id),
        (ids.IdKind.WORK_ORDER, req.work_order_id),
        (ids.IdKind.MODULE, req.module.module_id),
        (ids.IdKind.MODULE_RUN, req.module_run_id),
    ):
        msg = ids.check(kind, value)
        if msg:
            raise RunnerError(msg)
    missing = []
    for name in RUNNER_REASONS:
        try:
            req.catalog.global_code(name)
        except KeyError:
            missing.append(name)
    if missing:
        raise RunnerError(
            f"the reason catalog lacks {', '.join(missing)} "
            "(add them to config/global_reasons.yml and run `workmill maintenance`)"
        )
    if req.mode not in ("run", "smoke"):
        raise RunnerError(f"mode must be 'run' or 'smoke', not {req.mode!r}")


def _read_reason(ws: Workspace) -> str | None:
    """The stripped reason text, or None; never follows a link or blocks on a fifo."""
    try:
        fd = os.open(ws.reason_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        return "<unreadable reason file>"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return "<reason file is not a regular file>"
        data = fh.read(MAX_REASON_BYTES + 1)
    text = data[:MAX_REASON_BYTES].decode("utf-8", "replace").strip()
    return text or None


def _resolve(req: ModuleRunRequest) -> tuple[Any, dict[str, Any], dict[str, str]] | Outcome:
    """(plan, params, WM_PARAM_* env), or the outcome that stops the run before any step."""
    try:
        plan = plan_action(req.action)
    except ActionRefused as exc:
        return failed(req.catalog, "MODULE_FAILED", f"action.yml refused: {exc}")
    try:
        schema = (
            load_params_schema(req.module_dir) if req.params_schema is _UNSET else req.params_schema
        )
        params = resolve_params(req.action, dict(req.params), schema)
        penv, problems = param_env(params)
        if problems:
            raise ParamsInvalid([SpecError.at("params", p).problems[0] for p in problems])
    except ParamsInvalid as exc:
        return failed(req.catalog, "PARAMS_INVALID", str(exc).replace("\n", "; "))
    except SpecError as exc:
        return failed(req.catalog, "MODULE_FAILED", str(exc).replace("\n", "; "))
    return plan, params, penv


def _platform_vars(req: ModuleRunRequest, ws: Workspace, inputs_dir: Path, cache_dir: Path):
    return {
        "WM_TENANT_ID": req.tenant_id,
        "WM_WORK_ORDER_ID": req.work_order_id,
        "WM_MODULE_ID": req.module.module_id,
        "WM_MODULE_RUN_ID": req.module_run_id,
        "WM_MODULE_VERSION": req.module.version,
        "WM_PARAMS_FILE": str(ws.params_file),
        "WM_INPUTS_DIR": os.path.abspath(inputs_dir),
        "WM_OUTPUTS_DIR": str(ws.outputs),
        "WM_REASON_FILE": str(ws.reason_file),
        "WM_MODE": req.mode,
        "WM_CACHE_DIR": os.path.abspath(cache_dir),
        "GITHUB_ACTION_PATH": os.path.abspath(req.module_dir),
        "GITHUB_WORKSPACE": str(ws.work),
        "RUNNER_TEMP": str(ws.tmp),
        "RUNNER_OS": runner_os(),
        "TMPDIR": str(ws.tmp),
        "HOME": str(ws.tmp),
    }


def _new_launcher(
    req: ModuleRunRequest, choice: SandboxChoice, ws: Workspace, pvars: Mapping[str, str]
) -> StepLauncher:
    """The run's step agent (not started): it sees the module folder and inputs read-only,
    and can write only its workspace's outputs/work/tmp/steps, its reason file and
    WM_CACHE_DIR."""
    # needed for `sandbox: none`; done in every mode so no unsandboxed process of the
    # same user (another run's) can read this process's credentials either
    scrub_own_secrets()
    return StepLauncher(
        choice,
        read_only=[str(ws.root), pvars["GITHUB_ACTION_PATH"], pvars["WM_INPUTS_DIR"]],
        writable=[
            *(str(d) for d in (ws.outputs, ws.work, ws.tmp, ws.steps, ws.reason_file)),
            pvars["WM_CACHE_DIR"],
        ],
        network=req.module.network,
        cwd=str(ws.work),
        fsize_limit=req.max_output_bytes + 1,
        stderr_path=ws.logs / "sandbox.log",
    )


def _launcher(
    req: ModuleRunRequest,
    choice: SandboxChoice,
    ws: Workspace,
    pvars: Mapping[str, str],
    early: StepLauncher | None,
) -> StepLauncher:
    """The started step agent: the one :func:`prepare_run` started when it is exactly the
    agent this run would start (same sandbox, paths, network, limits), else a new one."""
    launcher = _new_launcher(req, choice, ws, pvars)
    if early is not None:
        if early.config == launcher.config:
            early.wait_ready()
            return early
        early.close()
    launcher.start()
    return launcher


def _run_dirs(req: ModuleRunRequest, ws: Workspace) -> tuple[Path, Path]:
    """(WM_INPUTS_DIR, WM_CACHE_DIR), made if missing."""
    inputs_dir = req.inputs_dir or ws.inputs
    inputs_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = req.cache_dir or (req.runtime_dir / ".deps" / req.module.module_id / req.tenant_id)
    cache_dir.mkdir(parents=True, exist_ok=True)
    return inputs_dir, cache_dir


@dataclass
class PreparedRun:
    """A module run's fresh workspace and its step agent, started before the run's turn.

    The orchestrator prepares the next modules while others run, so the agent (and
    bwrap) come up on an idle core instead of on the run's critical path. The agent
    is built from this run's own policy and is used by this run only, or closed
    (docs/architecture.md "Threat model", "Pre-started sandboxes")."""

    workspace: Workspace
    launcher: StepLauncher | None  # None: the sandbox is chosen and started at run time
    used: bool = False  # run_module adopted the workspace

    def close(self) -> None:
        """Stop the agent if the run did not take it (idempotent)."""
        if self.launcher is not None:
            self.launcher.close()


def prepare_run(req: ModuleRunRequest) -> PreparedRun:
    """Create ``req``'s workspace and start its step agent without waiting for it; pass
    the result to :func:`run_module` with the same request. Raises RunnerError like
    ``run_module`` for an unusable request or workspace."""
    _check_request(req)
    root = workspace_path(req.runtime_dir, req.tenant_id, req.work_order_id, req.module.module_id)
    try:
        ws = create_workspace(root, replace=req.replace_existing)
    except OSError as exc:
        raise RunnerError(f"{root}: cannot create the workspace: {exc.strerror}") from exc
    inputs_dir, cache_dir = _run_dirs(req, ws)
    launcher: StepLauncher | None = None
    try:
        launcher = _new_launcher(
            req, choose_sandbox(req.sandbox), ws, _platform_vars(req, ws, inputs_dir, cache_dir)
        )
        launcher.launch()
    except (SandboxUnavailable, SandboxError):
        launcher = None  # the run chooses (and reports) again
    return PreparedRun(ws, launcher)


def _execute(
    req: ModuleRunRequest,
    ws: Workspace,
    resolved: tuple[Any, dict[str, Any], dict[str, str]],
    masker: Masker,
    rlog: CappedLog,
    t0: float,
    early: StepLauncher | None,
) -> tuple[ExecutionResult, RunFacts]:
    plan, params, penv = resolved
    write_params(ws, params)
    inputs_dir, cache_dir = _run_dirs(req, ws)
    pvars = _platform_vars(req, ws, inputs_dir, cache_dir)
    choice = choose_sandbox(req.sandbox)
    rlog.line(f"sandbox: {choice.mode}" + ("" if req.module.network else ", no network"))
    warnings = [choice.warning] if choice.warning else []
    if choice.mode == "none" and not req.module.network:
        warnings.append("module.yml network: false is not enforced without a sandbox")
    for w in warnings:
        rlog.line(f"warning: {w}")
    env = base_environment(os.environ, {**pvars, **penv}, req.extra_env)
    timeout = req.timeout_seconds
    if timeout is None:
        timeout = req.module.timeout_minutes * 60
    ctx = Contexts(
        {
            "inputs": dict(params),
            "env": {**pvars, **penv},
            "steps": {},
            "github": {"action_path": pvars["GITHUB_ACTION_PATH"], "workspace": str(ws.work)},
            "runner": {"temp": str(ws.tmp), "os": runner_os()},
        }
    )
    launcher = _launcher(req, choice, ws, pvars, early)
    settings = ExecutionSettings(
        workspace=ws,
        action_path=req.module_dir,
        base_env=env,
        contexts=ctx,
        masker=masker,
        runner_log=rlog,
        deadline=t0 + timeout,
        cancel=req.cancel,
        grace_seconds=req.kill_grace_seconds,
        log_cap=req.log_cap_bytes,
        groups=ProcessGroups(launcher),
    )
    try:
        exe = execute(plan, settings)
    finally:
        # no process of this run outlives it (docs/architecture.md "Threat model")
        settings.groups.end(req.kill_grace_seconds)
        launcher.close()
        for lg in settings.step_logs:
            lg.close()
    exe.warnings[:0] = warnings
    facts = RunFacts(
        exit_code=exe.exit_code,
        failed_step=exe.failed_step,
        timed_out=exe.timed_out,
        cancelled=exe.cancelled,
        reason_written=_read_reason(ws),
    )
    return exe, facts


def run_module(req: ModuleRunRequest, prepared: PreparedRun | None = None) -> ModuleRunResult:
    """Run one module in a fresh workspace and return its outcome (see module doc);
    ``prepared`` is what :func:`prepare_run` made for this same request, if anything."""
    try:
        return _run_module(req, prepared)
    finally:
        if prepared is not None:
            prepared.close()


def _workspace(req: ModuleRunRequest, prepared: PreparedRun | None) -> Workspace:
    root = workspace_path(req.runtime_dir, req.tenant_id, req.work_order_id, req.module.module_id)
    if prepared is not None and prepared.workspace.root == root and not prepared.used:
        prepared.used = True
        return prepared.workspace
    try:
        return create_workspace(root, replace=req.replace_existing)
    except OSError as exc:
        raise RunnerError(f"{root}: cannot create the workspace: {exc.strerror}") from exc


def _run_module(req: ModuleRunRequest, prepared: PreparedRun | None) -> ModuleRunResult:
    _check_request(req)
    started = clock.now()
    t0 = time.monotonic()
    module = req.module
    mid = module.module_id
    ws = _workspace(req, prepared)
    secret_values = [v for k, v in os.environ.items() if k in CREDENTIAL_VARS]
    secret_values += list(req.secrets) + list(req.extra_env.values())
    masker = Masker(secret_values)
    rlog = CappedLog(ws.runner_log, masker, req.log_cap_bytes)
    rlog.line(
        f"workmill module run: module {mid} version {module.version} run {req.module_run_id} "
        f"tenant {req.tenant_id} work order {req.work_order_id} mode {req.mode}"
    )
    facts = RunFacts(exit_code=None)
    exe = ExecutionResult(exit_code=None)
    resolved = _resolve(req)
    outcome: Outcome | None = resolved if isinstance(resolved, Outcome) else None
    try:
        if not isinstance(resolved, Outcome):
            early = prepared.launcher if prepared is not None and prepared.used else None
            exe, facts = _execute(req, ws, resolved, masker, rlog, t0, early)
    except (SandboxUnavailable, SandboxError) as exc:
        rlog.line(f"sandbox: {exc}")
        outcome = failed(req.catalog, "INTERNAL_ERROR", f"sandbox: {exc}")
    except Exception as exc:  # the platform's fault, never the tenant's: say so and go on
        rlog.line("internal error:\n" + traceback.format_exc())
        facts = RunFacts(exit_code=None, internal_error=f"{type(exc).__name__}: {exc}")
    report: ContractReport = check_outputs(ws.outputs, module.outputs, req.max_output_bytes)
    if outcome is None:
        outcome = decide(facts, report, req.catalog, mid)
        if report.over_cap:  # however the module ended, outputs over the cap are refused
            outcome = failed(req.catalog, "OUTPUT_CONTRACT_VIOLATION", report.over_cap)
    manifest = build_manifest(mid, req.module_run_id, module.version, report.files)
    write_manifest(ws.manifest_file, manifest)
    finished = clock.now()
    duration_ms = int((time.monotonic() - t0) * 1000)
    rlog.line(
        f"outcome: {outcome.status} {outcome.reason_code or '-'}: {outcome.message} "
        f"({duration_ms} ms)"
    )
    rlog.close()
    return ModuleRunResult(
        module_id=mid,
        module_run_id=req.module_run_id,
        module_version=module.version,
        status=outcome.status,
        reason_code=outcome.reason_code,
        message=masker.mask_text(outcome.message),
        workspace=ws.root,
        outputs_dir=ws.outputs,
        manifest_path=ws.manifest_file,
        manifest=manifest,
        runner_log=ws.runner_log,
        step_logs=[s.log_path for s in exe.steps if s.log_path is not None],
        steps=exe.steps,
        action_outputs=exe.outputs,
        warnings=exe.warnings,
        exit_code=exe.exit_code,
        started_at=clock.iso(started),
        finished_at=clock.iso(finished),
        duration_ms=duration_ms,
    )
