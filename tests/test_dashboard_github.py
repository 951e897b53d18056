"""The dashboard as a GitHub comment, against the fake GitHub on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dashboard_fake import DashboardFake, failed_lines, run_at_once
from test_github_support import OWNER_REPO, TOKEN, Fault, github_workmill_yml
from workmill.dashboard import (
    MAX_BODY,
    Dashboard,
    GithubCommentStore,
    RunSection,
    Status,
    body_length,
    handle_comment,
    marker,
    render,
)
from workmill.dashboard._model import Stage, State, now_stamp
from workmill.github import GithubClient

SHA = "c0ffee00" * 5
PR = 7
STAGES = [f"s{i}" for i in range(8)]


@pytest.fixture
def fake():
    with DashboardFake(page_size=2) as f:
        yield f
        for c in f.clients:
            c.close()
        # whatever a test did, no comment ever holds the token
        assert not any(TOKEN in b for b in f.bodies("issue") + f.bodies("commit"))
        assert not f.violations


def _client(fake: DashboardFake) -> GithubClient:
    client = GithubClient(TOKEN, fake.url, backoff_s=0.01, max_wait_s=1)
    fake.clients.append(client)
    return client


def _board(fake: DashboardFake, pr: int | None = PR, stages=STAGES, sha: str = SHA) -> Dashboard:
    client = _client(fake)
    store = GithubCommentStore(client, OWNER_REPO, sha, pr, settle_s=0.02)
    return Dashboard(repo=OWNER_REPO, sha=sha, pr=pr, client=client, stages=stages, store=store)


def _platform(tmp_path: Path, fake: DashboardFake, stages=STAGES) -> Path:
    root = tmp_path / "platform"
    root.mkdir()
    extra = "dashboard:\n  stages: [" + ", ".join(stages) + "]\n"
    (root / "workmill.yml").write_text(github_workmill_yml(fake.url, extra), encoding="utf-8")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "WORKMILL_"))}
    return {**env, "GH_TOKEN": TOKEN, "PYTHONWARNINGS": "ignore", **extra}


def _state(body: str) -> State:
    from workmill.dashboard._render import read_body

    state = read_body(body, SHA)
    assert state is not None
    return state


# ------------------------------------------------------------ one comment, edited in place


def test_init_twice__one_comment_on_the_pr(tmp_path, fake):
    root = _platform(tmp_path, fake)
    for _ in range(2):
        r = run_at_once([["dashboard", "init", "--sha", SHA, "--pr", str(PR)]], root, _env())
        assert r[0][0] == 0, r[0][1]
    bodies = fake.bodies("issue", PR)
    assert len(bodies) == 1 and bodies[0].startswith(marker(SHA))
    assert [s.status for s in _state(bodies[0]).stages] == [Status.PENDING] * 8
    assert fake.edits == 0  # the second init found it complete: nothing written


def test_update__edits_in_place_and_finds_the_pr_of_the_commit(fake):
    fake.add_pull(PR, SHA)
    board = _board(fake, pr=None)
    board.load().save()
    board.update_stage("s1", "running", link="https://github.com/acme/platform/actions/runs/1")
    board.save()
    board.update_stage("s1", "success")
    board.save()
    bodies = fake.bodies("issue", PR)
    assert len(bodies) == 1 and fake.edits == 2
    assert _state(bodies[0]).stage("s1").status is Status.SUCCESS
    assert board.where == f"pull request #{PR}"


def test_update__without_a_pr_the_comment_is_on_the_commit(fake):
    board = _board(fake, pr=None)
    board.update_stage("s0", "failure", note="lint")
    board.save()
    assert fake.bodies("issue") == []
    (body,) = fake.bodies("commit", SHA)
    assert _state(body).stage("s0").status is Status.FAILURE and "lint" in body


def test_eight_processes_at_once__one_comment_with_every_stage(tmp_path, fake):
    _eight_at_once(tmp_path, fake, rounds=3)


@pytest.mark.slow
def test_eight_processes_at_once__twenty_rounds(tmp_path, fake):
    _eight_at_once(tmp_path, fake, rounds=20)


def _eight_at_once(tmp_path: Path, fake: DashboardFake, rounds: int) -> None:
    root = _platform(tmp_path, fake)
    env = _env(WORKMILL_DASHBOARD_SETTLE_S="0.5")
    for n in range(rounds):
        sha = f"{n:08x}" * 5
        status = ("success", "failure")[n % 2]
        commands = [
            ["dashboard", "update", "--sha", sha, "--pr", str(PR), "--stage", s, "--status", status]
            for s in STAGES
        ]
        for code, err in run_at_once(commands, root, env):
            assert code == 0, err
        mine = [b for b in fake.bodies("issue", PR) if b.startswith(marker(sha))]
        assert len(mine) == 1, f"round {n}: {len(mine)} comments"
        from workmill.dashboard._render import read_body

        state = read_body(mine[0], sha)
        assert state is not None
        assert {s.key: s.status.value for s in state.stages} == dict.fromkeys(STAGES, status), n


# ------------------------------------------------------------ duplicates, limits, faults


def test_duplicate_made_by_hand__merged_into_the_oldest_and_removed(fake):
    board = _board(fake)
    board.update_stage("s0", "success")
    board.save()
    (first,) = fake.comments
    hand = State(sha=SHA, pr=PR, stages=[Stage(key="s5", status=Status.FAILURE, at=now_stamp())])
    fake.add_comment(render(hand), pr=PR, association="MEMBER")
    board = _board(fake)
    board.update_stage("s2", "running")
    board.save()
    assert list(fake.comments) == [first]
    state = _state(fake.bodies("issue", PR)[0])
    got = {s.key: s.status for s in state.stages if s.status is not Status.PENDING}
    assert got == {"s0": Status.SUCCESS, "s2": Status.RUNNING, "s5": Status.FAILURE}


def test_a_stranger_comment_with_the_marker_is_not_read(fake):
    forged = State(sha=SHA, stages=[Stage(key="s3", status=Status.SUCCESS, at=now_stamp())])
    stranger = {"login": "mallory", "id": 666, "type": "User"}
    fake.add_comment(render(forged), pr=PR, user=stranger, association="NONE")
    board = _board(fake)
    board.update_stage("s0", "success")
    board.save()
    assert len(fake.comments) == 2  # ours was created; the stranger's is left alone, unread
    assert board.state.stage("s3").status is Status.PENDING


def test_a_run_too_long_for_github__cut_with_a_more_line(fake):
    board = _board(fake)
    lines = failed_lines(5000, credits=5)
    link = "https://github.com/acme/platform/actions/runs/42"
    board.set_run(RunSection(at=now_stamp(), lines=lines, link=link, total_spend=25000))
    board.save()  # the fake refuses a body over 65,536 characters with GitHub's 422
    (body,) = fake.bodies("issue", PR)
    assert body_length(body) < MAX_BODY
    more = _state(body).run.more
    assert more > 0 and f"… {more} more work order(s) — [full list in the run]({link})" in body


def test_a_5xx_during_edit_is_retried_without_a_second_comment(fake):
    board = _board(fake)
    board.load().save()
    # a lost response (the edit happened, GitHub answered 502), then a plain 503
    fake.faults.append(Fault("PATCH", r"/issues/comments/\d+$", 502, after=True))
    fake.faults.append(Fault("PATCH", r"/issues/comments/\d+$", 503))
    board.update_stage("s4", "success")
    board.save()
    assert [f.times for f in fake.faults] == [0, 0]
    (body,) = fake.bodies("issue", PR)
    assert _state(body).stage("s4").status is Status.SUCCESS
    assert sum(1 for m, p in fake.requests if m == "POST" and p.endswith("/comments")) == 1


def test_a_5xx_on_create_that_took_effect__the_duplicate_is_merged(fake):
    fake.faults.append(Fault("POST", rf"/issues/{PR}/comments$", 502, after=True))
    board = _board(fake)
    board.update_stage("s1", "success")
    board.save()
    assert len(fake.bodies("issue", PR)) == 1


def test_the_token_never_reaches_the_body(fake, monkeypatch):
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    board = _board(fake)
    board.update_stage("s0", "failure", note=f"auth with {TOKEN} failed")
    board.save()
    (body,) = fake.bodies("issue", PR)
    assert TOKEN not in body and "auth with *** failed" in body


def test_the_cli_update_with_the_token_in_a_note(tmp_path, fake):
    root = _platform(tmp_path, fake)
    argv = ["dashboard", "update", "--sha", SHA, "--pr", str(PR), "--stage", "s0"]
    r = run_at_once([[*argv, "--status", "success", "--note", TOKEN]], root, _env())
    assert r[0][0] == 0, r[0][1]
    (body,) = fake.bodies("issue", PR)
    assert TOKEN not in body


# ------------------------------------------------------------ PR comment commands


def _event(body: str, association: str = "MEMBER", login: str = "octocat") -> dict:
    return {
        "action": "created",
        "issue": {"number": PR, "pull_request": {"url": "x"}},
        "comment": {
            "id": 555,
            "body": body,
            "user": {"login": login, "type": "User"},
            "author_association": association,
        },
        "repository": {"full_name": OWNER_REPO, "default_branch": "main"},
    }


@pytest.mark.parametrize(
    ("body", "dry_run"), [("/workmill plan", "true"), ("/workmill run\n", "false")]
)
def test_command__member_gets_eyes_and_the_workflow_starts(fake, body, dry_run):
    fake.add_pull(PR, SHA)
    cid = fake.add_comment(body, pr=PR)
    event = _event(body)
    event["comment"]["id"] = cid
    outcome = handle_comment(event, _client(fake), OWNER_REPO)
    assert outcome.action == "started"
    assert [r["content"] for r in fake.reactions] == ["eyes"]
    assert fake.dispatches == [
        {
            "workflow": "orchestrator.yml",
            "ref": "main",
            "inputs": {"dry_run": dry_run, "dashboard_pr": str(PR), "dashboard_sha": SHA},
        }
    ]


def test_command__outsider_gets_a_polite_refusal_and_nothing_runs(fake):
    outcome = handle_comment(
        _event("/workmill run", "CONTRIBUTOR", "eve"), _client(fake), OWNER_REPO
    )
    assert outcome.action == "refused"
    assert fake.dispatches == [] and fake.reactions == []
    (refusal,) = fake.bodies("issue", PR)
    assert refusal.startswith("Sorry @eve") and "Nothing was started" in refusal


@pytest.mark.parametrize(
    "body",
    [
        "/workmill run please",
        "/workmill  run",
        "/Workmill run",
        "/workmill run; rm -rf /",
        "please /workmill run",
        "/workmill run\n/workmill plan",
        "/workmill",
        "$(/workmill run)",
    ],
)
def test_command__only_the_exact_words_count(fake, body):
    outcome = handle_comment(_event(body), _client(fake), OWNER_REPO)
    assert outcome.action == "ignored"
    assert fake.requests == []  # nothing at all was asked of GitHub


def test_command__cli_reads_the_event_file(tmp_path, fake):
    fake.add_pull(PR, SHA)
    cid = fake.add_comment("/workmill plan", pr=PR)
    event = _event("/workmill plan")
    event["comment"]["id"] = cid
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    env = _env(GITHUB_EVENT_PATH=str(path), GITHUB_REPOSITORY=OWNER_REPO, GITHUB_API_URL=fake.url)
    ((code, err),) = run_at_once([["dashboard", "command"]], tmp_path, env)
    assert code == 0, err
    assert fake.dispatches[0]["inputs"]["dry_run"] == "true"
