"""Rehearsal of the supply-chain workflows: their `run:` steps, in order, against a git repo.

Each shipped workflow (pr-checks, build-and-pin, promote) is parsed and its job's
`run:` steps are executed with bash exactly as written, with the job's `env:`
(expressions replaced by what GitHub would put there) — except the steps that
install software on the runner (`pip install`, `apt-get`). build-and-pin talks
to the fake GitHub, which records the bot pull request it opens.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import FIXED_NOW
from platform_factory import build_repo
from test_github_support import OWNER_REPO, TOKEN, FakeGithub, GitData, github_workmill_yml
from workmill.github import workflow_templates
from workmill.yamlio import parse_yaml

INSTALLS = ("--require-hashes", "apt-get")
REGISTRY = "maintenance-state/ids/module_registry.csv"


def _job(workflow: str, job: str) -> dict[str, Any]:
    doc = parse_yaml(workflow_templates()[workflow], workflow).data
    return {"env": {**doc.get("env", {}), **doc["jobs"][job].get("env", {})}, **doc["jobs"][job]}


def _env(job: dict[str, Any], values: dict[str, str]) -> dict[str, str]:
    """The job's env as GitHub would set it: literal values, expressions from ``values``."""
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore"}
    env.pop("WORKMILL_REPO", None)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    for key, value in job["env"].items():
        env[key] = values.get(key, "") if "${{" in str(value) else str(value)
    env.update({k: v for k, v in values.items() if k not in job["env"]})
    return env


def rehearse(workflow: str, job: str, root: Path, values: dict[str, str]) -> list[tuple[str, int]]:
    """Run the job's `run:` steps in order until one fails; (step, exit code) of each."""
    spec = _job(workflow, job)
    env = _env(spec, values)
    done = []
    for step in spec["steps"]:
        script = step.get("run")
        if script is None or any(s in script for s in INSTALLS):
            continue
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        name = step.get("id") or step.get("name") or script.split("\n")[0]
        done.append((name, proc.returncode))
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode != 0:
            break
    return done


def _git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
    }
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "WORKMILL_NOW": FIXED_NOW},
        timeout=300,
    )


@pytest.fixture
def fake():
    with FakeGithub(page_size=10) as f:
        yield f


@pytest.fixture
def platform(tmp_path: Path, fake: FakeGithub) -> Path:
    root = build_repo(tmp_path / "platform")
    (root / "workmill.yml").write_text(
        "max_parallel: 2\nrequire_pinned: true\nenvironments: [dev, staging, main]\n"
        + github_workmill_yml(fake.url).replace("store: github\ncache_backend: github\n", "")
    )
    (root / ".gitignore").write_text("runtime/\n.workmill/\n.billing-state/\n")
    assert _cli(root, "maintenance").returncode == 0
    _git(root, "init", "-q", "-b", "dev")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "platform")
    return root


def test_rehearsal__pr_checks_pass_then_fail_on_a_broken_module(platform):
    tests = platform / "modules" / "003" / "tests"
    tests.mkdir()
    (tests / "test_flaky.py").write_text("def test_unit():\n    assert 1 + 1 == 2\n")
    steps = rehearse("pr-checks.yml", "checks", platform, {})
    assert [code for _, code in steps] == [0, 0, 0, 0], steps
    (tests / "test_flaky.py").write_text("def test_unit():\n    assert 1 + 1 == 3\n")
    assert rehearse("pr-checks.yml", "checks", platform, {})[-1][1] != 0  # unit tests count
    (tests / "test_flaky.py").unlink()
    assert [name for name, _ in steps][:3] == ["validate", "maintenance", "smoke"]
    action = platform / "modules" / "002" / "action.yml"
    action.write_text(action.read_text().replace('"run": "cat', '"run": "exit 4; cat'))
    assert _cli(platform, "maintenance").returncode == 0  # the author recompiled
    steps = rehearse("pr-checks.yml", "checks", platform, {})
    assert steps[-1] == ("smoke", 1), steps


def test_rehearsal__build_and_pin_opens_one_bot_pull_request_only_when_pins_change(platform, fake):
    git_data = GitData(fake, base_branch="dev")
    values = {"GH_TOKEN": TOKEN, "GITHUB_REF_NAME": "dev", "GITHUB_REPOSITORY": OWNER_REPO}
    steps = rehearse("build-and-pin.yml", "pin", platform, values)
    assert steps == [("Pin and open the bot pull request when a pin changed", 0)]
    assert git_data.pulls == []  # nothing changed: no request for a pull request at all
    assert not any(p.endswith("/pulls") for _, p in fake.requests)

    # a reviewed module change is merged into dev; the workflow runs on that commit
    (platform / "modules" / "004" / "notes.md").write_text("faster sleep\n")
    _git(platform, "add", "-A")
    _git(platform, "commit", "-q", "-m", "module 004: notes")
    head = _git(platform, "rev-parse", "HEAD")
    git_data.add_commit(head, {REGISTRY: "old"})
    old_pin = _registry(platform)["004"]
    steps = rehearse("build-and-pin.yml", "pin", platform, values)
    assert steps[-1][1] == 0, steps
    assert len(git_data.pulls) == 1
    pr = git_data.pulls[0]
    assert pr["base"]["ref"] == "dev" and pr["head"]["ref"].startswith("workmill/pin-")
    files = git_data.files_at(f"heads/{pr['head']['ref']}")
    new_pins = {r["module_id"]: r["digest"] for r in csv.DictReader(files[REGISTRY].splitlines())}
    assert new_pins["004"] != old_pin
    assert {k: v for k, v in new_pins.items() if k != "004"} == {
        k: v for k, v in _registry(platform).items() if k != "004"
    }
    assert "maintenance-state/maintenance_manifest.csv" in files
    commit = git_data.commits[git_data.refs[f"heads/{pr['head']['ref']}"]]
    assert commit["parents"] == [head]  # on top of what it was computed from

    # the same run again on a fresh checkout: same branch, the open pull request is reused
    _git(platform, "checkout", "-q", "--", ".")
    steps = rehearse("build-and-pin.yml", "pin", platform, values)
    assert steps[-1][1] == 0 and len(git_data.pulls) == 1
    assert TOKEN not in "".join(p.read_text(errors="ignore") for p in _files(platform))


def _registry(root: Path) -> dict[str, str]:
    with (root / REGISTRY).open() as fh:
        return {r["module_id"]: r["digest"] for r in csv.DictReader(fh)}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]


def test_rehearsal__promote_accepts_merged_pins_and_refuses_a_re_pin(platform):
    _git(platform, "checkout", "-q", "-b", "staging")
    steps = rehearse("promote.yml", "promote", platform, {"GITHUB_REF_NAME": "staging"})
    assert steps == [("promote", 0)], steps

    (platform / "modules" / "001" / "hotfix.txt").write_text("changed on staging\n")
    assert _cli(platform, "pin", "001").returncode == 0  # re-pinned on staging: not allowed
    _git(platform, "add", "-A")
    _git(platform, "commit", "-q", "-m", "hotfix on staging")
    steps = rehearse("promote.yml", "promote", platform, {"GITHUB_REF_NAME": "staging"})
    assert steps == [("promote", 1)], steps
