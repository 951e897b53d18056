"""Status dashboard: the model, the Markdown body, the local store and the CLI on one machine."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli
from dashboard_fake import failed_lines, run_at_once
from workmill.dashboard import (
    MAX_BODY,
    Dashboard,
    RunSection,
    Stage,
    State,
    Status,
    body_length,
    marker,
    parse_status,
    render,
    run_section,
    step_summary,
)
from workmill.dashboard._model import merge
from workmill.dashboard._render import read_body
from workmill.errors import UsageError

SHA = "4f2c9e1a" * 5
STAMP = "2026-11-23T12:00:00+00:00"


def _repo(tmp_path: Path, stages: list[str] | None = None) -> Path:
    root = tmp_path / "platform"
    root.mkdir()
    text = "store: local\n"
    if stages is not None:
        text += "dashboard:\n  stages: [" + ", ".join(stages) + "]\n"
    (root / "workmill.yml").write_text(text, encoding="utf-8")
    return root


# ------------------------------------------------------------ model


def test_parse_status__github_cancelled_is_a_failure_that_shows_the_word():
    assert parse_status("cancelled") == (Status.FAILURE, "cancelled")
    assert parse_status("success") == (Status.SUCCESS, None)
    with pytest.raises(UsageError, match="not a dashboard status"):
        parse_status("done")


def test_update_stage__unknown_stage_names_the_config_field(tmp_path):
    board = Dashboard(repo=_repo(tmp_path), sha=SHA)
    with pytest.raises(UsageError, match=r"dashboard.stages: validate, maintenance, plan"):
        board.update_stage("deploy", "running")


def test_update_stage__link_with_credentials_is_refused(tmp_path):
    board = Dashboard(repo=_repo(tmp_path), sha=SHA)
    with pytest.raises(UsageError, match="without credentials"):
        board.update_stage("plan", "running", link="https://user:pw@example.com/x")


stage_st = st.builds(
    Stage,
    key=st.sampled_from(["a", "b", "c", "d"]),
    status=st.sampled_from(list(Status)),
    at=st.one_of(
        st.none(), st.sampled_from([STAMP, "2026-11-23T12:00:01+00:00", "2026-11-24T00:00:00Z"])
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(stage_st, max_size=4), min_size=1, max_size=4))
def test_merge__every_stage_of_every_copy_survives_at_its_newest(copies):
    states = [State(sha=SHA, stages=list({s.key: s for s in c}.values())) for c in copies]
    merged = merge(states)
    for state in states:
        for s in state.stages:
            have = merged.stage(s.key)
            assert have is not None
            assert have == s or have.newer_than(s)
    # the order of the copies does not change what is kept
    back = merge(list(reversed(states)))
    assert {s.key: s.status for s in back.stages} == {s.key: s.status for s in merged.stages}


# ------------------------------------------------------------ render


def test_render__hostile_note_cannot_break_the_table_or_the_hidden_state():
    note = "a | b\nc --> <!-- @octocat [x](javascript:1) `code`"
    state = State(sha=SHA, stages=[Stage(key="plan", status=Status.FAILURE, note=note, at=STAMP)])
    body = render(state)
    assert body.startswith(marker(SHA) + "\n")
    row = next(line for line in body.splitlines() if line.startswith("| `plan`"))
    assert row.count(" | ") == 4  # five cells: the pipe in the note is escaped
    assert "@octocat" not in body and "<!-- @" not in body
    assert body.count("-->") == 2  # the marker's and the hidden state's, nothing from the note
    assert read_body(body, SHA) == state


def test_render__cancelled_is_shown_as_failure_with_the_word():
    stage = Stage(key="execute", status=Status.FAILURE, word="cancelled", at=STAMP)
    body = render(State(sha=SHA, stages=[stage]))
    assert "❌ failure (cancelled)" in body


def test_render__a_run_too_long_for_github_is_cut_with_a_more_line():
    lines = failed_lines(3000, credits=10)
    run = RunSection(at=STAMP, lines=lines, link="https://github.com/acme/p/actions/runs/7")
    state = State(sha=SHA, stages=[Stage(key="plan")], run=run)
    body = render(state)
    assert body_length(body) < MAX_BODY
    back = read_body(body, SHA)
    assert back is not None and back.run is not None
    kept = len(back.run.lines)
    assert 0 < kept < 3000 and back.run.more == 3000 - kept
    assert f"… {3000 - kept} more work order(s) — [full list in the run]" in body
    assert "103002001 BAD\\_INPUT (module 002)" in body  # Markdown-escaped in the table


def test_run_section__failures_carry_reason_names():
    rows = [
        {
            "work_order_id": "A3Partl1",
            "tenant_id": "Ag3ncy",
            "status": "FAILED",
            "reason_code": "103002001",
            "spend_credits": 60,
            "refund_credits": 45,
            "modules": [
                {"module_id": "001", "status": "COMPLETED", "reason_code": ""},
                {"module_id": "002", "status": "FAILED", "reason_code": "103002001"},
            ],
        },
        {"work_order_id": "D1Susp01", "tenant_id": "Zz0ld1", "status": "REJECTED",
         "reason_code": "001000002", "spend_credits": None, "refund_credits": None},
    ]  # fmt: skip
    names = {"103002001": "BAD_INPUT", "001000002": "TENANT_SUSPENDED"}
    section = run_section(rows, lambda c: f"{c} {names[c]}")
    assert section.lines[0].reasons == ["103002001 BAD_INPUT (module 002)"]
    assert section.lines[1].reasons == ["001000002 TENANT_SUSPENDED"]
    assert (section.total_spend, section.total_refund) == (60, 45)
    assert section.counts == {"FAILED": 1, "REJECTED": 1}
    assert "103002001 BAD\\_INPUT (module 002)" in step_summary(section)


# ------------------------------------------------------------ local store + CLI


# a developer's shell (or CI on GitHub) may have these set: the tests choose their own
NO_DASHBOARD_ENV = {"GITHUB_SHA": "", "WORKMILL_DASHBOARD_SHA": "", "WORKMILL_DASHBOARD_PR": ""}


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return run_cli(*args, cwd=cwd, env={**NO_DASHBOARD_ENV, "GITHUB_ACTIONS": "", **(env or {})})


def test_cli_local__init_twice_update_and_show(tmp_path):
    root = _repo(tmp_path)
    for _ in range(2):
        r = _cli("dashboard", "init", "--sha", SHA, cwd=root)
        assert r.returncode == 0, r.stderr
    files = list((root / ".workmill" / "dashboards").glob("*.md"))
    assert [f.name for f in files] == [f"{SHA}.md"]
    r = _cli(
        "dashboard", "update", "--sha", SHA, "--stage", "execute", "--status", "cancelled",
        "--link", "https://github.com/acme/p/actions/runs/9", cwd=root,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "execute: failure" in r.stdout
    r = _cli("dashboard", "show", "--sha", SHA, cwd=root, env={"COLUMNS": "160"})
    assert r.returncode == 0, r.stderr
    assert "❌ failure (cancelled)" in r.stdout and "⏳ pending" in r.stdout
    r = _cli("dashboard", "show", "--sha", SHA, "--json", cwd=root)
    data = json.loads(r.stdout)
    assert [s["key"] for s in data["stages"]] == [
        "validate", "maintenance", "plan", "execute", "settle", "smoke",
    ]  # fmt: skip
    assert data["stages"][3]["status"] == "failure"


def test_cli_local__bad_input_is_one_line_and_exit_2(tmp_path):
    root = _repo(tmp_path)
    for args, needle in (
        (["--stage", "nope", "--status", "success"], "not a dashboard stage"),
        (["--stage", "plan", "--status", "green"], "not a dashboard status"),
        (["--stage", "plan", "--status", "success", "--link", "file:///etc"], "--link"),
    ):
        r = _cli("dashboard", "update", "--sha", SHA, *args, cwd=root)
        assert r.returncode == 2, r.stderr
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert "Traceback" not in r.stderr
    r = _cli("dashboard", "show", "--sha", "not-a-sha", cwd=root)
    assert r.returncode == 2 and "--sha" in r.stderr


def test_cli_local__sha_defaults_to_git_head(tmp_path):
    root = _repo(tmp_path)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    r = _cli("dashboard", "update", "--stage", "plan", "--status", "success", cwd=root)
    assert r.returncode == 0, r.stderr
    assert (root / ".workmill" / "dashboards" / f"{head.strip()}.md").is_file()


def test_local_store__eight_processes_at_once_keep_every_stage(tmp_path):
    stages = [f"s{i}" for i in range(8)]
    root = _repo(tmp_path, stages)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    commands = [
        ["dashboard", "update", "--sha", SHA, "--stage", s, "--status", "success"] for s in stages
    ]
    for code, err in run_at_once(commands, root, env):
        assert code == 0, err
    state = Dashboard(repo=root, sha=SHA).load().state
    assert {s.key: s.status for s in state.stages} == dict.fromkeys(stages, Status.SUCCESS)


# ------------------------------------------------------------ the orchestrator's run


def test_run__writes_step_summary_and_the_dashboard_with_reason_names(tmp_path, cli):
    from platform_factory import T1, build_repo, prepare, work_order

    repo = build_repo(tmp_path / "repo")
    work_order(repo, T1, "W1aaaaaa", [{"module_id": "001"}])
    work_order(repo, T1, "W2aaaaaa", [{"module_id": "003", "params": {"fail": "E01"}}])
    prepare(cli, repo, {T1: 1000})
    summary = tmp_path / "summary.md"
    env = {"GITHUB_STEP_SUMMARY": str(summary), "WORKMILL_DASHBOARD_SHA": SHA}
    r = cli("run", cwd=repo, env=env)
    assert r.returncode == 0, r.stderr
    text = summary.read_text(encoding="utf-8")
    assert "`W1aaaaaa`" in text and "COMPLETED" in text
    line = next(ln for ln in text.splitlines() if "W2aaaaaa" in ln)
    assert "FAILED" in line and "BROKEN (module 003)" in line
    state = Dashboard(repo=repo, sha=SHA).load().state
    assert state.run is not None
    got = {ln.work_order_id: (ln.status, ln.spend, ln.refund) for ln in state.run.lines}
    assert got == {"W1aaaaaa": ("COMPLETED", 10, 0), "W2aaaaaa": ("FAILED", 30, 30)}
    # a later run with nothing to do leaves the last run on the dashboard
    assert cli("run", cwd=repo, env=env).returncode == 0
    assert Dashboard(repo=repo, sha=SHA).load().state.run == state.run
