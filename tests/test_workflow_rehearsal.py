"""The shipped workflows rehearsed against the fake GitHub (tests/workflow_rehearsal.py).

A full orchestrator run (plan → two execute shards → settle) settles exactly;
a run whose shard dies settles the rest, and "re-run failed jobs" (attempt 2)
finishes it from the artifacts of attempt 1; top-ups queued behind a run all
land, and would not without ``queue: max``. Execute shards hold a read-only
token throughout: any write they tried would be refused and recorded.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actions_cache_fake import ActionsCacheFake
from conftest import FIXED_NOW
from dashboard_fake import DashboardFake
from platform_factory import T1, T2, build_repo, work_order
from test_github_support import READ_TOKEN, TOKEN, FakeGithub, github_workmill_yml
from workflow_rehearsal import ConcurrencyGroup, WorkflowRun, queue_max
from workmill.github import write_workflows

# Each rehearsal runs ~30 workmill processes (1-4 minutes on a loaded 2-core machine).
pytestmark = pytest.mark.slow

PINNED = "workmill==0.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n"


@pytest.fixture
def fake():
    with DashboardFake(page_size=50) as f:  # the workflows also update the dashboard
        yield f
        assert f.violations == []


def _env() -> dict[str, str]:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore"}
    for var in ("WORKMILL_REPO", "GH_TOKEN", "GITHUB_TOKEN", "GITHUB_REPOSITORY"):
        env.pop(var, None)
    return env


def _wm(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=root,
        env={**_env(), "GH_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=180,
    )


def _platform(fake: FakeGithub, tmp: Path) -> Path:
    root = build_repo(tmp / "repo")
    (root / "workmill.yml").write_text("max_parallel: 1\n" + github_workmill_yml(fake.url))
    write_workflows(root, overwrite=True)
    (root / ".github/workmill-requirements.txt").write_text(PINNED)
    work_order(root, T1, "R1aaaaaa", [{"module_id": "001", "purchase_release_artifacts": True}])
    work_order(root, T2, "R2aaaaaa", [{"module_id": "001", "params": {"n": 3}}])
    for args in (("maintenance",), ("state", "bootstrap")):
        r = _wm(root, *args)
        assert r.returncode == 0, r.stdout + r.stderr
    for tenant in (T1, T2):
        r = _wm(root, "topup", "--tenant-id", tenant, "--topup-method-id", "AD",
                "--amount-credits", "100", "--reference", f"seed-{tenant}")  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
    return root


def _workflow(fake, root: Path, tmp: Path, name: str, **kw) -> WorkflowRun:
    cache = ActionsCacheFake(fake)
    return WorkflowRun(
        root / ".github/workflows" / name,
        root,
        tmp / f"run-{name}",
        write_token=TOKEN,
        read_token=READ_TOKEN,
        base_env=_env(),
        runner_env=cache.env,
        **kw,
    )


def _state(root: Path, tmp: Path) -> dict[str, list[dict[str, str]]]:
    out = tmp / "pulled"
    r = _wm(root, "state", "pull", "--billing-state-dir", str(out))
    assert r.returncode == 0, r.stderr
    tables = {}
    for p in out.glob("*.csv"):
        with p.open(newline="") as fh:
            tables[p.name] = list(csv.DictReader(fh))
    return tables


def _assert_settled_exactly(root: Path, tmp: Path) -> dict[str, list[dict[str, str]]]:
    t = _state(root, tmp)
    final = {r["work_order_id"]: r["status"] for r in t["workorders_log.csv"]}
    assert final == {"R1aaaaaa": "COMPLETED", "R2aaaaaa": "COMPLETED"}
    by_type: dict[tuple[str, str], int] = {}
    for tx in t["transactions.csv"]:
        k = (tx["tenant_id"], tx["type"])
        by_type[k] = by_type.get(k, 0) + 1
    assert by_type[(T1, "SPEND")] == 1 and by_type[(T2, "SPEND")] == 1  # charged once each
    r = _wm(root, "ledger", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    balances = json.loads(_wm(root, "balance", "--json").stdout)["balances"]
    for tenant in (T1, T2):
        txs = [int(x["amount_credits"]) for x in t["transactions.csv"] if x["tenant_id"] == tenant]
        assert balances[tenant] == sum(txs)
    return t


def test_rehearsal__orchestrator_run_settles_exactly_with_least_privilege(fake, tmp_path):
    root = _platform(fake, tmp_path)
    run = _workflow(fake, root, tmp_path, "orchestrator.yml", inputs={"shards": "2"})
    results = run.run()
    assert {n: results[n].result for n in ("plan", "execute", "settle")} == {
        "plan": "success",
        "execute": "success",
        "settle": "success",
    }, "\n".join(results["settle"].logs + results["execute"].logs)
    assert len([k for k in run.instances if k[0] == "execute"]) == 2  # the matrix fanned out
    t = _assert_settled_exactly(root, tmp_path)
    assert fake.write_denied == []  # shards never tried to write with their read-only token
    # the release was published by settle, manifest last, with GitHub's own ids recorded
    rel = fake.release_by_tag(f"wo-{T1}-R1aaaaaa")
    names = [a["name"] for a in sorted(fake.assets.values(), key=lambda a: a["id"])
             if a["_release"] == rel["id"]]  # fmt: skip
    assert names[-1].endswith("-manifest.json") and len(names) == 2
    assert t["github_releases_map.csv"][0]["github_release_id"] == str(rel["id"])
    assert all(a["github_asset_id"] for a in t["github_assets_map.csv"])


def test_rehearsal__a_dead_shard_is_finished_by_re_running_failed_jobs(fake, tmp_path):
    root = _platform(fake, tmp_path)
    run = _workflow(fake, root, tmp_path, "orchestrator.yml", inputs={"shards": "2"})
    first = run.run(failing={("execute", 1): "Execute this shard"})
    assert first["execute"].result == "failure"
    assert first["settle"].result == "failure"  # settles the finished shard, names the other
    t = _state(root, tmp_path)
    done = {r["work_order_id"] for r in t["workorders_log.csv"] if r["status"] == "COMPLETED"}
    assert len(done) == 1
    second = run.run()  # attempt 2: the failed shard, then settle
    assert second["execute"].result == "success" and second["settle"].result == "success", (
        "\n".join(second["settle"].logs)
    )
    assert run.attempt == 2
    _assert_settled_exactly(root, tmp_path)
    assert fake.write_denied == []


def test_rehearsal__re_run_without_run_id_would_not_see_attempt_1(fake, tmp_path):
    """Why the workflows pass run-id + github-token: attempt 2 sees attempt 1's artifacts."""
    root = _platform(fake, tmp_path)
    wf = root / ".github/workflows/orchestrator.yml"
    text = wf.read_text()
    wf.write_text(text.replace("          run-id: ${{ github.run_id }}\n", ""))
    run = _workflow(fake, root, tmp_path, "orchestrator.yml", inputs={"shards": "2"})
    run.run(failing={("execute", 1): "Execute this shard"})
    second = run.run()
    assert second["execute"].result == "failure"  # the plan artifact is out of its sight


