"""Rehearse a shipped workflow job's dashboard steps, as GitHub would run them.

Every step's ``if:`` is evaluated with workmill's own GitHub-expression engine
(status functions see earlier failures; ``job.status``, ``steps.<id>.outcome``,
``needs.<job>.result`` are filled in as GitHub fills them). Steps that call
``workmill dashboard`` are executed for real — their ``run:`` script in bash,
with their ``env:`` rendered — against a fake GitHub; every other step is only
given an outcome (``failing`` names the ones that fail). After each dashboard
step, ``observe()`` records what the dashboard shows.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from workmill.runner import expressions
from workmill.runner.evaluate import Contexts, Status, evaluate, render, truthy


@contextlib.contextmanager
def workflow_contexts() -> Iterator[None]:
    """Let the expression parser accept the contexts a workflow (not an action) has."""
    every = tuple(expressions.CONTEXTS) + tuple(expressions.FOREIGN_CONTEXTS)
    with mock.patch.object(expressions, "CONTEXTS", every):
        yield


def is_dashboard_step(step: Mapping[str, Any]) -> bool:
    """A step that writes a stage (``workmill dashboard update`` / ``init``)."""
    return re.search(r"workmill dashboard (update|init)\b", str(step.get("run", ""))) is not None


@dataclass
class JobRehearsal:
    result: str  # success | failure | skipped
    seen: list[Any] = field(default_factory=list)  # observe() after each dashboard step
    dashboard_exit_codes: list[int] = field(default_factory=list)


def _workmill_on_path(tmp: Path) -> str:
    """A ``workmill`` on PATH that is this interpreter's workmill."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / "workmill"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m workmill "$@"\n', encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"


def _render_env(values: Mapping[str, Any], ctx: Contexts) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        text = str(v).lower() if isinstance(v, bool) else str(v)
        out[k] = render(expressions.parse_template(text), ctx)
    return out


def rehearse_job(
    doc: Mapping[str, Any],
    job_name: str,
    *,
    cwd: Path,
    base_env: Mapping[str, str],
    github: Mapping[str, Any],
    observe: Callable[[], Any],
    failing: frozenset[str] = frozenset(),
    needs: Mapping[str, str] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> JobRehearsal:
    """Run one job; ``failing``: names or ids of the (non-dashboard) steps that fail."""
    job = doc["jobs"][job_name]
    values: dict[str, Any] = {
        "github": dict(github),
        "inputs": dict(inputs or {}),
        "needs": {k: {"result": v, "outputs": {}} for k, v in (needs or {}).items()},
        "vars": {},
        "matrix": {},
        "secrets": {},
        "job": {"status": "success"},
        "steps": {},
        "env": {},
        "runner": {"os": "Linux", "temp": str(cwd)},
    }
    out = JobRehearsal("success")
    with workflow_contexts():
        # at job level, success() means every needed job succeeded
        status = Status(failed=any(r in ("failure", "cancelled") for r in (needs or {}).values()))
        job_if = expressions.parse_condition(job.get("if"))
        if not truthy(evaluate(job_if, Contexts(values, status))):
            return JobRehearsal("skipped")
        values["env"] = {
            **_render_env(doc.get("env", {}), Contexts(values, status)),
            **_render_env(job.get("env", {}), Contexts(values, status)),
        }
        status = Status()  # the steps' own status functions start afresh
        path = _workmill_on_path(cwd)
        for i, step in enumerate(job.get("steps", [])):
            outcome = _step(step, values, status, failing, cwd, base_env, path, out, observe)
            sid = step.get("id") or f"__{i}"
            ok = outcome != "failure" or bool(step.get("continue-on-error"))
            values["steps"][sid] = {"outcome": outcome, "conclusion": outcome if ok else "failure"}
            if not ok:
                status.failed = True
                values["job"]["status"] = "failure"
    out.result = values["job"]["status"]
    return out


def _step(step, values, status, failing, cwd, base_env, path, out, observe) -> str:  # type: ignore[no-untyped-def]
    ctx = Contexts(values, status)
    if not truthy(evaluate(expressions.parse_condition(step.get("if")), ctx)):
        return "skipped"
    if not is_dashboard_step(step):
        named = {step.get("name"), step.get("id"), step.get("uses"), step.get("run")}
        return "failure" if named & failing else "success"
    env = {**base_env, **values["env"], **_render_env(step.get("env", {}), ctx), "PATH": path}
    proc = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=cwd, env=env, capture_output=True, text=True
    )
    out.dashboard_exit_codes.append(proc.returncode)
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
    out.seen.append(observe())
    return "success" if proc.returncode == 0 else "failure"
