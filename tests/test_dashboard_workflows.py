"""The shipped workflows keep the dashboard true: each job's stage goes pending → running →
success/failure, a failing job included, and no stage is left pending or running.

The jobs are rehearsed with tests/dashboard_rehearsal.py: ``if:`` conditions and
``${{ }}`` values evaluated as GitHub does, the ``workmill dashboard`` steps run
for real against the fake GitHub, every other step given an outcome.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dashboard_fake import DashboardFake
from dashboard_rehearsal import is_dashboard_step, rehearse_job
from test_github_support import OWNER_REPO, TOKEN, github_workmill_yml
from workmill.dashboard._render import read_body
from workmill.github import workflow_templates
from workmill.specs import DashboardConfig
from workmill.yamlio import parse_yaml

SHA = "ab12cd34" * 5
PR = 12
TEMPLATES = workflow_templates()
# jobs that run tenant code hold no write token, so they cannot write the dashboard
TENANT_CODE_JOBS = {("orchestrator.yml", "execute"), ("run-module.yml", "run")}


def _doc(name: str) -> dict:
    return parse_yaml(TEMPLATES[name], name).data


class World:
    def __init__(self, tmp_path: Path, fake: DashboardFake) -> None:
        self.fake = fake
        self.root = tmp_path / "platform"
        self.root.mkdir()
        (self.root / "workmill.yml").write_text(github_workmill_yml(fake.url), encoding="utf-8")
        keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(
            PYTHONWARNINGS="ignore",
            WORKMILL_DASHBOARD_SETTLE_S="0.05",
            GITHUB_ACTIONS="true",
            GITHUB_REPOSITORY=OWNER_REPO,
            GITHUB_SERVER_URL="https://github.com",
            GITHUB_RUN_ID="4242",
            GITHUB_SHA=SHA,
        )

    def github(self, event_name: str, event: dict | None = None) -> dict:
        return {
            "token": TOKEN,
            "sha": SHA,
            "event_name": event_name,
            "event": event or {},
            "repository": OWNER_REPO,
            "run_id": "4242",
            "server_url": "https://github.com",
            "ref_name": "main",
        }

    def stages(self) -> dict[str, str]:
        """Stage → status word as the dashboard shows it now (``failure (cancelled)`` etc.)."""
        for body in self.fake.bodies("issue", PR) + self.fake.bodies("commit", SHA):
            state = read_body(body, SHA)
            if state is not None:
                return {
                    s.key: s.status.value + (f" ({s.word})" if s.word else "") for s in state.stages
                }
        return {}

    def job(self, workflow: str, job: str, event: str = "workflow_dispatch", **kw):
        ev = kw.pop("event_payload", None)
        return rehearse_job(
            _doc(workflow),
            job,
            cwd=self.root,
            base_env=self.env,
            github=self.github(event, ev),
            observe=self.stages,
            **kw,
        )


@pytest.fixture
def world(tmp_path):
    with DashboardFake(page_size=50) as fake:
        yield World(tmp_path, fake)
        assert not any(TOKEN in b for b in fake.bodies("issue") + fake.bodies("commit"))


def _history(seen: list[dict[str, str]], stage: str) -> list[str]:
    """The statuses a stage went through (consecutive repeats collapsed)."""
    out: list[str] = []
    for snapshot in seen:
        s = snapshot.get(stage, "pending")
        if not out or out[-1] != s:
            out.append(s)
    return out


DISPATCH = {"dashboard_pr": str(PR), "dashboard_sha": SHA, "dry_run": "false"}
ORCHESTRATOR_JOBS = ("plan", "execute", "settle", "dashboard")


def test_orchestrator__every_stage_pending_running_success(world):
    seen: list[dict[str, str]] = [world.stages()]
    plan = world.job("orchestrator.yml", "plan", inputs=DISPATCH)
    execute = world.job("orchestrator.yml", "execute", inputs=DISPATCH, needs={"plan": "success"})
    results = {"plan": plan.result, "execute": execute.result}
    settle = world.job("orchestrator.yml", "settle", inputs=DISPATCH, needs=results)
    results["settle"] = settle.result
    final = world.job("orchestrator.yml", "dashboard", inputs=DISPATCH, needs=results)
    for run in (plan, execute, settle, final):
        assert all(code == 0 for code in run.dashboard_exit_codes)
        seen += run.seen
    assert execute.seen == []  # no write token where tenant code runs
    for stage in ("plan", "execute", "settle"):
        assert _history(seen, stage) == ["pending", "running", "success"], stage
    assert len(world.fake.bodies("issue", PR)) == 1


def test_orchestrator__a_failing_plan_leaves_nothing_pending(world):
    failing = frozenset({"Plan (price, credit check, SPEND) and split into shards"})
    plan = world.job("orchestrator.yml", "plan", inputs=DISPATCH, failing=failing)
    assert plan.result == "failure"
    needs = {"plan": "failure"}
    execute = world.job("orchestrator.yml", "execute", inputs=DISPATCH, needs=needs)
    needs["execute"] = "skipped" if execute.result == "skipped" else execute.result
    settle = world.job("orchestrator.yml", "settle", inputs=DISPATCH, needs=needs)
    assert (execute.result, settle.result) == ("skipped", "skipped")
    needs["settle"] = "skipped"
    final = world.job("orchestrator.yml", "dashboard", inputs=DISPATCH, needs=needs)
    seen = plan.seen + final.seen
    assert _history(seen, "plan") == ["running", "failure"]
    now = world.stages()
    assert (now["plan"], now["execute"], now["settle"]) == ("failure", "skipped", "skipped")


def test_orchestrator__a_failed_shard_and_a_cancelled_settle(world):
    world.job("orchestrator.yml", "plan", inputs=DISPATCH)
    needs = {"plan": "success", "execute": "failure"}
    settle = world.job("orchestrator.yml", "settle", inputs=DISPATCH, needs=needs)
    assert settle.seen[0]["execute"] == "failure" and settle.seen[0]["settle"] == "running"
    needs["settle"] = "cancelled"  # e.g. the run was cancelled while settling
    world.job("orchestrator.yml", "dashboard", inputs=DISPATCH, needs=needs)
    assert world.stages()["settle"] == "failure (cancelled)"


def test_maintenance__pr_check_failing_validate(world):
    pr_event = {"pull_request": {"number": PR, "head": {"sha": SHA}}}
    run = world.job(
        "maintenance.yml",
        "check",
        event="pull_request",
        event_payload=pr_event,
        failing=frozenset({"workmill validate"}),
    )
    assert run.result == "failure"
    assert _history(run.seen, "validate") == ["running", "failure"]
    assert _history(run.seen, "maintenance") == ["running", "skipped"]


def test_maintenance__pr_check_passing_and_push_compile(world):
    pr_event = {"pull_request": {"number": PR, "head": {"sha": SHA}}}
    run = world.job("maintenance.yml", "check", event="pull_request", event_payload=pr_event)
    assert _history(run.seen, "validate") == ["running", "success"]
    assert _history(run.seen, "maintenance") == ["running", "success"]
    world.fake.comments.clear()
    push = world.job("maintenance.yml", "compile", event="push")
    assert _history(push.seen, "maintenance") == ["running", "success"]
    assert world.fake.bodies("commit", SHA)  # no PR: the comment is on the commit


def test_workflows__every_default_stage_has_an_owner_and_steps_never_fail_the_job():
    owners: dict[str, list[str]] = {}
    for name, text in TEMPLATES.items():
        doc = parse_yaml(text, name).data
        for job_name, job in doc["jobs"].items():
            steps = [s for s in job.get("steps", []) if is_dashboard_step(s)]
            if (name, job_name) in TENANT_CODE_JOBS:
                assert not steps, f"{name}:{job_name} runs tenant code: no dashboard write"
            for step in steps:
                assert step.get("continue-on-error") is True, f"{name}:{job_name}: {step}"
                for key in re.findall(r"--stage (\S+)", step["run"]):
                    owners.setdefault(key, []).append(f"{name}:{job_name}")
            if steps:  # a comment on a PR, or on a commit
                perms = job.get("permissions", {})
                assert "write" in (perms.get("pull-requests"), perms.get("contents")), job_name
    defaults = set(DashboardConfig().stages)
    for key in owners.keys() - defaults:
        raise AssertionError(
            f"stage {key!r} is updated by {owners[key]} but is not a default stage: "
            "add it to DashboardConfig.stages in specs.py (else the update is refused)"
        )
    for key in defaults - owners.keys():
        raise AssertionError(
            f"default stage {key!r} is updated by no shipped workflow job: it would stay pending"
        )