def test_rehearsal__top_ups_queued_behind_a_run_all_land(fake, tmp_path):
    root = _platform(fake, tmp_path)
    group = ConcurrencyGroup()
    orchestrator = (root / ".github/workflows/orchestrator.yml").read_text()
    topup_text = (root / ".github/workflows/admin-topup.yml").read_text()
    run = _workflow(fake, root, tmp_path, "orchestrator.yml", inputs={"shards": "1"})
    group.submit("run", run.run, queue_max(orchestrator))
    for i in (1, 2):
        t = _workflow(
            fake, root, tmp_path / f"t{i}", "admin-topup.yml",
            inputs={"tenant_id": T1, "amount_credits": str(7 * i), "reference": f"inv-{i}",
                    "topup_method_id": "AD", "payment_id": ""},
        )  # fmt: skip
        group.submit(f"topup-{i}", t.run, queue_max(topup_text, "topup"))
    done = group.drain()
    assert [label for label, _ in done] == ["run", "topup-1", "topup-2"]
    assert group.cancelled == []
    assert all(r["topup"].result == "success" for label, r in done[1:])
    t = _assert_settled_exactly(root, tmp_path)
    refs = {x["reference"] for x in t["transactions.csv"] if x.get("reference")}
    assert {"inv-1", "inv-2"} <= refs
    # without queue: max, GitHub keeps one pending run: the first top-up would be cancelled
    legacy = ConcurrencyGroup()
    for label in ("run", "topup-1", "topup-2"):
        legacy.submit(label, lambda: None, queue_max(topup_text.replace("queue: max", ""), "topup"))
    assert legacy.cancelled == ["topup-1"]
