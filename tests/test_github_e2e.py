"""End to end against the fake GitHub: `store: github` and `cache_backend: github` via the CLI.

Bootstrap, eight parallel top-ups, ledger verify, a run that publishes a
release, release list/download, cache prune — every command a subprocess, as
in a workflow — and the token appears nowhere: not in a file, not in any
output, not in anything uploaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXED_NOW
from platform_factory import T1, build_repo, work_order
from test_github_support import TOKEN, FakeGithub, Fault, github_workmill_yml


@pytest.fixture
def fake():
    with FakeGithub(page_size=10) as f:
        yield f


def _env() -> dict[str, str]:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore", "GH_TOKEN": TOKEN}
    for var in ("WORKMILL_REPO", "GITHUB_TOKEN", "GITHUB_REPOSITORY"):
        env.pop(var, None)
    return env


def _wm(root: Path, *args: str, outputs: list[str], env: dict[str, str] | None = None):
    r = subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=root,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    outputs += [r.stdout, r.stderr]
    return r


def _assert_token_nowhere(fake: FakeGithub, root: Path, outputs: list[str]) -> None:
    secret = TOKEN.encode()
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret not in path.read_bytes(), f"token written to {path}"
    assert all(TOKEN not in o for o in outputs)
    assert all(secret not in blob for blob in fake.stored_bytes())


def test_github_backends__bootstrap_topups_run_release_prune_without_leaking_the_token(
    fake, tmp_path
):
    root = build_repo(tmp_path / "repo")
    (root / "workmill.yml").write_text("max_parallel: 1\n" + github_workmill_yml(fake.url))
    work_order(root, T1, "G1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True}])
    out: list[str] = []
    # one secondary rate limit and one 429, each once, on the way
    fake.faults.append(
        Fault(
            "GET",
            r"/releases/tags/",
            403,
            {"Retry-After": "1"},
            {"message": "You have exceeded a secondary rate limit"},
        )
    )
    fake.faults.append(Fault("GET", r"/releases/\d+/assets$", 429, {"Retry-After": "1"}))

    for args in (("maintenance",), ("state", "bootstrap"), ("state", "bootstrap")):
        r = _wm(root, *args, outputs=out)
        assert r.returncode == 0, r.stdout + r.stderr
    assert fake.release_by_tag("billing-state-v1")["make_latest"] == "false"
    assert all(f.times == 0 for f in fake.faults)  # both faults were met and retried

    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "workmill", "topup", "--tenant-id", T1),
                *("--topup-method-id", "AD", "--amount-credits", str(10 + i)),
                *("--reference", f"gh-{i}"),
            ],
            cwd=root,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    for p in procs:
        so, se = p.communicate(timeout=180)
        out += [so, se]
        assert p.returncode == 0, so + se
    r = _wm(root, "balance", "--json", outputs=out)
    assert json.loads(r.stdout)["balances"][T1] == sum(10 + i for i in range(8))
    r = _wm(root, "ledger", "verify", outputs=out)
    assert r.returncode == 0, r.stdout + r.stderr

    r = _wm(root, "run", "--json", outputs=out)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {w["work_order_id"]: w for w in json.loads(r.stdout)["work_orders"]}
    assert rows["G1aaaaaa"]["status"] == "COMPLETED"
    tag = f"wo-{T1}-G1aaaaaa"
    assert fake.release_by_tag(tag) is not None
    r = _wm(root, "release", "list", "--json", outputs=out)
    assert [(i["tag"], i["complete"], i["items"]) for i in json.loads(r.stdout)] == [(tag, True, 1)]
    dest = tmp_path / "dl"
    r = _wm(root, "release", "download", tag, "--dir", str(dest), outputs=out)
    assert r.returncode == 0, r.stderr
    assert len(list(dest.iterdir())) == 2
    r = _wm(root, "ledger", "verify", outputs=out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.returncode == 0

    fake.add_cache("c" * 64, 1234, "2020-01-01T00:00:00Z")
    r = _wm(root, "cache", "prune", "--json", outputs=out)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert [x["cache_key"] for x in report["registered"]] == ["c" * 64]
    assert len(fake.caches) == 1  # a dry run deletes nothing

    assert fake.violations == [] and fake.blob_auth_seen == 0
    _assert_token_nowhere(fake, root, out)


def test_github_backends__missing_token_or_repository_is_one_clear_line(fake, tmp_path):
    root = build_repo(tmp_path / "repo")
    (root / "workmill.yml").write_text(github_workmill_yml(fake.url))
    env = _env()
    env.pop("GH_TOKEN")
    out: list[str] = []
    r = _wm(root, "state", "bootstrap", outputs=out, env=env)
    assert r.returncode == 1 and "GH_TOKEN" in r.stderr and "Traceback" not in r.stderr
    (root / "workmill.yml").write_text(f"store: github\ngithub:\n  api_url: {fake.url}\n")
    r = _wm(root, "state", "bootstrap", outputs=out)
    assert r.returncode == 1 and "github.repository" in r.stderr and "Traceback" not in r.stderr
    env = {**_env(), "GH_TOKEN": "ghp_notTheRightOne_0123456789"}
    (root / "workmill.yml").write_text(github_workmill_yml(fake.url))
    r = _wm(root, "state", "bootstrap", outputs=out, env=env)
    assert r.returncode == 1 and "401 Bad credentials" in r.stderr
    assert "ghp_notTheRightOne" not in r.stderr + r.stdout
