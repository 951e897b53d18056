"""Rehearse a shipped GitHub Actions workflow on this machine, as Actions would run it.

Reusable by any test: parse a workflow, then :meth:`WorkflowRun.run` its jobs in
`needs` order. What Actions does and this harness does too:

- every job instance gets a fresh checkout (a copy of the platform repo) and
  fresh ``GITHUB_OUTPUT`` / ``GITHUB_ENV`` / ``GITHUB_STEP_SUMMARY`` files,
  honoured between steps; ``if:`` at job and step level with the status
  functions; ``strategy.matrix`` expanded (a ``fromJSON`` of a job output);
  job ``outputs`` evaluated from step outputs; ``env`` at workflow, job and
  step level rendered with the expression engine workmill ships;
- ``github.token`` is the job's token: the write token when the job's
  ``permissions`` include a write, else a read-only token the fake GitHub
  refuses writes with (so least privilege is exercised, not just declared);
- known ``uses:`` steps are simulated: checkout and setup-python (no-ops),
  upload-artifact (``path`` globs, the least common ancestor as root, hidden
  files only with ``include-hidden-files``, ``overwrite``), download-artifact
  (by ``name`` or ``pattern``, ``merge-multiple``; without ``run-id`` +
  ``github-token`` only this attempt's artifacts are seen, as in the issue it
  guards against), github-script's ``core.exportVariable`` of runner
  variables, cache (no-op); ``run:`` steps run in bash. The pinned-install
  step and ``apt-get`` are checked, not run (no network here);
- a re-run (``attempt=2``) runs only the jobs that failed and those after
  them, seeing the earlier attempts' artifacts by run id;
- :class:`ConcurrencyGroup` queues runs of one group: with ``queue: max`` all
  wait their turn; without it a pending run is cancelled by the next one.

``failing`` makes chosen steps fail (a runner dying mid-step): ``{("execute",
1): "Execute this shard"}``.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard_rehearsal import workflow_contexts
from workmill.runner import expressions
from workmill.runner.evaluate import Contexts, Status, evaluate, evaluate_value, render, truthy
from workmill.yamlio import parse_yaml

PINNED_INSTALL = "pip install --require-hashes"
HEAD_SHA = "c0ffee" + "0" * 34  # the commit the run is for (github.sha, GITHUB_SHA)


@dataclass
class JobResult:
    result: str  # success | failure | skipped | cancelled
    outputs: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    summary: str = ""


@dataclass
class ArtifactStore:
    """The run's artifacts: (attempt, name) → directory."""

    root: Path
    items: dict[str, tuple[int, Path]] = field(default_factory=dict)

    def put(self, name: str, attempt: int, files: list[tuple[Path, str]], overwrite: bool) -> None:
        if name in self.items and not overwrite:
            raise RuntimeError(f"an artifact named {name!r} already exists")
        dest = self.root / f"a{attempt}-{name}"
        shutil.rmtree(dest, ignore_errors=True)
        for src, rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
        self.items[name] = (attempt, dest)

    def visible(self, attempt: int, by_run_id: bool) -> dict[str, Path]:
        return {n: d for n, (a, d) in self.items.items() if by_run_id or a == attempt}


def _workmill_shim(bindir: Path) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    exe = bindir / "workmill"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m workmill "$@"\n', encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def _read_kv(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV lines: ``k=v`` or ``k<<EOF`` … ``EOF``."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            key, marker = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != marker:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


def _glob_files(ws: Path, patterns: list[str], hidden: bool) -> list[tuple[Path, str]]:
    """upload-artifact: files matching the patterns, relative to their common ancestor."""
    found: list[Path] = []
    roots: list[Path] = []
    for pat in patterns:
        base = Path(re.split(r"[*?\[]", pat, maxsplit=1)[0] or ".")
        roots.append(ws / (base if pat.endswith("/") or "*" in pat else base.parent))
        for hit in glob.glob(str(ws / pat), recursive=True):
            p = Path(hit)
            found += [q for q in p.rglob("*") if q.is_file()] if p.is_dir() else [p]
    if not found:
        return []
    root = Path(os.path.commonpath([str(r) for r in roots]))
    out = []
    for f in sorted(set(found)):
        rel = f.relative_to(root).as_posix()
        if not hidden and any(part.startswith(".") for part in Path(rel).parts):
            continue
        out.append((f, rel))
    return out


