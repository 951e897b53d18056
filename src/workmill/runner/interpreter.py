"""Interpreting a composite ``action.yml`` locally, as GitHub runs it.

:func:`plan_action` checks the whole action before anything runs (unknown
shells, ``uses:`` steps, malformed expressions are refused up front, never
half-way through a paid run); :func:`execute` runs the planned steps.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workmill.errors import WorkmillError
from workmill.runner.commands import (
    CommandFileError,
    parse_key_values,
    parse_path_file,
    read_command_file,
)
from workmill.runner.evaluate import Contexts, evaluate, render, truthy
from workmill.runner.expressions import (
    ExpressionError,
    Node,
    Segment,
    parse_condition,
    parse_template,
)
from workmill.runner.injection import substitute_run
from workmill.runner.logs import CappedLog, Masker
from workmill.runner.process import ProcessGroups, run_step_process
from workmill.runner.workspace import Workspace
from workmill.sandbox import refused_env_name, refused_path_entry
from workmill.specs import ActionSpec, ActionStep

SHELLS = ("bash", "sh", "python")
_SUFFIX = {"bash": ".sh", "sh": ".sh", "python": ".py"}


class ActionRefused(WorkmillError):
    """The action cannot be run locally (unsupported step kind, shell, expression)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def shell_argv(shell: str, script: Path) -> list[str]:
    if shell == "bash":
        return ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    if shell == "sh":
        return ["sh", "-e", str(script)]
    return [sys.executable, str(script)]


@dataclass(frozen=True)
class StepPlan:
    index: int  # 1-based
    step: ActionStep
    label: str  # "step 2 (build)"
    log_name: str
    condition: Node
    run: list[Segment]
    env: dict[str, list[Segment]]
    working_directory: list[Segment] | None
    continue_on_error: Node | bool
    timeout_seconds: float | None


@dataclass(frozen=True)
class ActionPlan:
    steps: list[StepPlan]
    outputs: dict[str, list[Segment]]


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40]
    return s or "run"