class WorkflowRun:
    """One run (``run_id``) of a workflow file; :meth:`run` is one attempt."""

    def __init__(
        self,
        workflow: Path,
        repo: Path,
        work: Path,
        *,
        write_token: str,
        read_token: str,
        base_env: Mapping[str, str],
        runner_env: Mapping[str, str] | None = None,
        event: str = "workflow_dispatch",
        inputs: Mapping[str, Any] | None = None,
        variables: Mapping[str, str] | None = None,
        run_id: int = 4242,
    ) -> None:
        self.doc = parse_yaml(workflow.read_text(encoding="utf-8"), workflow.name).data
        self.name = workflow.name
        self.repo, self.work = repo, work
        self.write_token, self.read_token = write_token, read_token
        self.base_env = dict(base_env)
        self.runner_env = dict(runner_env or {})
        self.event, self.inputs, self.vars = event, dict(inputs or {}), dict(variables or {})
        self.run_id = run_id
        self.artifacts = ArtifactStore(work / "artifacts")
        self.results: dict[str, JobResult] = {}
        self.instances: dict[tuple[str, int], JobResult] = {}
        self.attempt = 0
        self.bindir = work / "bin"
        _workmill_shim(self.bindir)

    # ------------------------------------------------------------ orchestration
    def order(self) -> list[str]:
        jobs = self.doc["jobs"]
        done: list[str] = []
        while len(done) < len(jobs):
            for name, job in jobs.items():
                needs = job.get("needs", [])
                needs = [needs] if isinstance(needs, str) else needs
                if name not in done and all(n in done for n in needs):
                    done.append(name)
        return done

    def run(self, failing: Mapping[tuple[str, int], str] | None = None) -> dict[str, JobResult]:
        """One attempt: the first runs every job; a re-run ("re-run failed jobs") the failed
        matrix instances and every job after a re-run one."""
        self.attempt += 1
        rerun = {n for n, r in self.results.items() if r.result in ("failure", "cancelled")}
        for name in self.order():
            if self.attempt > 1 and name not in rerun and not set(self._needs(name)) & rerun:
                continue
            rerun.add(name)
            self.results[name] = self._job(name, failing or {})
        return self.results

    def _needs(self, name: str) -> list[str]:
        needs = self.doc["jobs"][name].get("needs", [])
        return [needs] if isinstance(needs, str) else list(needs)

    def _token(self, job: Mapping[str, Any]) -> str:
        perms = job.get("permissions", self.doc.get("permissions", {}))
        return self.write_token if "write" in dict(perms).values() else self.read_token

    def _values(self, job: Mapping[str, Any]) -> dict[str, Any]:
        needs = {
            n: {"result": self.results[n].result, "outputs": self.results[n].outputs}
            for n in self._needs_of(job)
            if n in self.results
        }
        return {
            "github": {
                "token": self._token(job),
                "run_id": str(self.run_id),
                "run_attempt": str(self.attempt),
                "event_name": self.event,
                "repository": "acme/platform",
                "ref_name": "main",
                "sha": HEAD_SHA,
            },
            "inputs": dict(self.inputs),
            "vars": dict(self.vars),
            "needs": needs,
            "secrets": {},
            "matrix": {},
            "strategy": {},
            "job": {"status": "success"},
            "steps": {},
            "env": {},
            "runner": {"os": "Linux", "temp": str(self.work)},
        }

    def _needs_of(self, job: Mapping[str, Any]) -> list[str]:
        needs = job.get("needs", [])
        return [needs] if isinstance(needs, str) else list(needs)

    def _job(self, name: str, failing: Mapping[tuple[str, int], str]) -> JobResult:
        job = self.doc["jobs"][name]
        values = self._values(job)
        with workflow_contexts():
            needed = [values["needs"][n]["result"] for n in values["needs"]]
            status = Status(failed=any(r in ("failure", "cancelled") for r in needed))
            if not truthy(
                evaluate(expressions.parse_condition(job.get("if")), Contexts(values, status))
            ):
                return JobResult("skipped")
            if any(r != "success" for r in needed) and "if" not in job:
                return JobResult("skipped")
            combos = self._matrix(job, values, status)
        results = []
        for i, m in enumerate(combos):
            kept = self.instances.get((name, i))
            if kept is None or kept.result != "success" or len(combos) == 1:
                kept = self._instance(name, job, i, m, failing)
                self.instances[(name, i)] = kept
            results.append(kept)
        merged = JobResult("success")
        for r in results:
            merged.outputs.update(r.outputs)
            merged.logs += r.logs
            merged.summary += r.summary
            if r.result != "success":
                merged.result = "failure"
        return merged

    def _matrix(self, job: Mapping[str, Any], values: dict[str, Any], status: Status) -> list[dict]:
        strategy = job.get("strategy")
        if not strategy or "matrix" not in strategy:
            return [{}]
        m = strategy["matrix"]
        if isinstance(m, str):
            m = evaluate_value(expressions.parse_template(m), Contexts(values, status))
        keys = [k for k in m if k not in ("include", "exclude")]
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(m[k] for k in keys))
        ]

    # ------------------------------------------------------------ one job instance
    def _instance(
        self, name: str, job: Mapping[str, Any], index: int, matrix: dict, failing: Mapping
    ) -> JobResult:
        ws = self.work / f"attempt{self.attempt}-{name}-{index}"
        shutil.rmtree(ws, ignore_errors=True)
        shutil.copytree(self.repo, ws, ignore=shutil.ignore_patterns(".workmill", "runtime"))
        files = {k: ws.parent / f"{ws.name}.{k}" for k in ("output", "env", "summary")}
        for f in files.values():
            f.write_text("")
        values = self._values(job)
        values["matrix"] = matrix
        values["strategy"] = {"job-index": index, "job-total": 1}
        out = JobResult("success")
        with workflow_contexts():
            ctx = Contexts(values, Status())
            values["env"] = {
                **self._render(self.doc.get("env", {}), ctx),
                **self._render(job.get("env", {}), ctx),
            }
            status = Status()
            for i, step in enumerate(job.get("steps", [])):
                sid = step.get("id") or f"__{i}"
                ok = self._step(step, values, status, ws, files, out, failing.get((name, index)))
                values["steps"][sid] = {
                    "outcome": ok,
                    "conclusion": "success" if step.get("continue-on-error") else ok,
                    "outputs": _read_kv(files["output"]) if step.get("id") else {},
                }
                if ok == "failure" and not step.get("continue-on-error"):
                    status.failed = True
                    values["job"]["status"] = "failure"
            for k, v in (job.get("outputs") or {}).items():
                out.outputs[k] = render(
                    expressions.parse_template(str(v)), Contexts(values, status)
                )
        out.result = values["job"]["status"]
        out.summary = files["summary"].read_text()
        return out

    def _render(self, mapping: Mapping[str, Any], ctx: Contexts) -> dict[str, str]:
        out = {}
        for k, v in mapping.items():
            text = str(v).lower() if isinstance(v, bool) else str(v)
            out[k] = render(expressions.parse_template(text), ctx)
        return out

    def _step(self, step, values, status, ws, files, out, failing_step) -> str:  # type: ignore[no-untyped-def]
        ctx = Contexts(values, status)
        if not truthy(evaluate(expressions.parse_condition(step.get("if")), ctx)):
            return "skipped"
        if failing_step and failing_step in (step.get("name"), step.get("id")):
            out.logs.append(f"{step.get('name')}: failed (injected)")
            return "failure"
        env = {**values["env"], **self._render(step.get("env", {}), ctx), **_read_kv(files["env"])}
        if "uses" in step:
            with_ = self._render(step.get("with", {}), ctx)
            return self._uses(step["uses"].split("@")[0], with_, ws, env, files, out)
        script = str(step["run"])
        if PINNED_INSTALL in script:
            spec = (ws / ".github/workmill-requirements.txt").read_text()
            if spec.startswith("# workmill: NOT PINNED") or "--hash=sha256:" not in spec:
                out.logs.append("install: workmill is not pinned")
                return "failure"
            return "success"  # the pinned workmill is this interpreter's (no network here)
        if "apt-get install" in script:
            return "success" if shutil.which("bwrap") else "failure"
        full = {
            **self.base_env,
            **env,
            "PATH": f"{self.bindir}{os.pathsep}{os.environ.get('PATH', '')}",
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_REF_NAME": "main",
            "GITHUB_SHA": HEAD_SHA,
            "GITHUB_REPOSITORY": "acme/platform",
            "GITHUB_RUN_ID": str(self.run_id),
            "GITHUB_EVENT_NAME": self.event,
        }
        r = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=ws,
            env=full,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out.logs.append(f"$ {script.strip()}\n{r.stdout}{r.stderr}")
        return "success" if r.returncode == 0 else "failure"

    def _uses(self, action, with_, ws, env, files, out) -> str:  # type: ignore[no-untyped-def]
        if action in ("actions/checkout", "actions/setup-python", "actions/cache"):
            return "success"
        if action == "actions/upload-artifact":
            patterns = [p.strip() for p in with_["path"].splitlines() if p.strip()]
            hidden = with_.get("include-hidden-files") == "true"
            found = _glob_files(ws, patterns, hidden)
            if not found and with_.get("if-no-files-found") == "error":
                return "failure"
            if found:
                overwrite = with_.get("overwrite") == "true"
                try:
                    self.artifacts.put(with_["name"], self.attempt, found, overwrite)
                except RuntimeError as exc:
                    out.logs.append(str(exc))
                    return "failure"
            return "success"
        if action == "actions/download-artifact":
            by_run = bool(with_.get("run-id")) and bool(with_.get("github-token"))
            seen = self.artifacts.visible(self.attempt, by_run)
            names = (
                [n for n in seen if glob.fnmatch.fnmatch(n, with_["pattern"])]  # type: ignore[attr-defined]
                if "pattern" in with_
                else [with_["name"]]
            )
            if not names or any(n not in seen for n in names):
                return "failure"
            dest = ws / with_.get("path", ".")
            single = "name" in with_ or with_.get("merge-multiple") == "true"
            for n in names:
                shutil.copytree(seen[n], dest if single else dest / n, dirs_exist_ok=True)
            return "success"
        if action == "actions/github-script":
            script = with_.get("script", "")
            with files["env"].open("a") as fh:
                for var in re.findall(r"exportVariable\('([A-Z_]+)'", script):
                    fh.write(f"{var}={self.runner_env.get(var, '')}\n")
            return "success"
        out.logs.append(f"unsimulated action {action}")
        return "failure"


class ConcurrencyGroup:
    """Runs of one concurrency group, as Actions queues them.

    The first run submitted starts; later ones wait. With ``queue: max`` every
    waiting run keeps its place; without it a waiting run is cancelled when
    another is queued behind it (GitHub's default of one pending run).
    """

    def __init__(self) -> None:
        self.running: tuple[str, Any] | None = None
        self.pending: list[tuple[str, Any]] = []
        self.cancelled: list[str] = []

    def submit(self, label: str, start: Any, queue_max: bool) -> None:
        if self.running is None:
            self.running = (label, start)
            return
        if not queue_max and self.pending:
            self.cancelled += [lbl for lbl, _ in self.pending]
            self.pending.clear()
        self.pending.append((label, start))

    def drain(self) -> list[tuple[str, Any]]:
        done = []
        while self.running is not None:
            label, start = self.running
            done.append((label, start()))
            self.running = self.pending.pop(0) if self.pending else None
        return done


def queue_max(doc_text: str, job: str | None = None) -> bool:
    """Whether the writer's concurrency (workflow's, or ``job``'s) has ``queue: max``."""
    doc = parse_yaml(doc_text, "w.yml").data
    conc = (doc["jobs"][job].get("concurrency") if job else None) or doc.get("concurrency") or {}
    return conc.get("queue") == "max"