class _Planner:
    """Collects every problem of an action while turning its steps into StepPlans."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ids: set[str] = set()

    def parsed(self, where: str, text: str) -> list[Segment]:
        try:
            return parse_template(text)
        except ExpressionError as exc:
            self.problems.append(f"{where}: {exc}")
            return []

    def condition(self, where: str, text: str | bool | None) -> Node:
        """An ``if:`` (a bad one is reported and replaced by the default, success())."""
        try:
            return parse_condition(text)
        except ExpressionError as exc:
            self.problems.append(f"{where}: {exc}")
            return parse_condition(None)

    def continue_on_error(self, where: str, value: str | bool) -> Node | bool:
        if isinstance(value, bool):
            return value
        try:
            return parse_condition(value)
        except ExpressionError as exc:
            self.problems.append(f"{where}: {exc}")
            return False

    def check_shell_and_id(self, where: str, st: ActionStep) -> None:
        shell = st.shell or ""
        if shell not in SHELLS:
            self.problems.append(
                f"{where}.shell: {shell!r} is not supported; use one of {', '.join(SHELLS)}"
            )
        if st.id is not None:
            if st.id.lower() in self.ids:
                self.problems.append(f"{where}.id: {st.id!r} is used by an earlier step")
            self.ids.add(st.id.lower())

    def step(self, i: int, st: ActionStep) -> StepPlan | None:
        where = f"runs.steps[{i - 1}]"
        if st.uses is not None:
            self.problems.append(
                f"{where}: 'uses: {st.uses}' is not supported locally; "
                "write the step as a run: step"
            )
            return None
        self.check_shell_and_id(where, st)
        cond = self.condition(f"{where}.if", st.if_)
        coe = self.continue_on_error(f"{where}.continue-on-error", st.continue_on_error)
        if st.name:
            self.parsed(f"{where}.name", st.name)
        env = {
            k: self.parsed(f"{where}.env.{k}", str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in st.env.items()
        }
        wd = st.working_directory
        wd_segments = self.parsed(f"{where}.working-directory", wd) if wd else None
        run = self.parsed(f"{where}.run", st.run or "")
        return StepPlan(
            index=i,
            step=st,
            label=f"step {i}" + (f" ({st.id or st.name})" if (st.id or st.name) else ""),
            log_name=f"step-{i:02d}-{_slug(st.id or st.name or 'run')}.log",
            condition=cond,
            run=run,
            env=env,
            working_directory=wd_segments,
            continue_on_error=coe,
            timeout_seconds=st.timeout_minutes * 60 if st.timeout_minutes else None,
        )


def plan_action(action: ActionSpec) -> ActionPlan:
    """Every problem that would stop this action, found before anything runs."""
    planner = _Planner()
    if action.runs.using != "composite":
        planner.problems.append(
            f"runs.using: {action.runs.using!r} is not supported; workmill runs composite actions"
        )
    planned = (planner.step(i, st) for i, st in enumerate(action.runs.steps, start=1))
    steps = [sp for sp in planned if sp is not None]
    outputs = {
        name: planner.parsed(f"outputs.{name}.value", out.value or "")
        for name, out in action.outputs.items()
    }
    if planner.problems:
        raise ActionRefused(planner.problems)
    return ActionPlan(steps, outputs)


def check_action(action: ActionSpec) -> list[str]:
    """Problems that would make workmill refuse this action (for ``workmill validate``)."""
    try:
        plan_action(action)
    except ActionRefused as exc:
        return exc.problems
    return []


@dataclass
class StepRecord:
    index: int
    id: str | None
    name: str | None
    outcome: str  # success | failure | skipped | cancelled
    conclusion: str
    exit_code: int | None
    log_path: Path | None
    duration_ms: int
    message: str = ""


@dataclass
class ExecutionResult:
    steps: list[StepRecord] = field(default_factory=list)
    exit_code: int | None = 0
    failed_step: str = ""
    timed_out: bool = False
    cancelled: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExecutionSettings:
    workspace: Workspace
    action_path: Path
    base_env: dict[str, str]
    contexts: Contexts
    masker: Masker
    runner_log: CappedLog
    deadline: float  # time.monotonic()
    cancel: threading.Event | None
    grace_seconds: float
    log_cap: int
    groups: ProcessGroups  # the run's step launcher (sandboxed or not)
    step_logs: list[CappedLog] = field(default_factory=list)


def execute(plan: ActionPlan, s: ExecutionSettings) -> ExecutionResult:
    """Run the steps in order with GitHub's if/continue-on-error/status semantics."""
    run = _Execution(s)
    s.contexts.values.setdefault("steps", {})
    for sp in plan.steps:
        if run.should_stop() or not run.step(sp):
            break
    if not (run.res.timed_out or run.res.cancelled):
        run.render_outputs(plan)
    return run.res


@dataclass
class _Execution:
    """The state one action run carries from step to step."""

    s: ExecutionSettings
    res: ExecutionResult = field(default_factory=ExecutionResult)
    github_env: dict[str, str] = field(default_factory=dict)
    extra_path: list[str] = field(default_factory=list)
    expressions: int = 0

    def next_var(self) -> str:
        self.expressions += 1
        return f"WM_EXPR_{self.expressions}"

    def log(self, msg: str) -> None:
        self.s.runner_log.line(msg)

    def should_stop(self) -> bool:
        if self.s.cancel is not None and self.s.cancel.is_set():
            self.res.cancelled = True
        if time.monotonic() >= self.s.deadline:
            self.res.timed_out = True
        return self.res.cancelled or self.res.timed_out

    def step(self, sp: StepPlan) -> bool:
        """Run (or skip) one step and record it; False when the run must stop here."""
        ctx = self.s.contexts
        t0 = time.monotonic()
        rec = StepRecord(sp.index, sp.step.id, sp.step.name, "skipped", "skipped", None, None, 0)
        self.res.steps.append(rec)
        try:
            run_it, step_failed, message = truthy(evaluate(sp.condition, ctx)), False, ""
        except ExpressionError as exc:
            run_it, step_failed, message = False, True, f"if: {exc}"
        exit_code: int | None = None
        if run_it:
            exit_code, message = self.attempt(sp, rec)
            if self.res.timed_out or self.res.cancelled:
                rec.outcome = rec.conclusion = "cancelled"
                rec.duration_ms = int((time.monotonic() - t0) * 1000)
                self.log(
                    f"{sp.label}: {'timed out' if self.res.timed_out else 'cancelled'}; killed"
                )
                self.res.exit_code = None
                return False
            step_failed = exit_code != 0 or bool(message)
        if not run_it and not step_failed:
            self.log(f"{sp.label}: skipped (if: evaluated false)")
        else:
            self.conclude(sp, rec, step_failed, exit_code, message)
        rec.duration_ms = int((time.monotonic() - t0) * 1000)
        if sp.step.id:
            entry = ctx.values["steps"].setdefault(sp.step.id, {"outputs": {}})
            entry["outcome"] = rec.outcome
            entry["conclusion"] = rec.conclusion
        return True

    def attempt(self, sp: StepPlan, rec: StepRecord) -> tuple[int | None, str]:
        """(exit code, failure message or ''); an expression or command-file error fails it."""
        try:
            return _run_one(
                sp,
                self.s,
                self.s.contexts,
                self.github_env,
                self.extra_path,
                self.next_var,
                self.res,
                rec,
            )
        except (ExpressionError, CommandFileError) as exc:
            return None, str(exc)

    def conclude(
        self, sp: StepPlan, rec: StepRecord, failed: bool, exit_code: int | None, message: str
    ) -> None:
        rec.outcome = "failure" if failed else "success"
        rec.exit_code = exit_code
        rec.message = message
        coe = sp.continue_on_error
        try:
            cont = coe if isinstance(coe, bool) else truthy(evaluate(coe, self.s.contexts))
        except ExpressionError:
            cont = False
        rec.conclusion = "success" if (failed and cont) else rec.outcome
        if not failed:
            self.log(f"{sp.label}: succeeded")
            return
        what = message or f"exited with code {exit_code}"
        self.log(f"{sp.label}: failed: {what}" + (" (continue-on-error)" if cont else ""))
        status = self.s.contexts.status
        if not cont and not status.failed:
            status.failed = True
            self.res.exit_code = exit_code if exit_code not in (0, None) else 1
            self.res.failed_step = f"{sp.label} " + (
                f"exited with code {exit_code}" if not message else f"failed: {message}"
            )

    def render_outputs(self, plan: ActionPlan) -> None:
        for name, segs in plan.outputs.items():
            try:
                self.res.outputs[name] = render(segs, self.s.contexts)
            except ExpressionError as exc:
                self.res.warnings.append(f"outputs.{name}: {exc}")
                self.res.outputs[name] = ""


def _run_one(
    sp: StepPlan,
    s: ExecutionSettings,
    ctx: Contexts,
    github_env: dict[str, str],
    extra_path: list[str],
    next_var,
    res: ExecutionResult,
    rec: StepRecord,
) -> tuple[int | None, str]:
    """Run one step; returns (exit code, failure message or '')."""
    st = sp.step
    shell = st.shell or "bash"
    ws = s.workspace
    step_env = {k: render(v, ctx) for k, v in sp.env.items()}
    # the step's own env is visible to its run: and working-directory, as on GitHub
    saved_env = ctx.values.get("env", {})
    ctx.values["env"] = {**saved_env, **step_env}
    try:
        wd = ws.work
        if sp.working_directory is not None:
            text = render(sp.working_directory, ctx)
            p = Path(text)
            wd = p if p.is_absolute() else ws.work / p
            if not wd.is_dir():
                return None, f"working-directory {text!r} does not exist"
        sub = substitute_run(sp.run, ctx, shell, next_var)
    finally:
        ctx.values["env"] = saved_env
    for w in sub.warnings:
        msg = f"{sp.label}: warning: {w}"
        res.warnings.append(msg)
        s.runner_log.line(msg)
    n = f"{sp.index:02d}"
    script = ws.steps / f"{n}{_SUFFIX[shell]}"
    script.write_text(sub.script, encoding="utf-8")
    files = {
        "GITHUB_OUTPUT": ws.steps / f"{n}.output",
        "GITHUB_ENV": ws.steps / f"{n}.env",
        "GITHUB_PATH": ws.steps / f"{n}.path",
    }
    # not created: `>> "$GITHUB_OUTPUT"` creates it, and an absent file means "nothing"
    env = _step_env(s.base_env, github_env, step_env, sub.env, files, extra_path)
    bad = [k for k, v in env.items() if "\0" in v or "\0" in k or "=" in k or not k]
    if bad:
        return None, f"environment variable {bad[0]!r} has a NUL character or a bad name"
    log = CappedLog(ws.logs / sp.log_name, s.masker, s.log_cap)
    s.step_logs.append(log)
    rec.log_path = log.path
    deadline = s.deadline
    if sp.timeout_seconds is not None:
        deadline = min(deadline, time.monotonic() + sp.timeout_seconds)
    s.runner_log.line(f"{sp.label}: running ({shell}) in {wd}")
    pr = run_step_process(
        shell_argv(shell, script),
        env=env,
        cwd=wd,
        log=log,
        deadline=deadline,
        cancel=s.cancel,
        groups=s.groups,
        grace_seconds=s.grace_seconds,
    )
    if pr.cancelled:
        res.cancelled = True
        return None, "cancelled"
    if pr.timed_out:
        if deadline < s.deadline:  # the step's own timeout-minutes: a step failure
            return None, f"step timed out after {sp.timeout_seconds:g} s"
        res.timed_out = True
        return None, "timed out"
    if pr.error:
        return None, pr.error
    # command files are read whatever the exit code, as GitHub does
    outputs = parse_key_values(read_command_file(files["GITHUB_OUTPUT"]), "GITHUB_OUTPUT")
    new_env = parse_key_values(read_command_file(files["GITHUB_ENV"]), "GITHUB_ENV")
    paths = parse_path_file(read_command_file(files["GITHUB_PATH"]))
    if st.id:
        ctx.values["steps"].setdefault(st.id, {"outputs": {}})["outputs"].update(outputs)
    _apply_command_files(sp.label, s, res, ctx, new_env, paths, github_env, extra_path)
    return pr.exit_code, ""


def _step_env(
    base: dict[str, str],
    github_env: dict[str, str],
    step_env: dict[str, str],
    expr_env: dict[str, str],
    files: dict[str, Path],
    extra_path: list[str],
) -> dict[str, str]:
    """A step's environment: later layers win, the command files' paths last."""
    env = {**base, **github_env, **step_env, **expr_env}
    env.update({k: str(v) for k, v in files.items()})
    if extra_path:
        env["PATH"] = ":".join([*extra_path, env.get("PATH", "")])
    return env


def _apply_command_files(
    label: str,
    s: ExecutionSettings,
    res: ExecutionResult,
    ctx: Contexts,
    new_env: dict[str, str],
    paths: list[str],
    github_env: dict[str, str],
    extra_path: list[str],
) -> None:
    """$GITHUB_ENV / $GITHUB_PATH into later steps, minus what the denylist refuses."""

    def refuse(what: str) -> None:
        msg = f"{label}: warning: {what}; ignored"
        res.warnings.append(msg)
        s.runner_log.line(msg)

    for k, v in new_env.items():
        why = refused_env_name(k)
        if why is not None:
            refuse(f"GITHUB_ENV may not set {k if k.isprintable() else repr(k)}: {why}")
            continue
        github_env[k] = v
        ctx.values.setdefault("env", {})[k] = v
    for p in paths:
        why = refused_path_entry(p)
        if why is not None:
            refuse(f"GITHUB_PATH may not add {p if p.isprintable() else repr(p)}: {why}")
        elif p not in extra_path:
            extra_path.insert(0, p)
