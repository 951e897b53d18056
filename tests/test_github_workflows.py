"""The shipped workflows: valid YAML, Actions hygiene (STYLE.md), and `workmill init` writes them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from workmill.github import WORKFLOW_NAMES, workflow_templates
from workmill.yamlio import parse_yaml

SHA_PIN = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}")
STATE_WRITERS = {"orchestrator.yml", "cache-prune.yml", "admin-topup.yml"}
TEMPLATES = workflow_templates()


def _on(doc: dict[str, Any]) -> dict[str, Any]:
    return doc.get("on", doc.get("true"))  # YAML 1.1 reads a bare `on` as true


def _steps(doc: dict[str, Any]):
    for job_name, job in doc["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, job, step


# The actions the workflows use, pinned by full SHA at versions that run on Node 24
# (each SHA read from the action's own repository: `git rev-list -n1 <tag>`, and its
# action.yml says `using: node24`; pypi-publish is a Docker action).
NODE24_PINS = {
    "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1": "v7.0.1",
    "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97": "v7.0.0",
    "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f": "v7.0.0",
    "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c": "v8.0.1",
    "actions/cache@27d5ce7f107fe9357f9df03efb73ab90386fccae": "v5.0.5",
    "actions/github-script@ed597411d8f924073f98dfc5c65a23a2325f34cd": "v8.0.0",
    "actions/deploy-pages@cd2ce8fcbc39b97be8ca5fce6e763baed58fa128": "v5.0.0",
    # composite; runs upload-artifact v7.0.0 (Node 24)
    "actions/upload-pages-artifact@fc324d3547104276b827a68afc52ff2a11cc49c9": "v5.0.0",
}
TENANT_CODE_JOBS = {
    ("orchestrator.yml", "execute"),
    ("run-module.yml", "run"),
    ("pr-checks.yml", "checks"),  # smoke and module unit tests run module code
    ("promote.yml", "promote"),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_workflow__parses_and_follows_actions_hygiene(name):
    doc = parse_yaml(TEMPLATES[name], name).data
    assert isinstance(doc, dict) and doc["jobs"] and _on(doc)
    assert doc["permissions"] == {"contents": "read"}, "top-level permissions must be read-only"
    for job_name, _job, step in _steps(doc):
        if "run" in step:
            assert "${{" not in step["run"], f"{name}:{job_name}: expression pasted into run:"
        if "uses" in step:
            assert SHA_PIN.fullmatch(step["uses"]), f"{name}:{job_name}: {step['uses']} not pinned"
            comment = f"{step['uses']} # {NODE24_PINS.get(step['uses'], '?')}"
            assert comment in TEMPLATES[name], f"{name}: {step['uses']} is not a Node 24 pin"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{name}:{job_name}"
    for job_name, job in doc["jobs"].items():
        perms = job.get("permissions", {})
        if "write" in perms.values():
            assert (name, job_name) not in TENANT_CODE_JOBS
        if perms.get("contents") == "write":  # a writer of the state or of the repository
            held = job.get("concurrency") or doc.get("concurrency") or {}
            assert held.get("cancel-in-progress") is False, f"{name}:{job_name}"
            assert held.get("queue") == "max", f"{name}:{job_name}: a waiting writer is cancelled"
            if name in STATE_WRITERS:
                assert held.get("group") == "workmill-billing-state", f"{name}:{job_name}"
            if "concurrency" in doc:  # a job re-entering its run's group would wait forever
                assert "concurrency" not in job, f"{name}:{job_name}: nested concurrency group"


@pytest.mark.parametrize("name, job_name", sorted(TENANT_CODE_JOBS))
def test_workflow__tenant_code_never_shares_a_job_with_a_write_token(name, job_name):
    doc = parse_yaml(TEMPLATES[name], name).data
    job = doc["jobs"][job_name]
    assert "write" not in job.get("permissions", {}).values()
    assert job["permissions"]["contents"] == "read"
    assert job["env"]["WORKMILL_SANDBOX"] == "bwrap"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "sudo apt-get install -y bubblewrap" in runs
    for step in job["steps"]:  # no step brings in a token of its own
        assert "secrets." not in str(step.get("env", {})) + str(step.get("with", {}))


def test_workflow__installs_only_the_hash_pinned_spec():
    for name, text in TEMPLATES.items():
        assert "--require-hashes --no-deps -r .github/workmill-requirements.txt" in text, name
        assert "WORKMILL_PIP_SPEC" not in text and "pip install workmill" not in text


def test_workflow__every_name_is_shipped_and_state_writers_use_the_token_via_env():
    assert sorted(TEMPLATES) == sorted(f"{n}.yml" for n in WORKFLOW_NAMES)
    for name in STATE_WRITERS:
        doc = parse_yaml(TEMPLATES[name], name).data
        jobs = list(doc["jobs"].values())
        assert any(j.get("env", {}).get("GH_TOKEN") == "${{ github.token }}" for j in jobs)


def test_workflow__hygiene_check_catches_a_pasted_input():
    bad = TEMPLATES["admin-topup.yml"].replace(
        'workmill topup "$@"', "workmill topup ${{ inputs.tenant_id }}"
    )
    doc = parse_yaml(bad, "bad.yml").data
    runs = [s["run"] for _, _, s in _steps(doc) if "run" in s]
    assert any("${{" in r for r in runs)


def test_workflow__cache_prune_is_daily_at_midnight_and_dry_run_by_default():
    doc = parse_yaml(TEMPLATES["cache-prune.yml"], "cache-prune.yml").data
    on = _on(doc)
    assert on["schedule"] == [{"cron": "0 0 * * *"}]
    assert on["workflow_dispatch"]["inputs"]["delete"]["default"] is False
    delete = doc["jobs"]["prune"]["env"]["WM_DELETE"]
    assert "vars.WORKMILL_PRUNE_DELETE == 'true'" in delete and "inputs.delete" in delete


def test_workflow__maintenance_reports_the_prune_dry_run():
    doc = parse_yaml(TEMPLATES["maintenance.yml"], "maintenance.yml").data
    job = doc["jobs"]["prune-report"]
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "workmill cache prune |" in runs and "--delete" not in runs
    assert "GITHUB_STEP_SUMMARY" in runs and "write" not in job["permissions"].values()


def test_init__writes_the_workflows(cli, tmp_path):
    r = cli("init", str(tmp_path / "p"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name, text in TEMPLATES.items():
        assert (tmp_path / "p" / ".github" / "workflows" / name).read_text() == text


UPLOAD = "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"
DOWNLOAD = "actions/download-artifact@3e5f45b2cfb9172054b4087a40e8e0b5a5461e7c"
BY_RUN = {"run-id": "${{ github.run_id }}", "github-token": "${{ github.token }}"}


def _uses(job, action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses") == action]


def test_orchestrator__fans_execute_out_over_a_matrix_from_the_plan():
    doc = parse_yaml(TEMPLATES["orchestrator.yml"], "orchestrator.yml").data
    plan, execute, settle = (doc["jobs"][j] for j in ("plan", "execute", "settle"))
    assert doc["concurrency"] == {
        "group": "workmill-billing-state",
        "cancel-in-progress": False,
        "queue": "max",
    }
    runs = lambda job: "\n".join(s.get("run", "") for s in job["steps"])  # noqa: E731
    assert "workmill state bootstrap" in runs(plan)
    assert '--shards "$WM_MAX_SHARDS" --json' in runs(plan)
    assert plan["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    assert _uses(plan, UPLOAD)[0]["with"]["name"] == "workmill-plan"

    assert execute["needs"] == "plan"
    strategy = execute["strategy"]
    assert strategy["fail-fast"] is False
    assert strategy["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert "inputs.max_runners" in strategy["max-parallel"]
    assert execute["env"]["WM_SHARD"] == "${{ matrix.shard }}"
    assert 'workmill execute --plan-file runtime/plan.json --shard "$WM_SHARD"' in runs(execute)
    assert _uses(execute, DOWNLOAD)[0]["with"] == {
        "name": "workmill-plan",
        "path": "runtime",
        **BY_RUN,
    }
    assert execute["env"]["WORKMILL_STAGE_RELEASES"] == "runtime/publish"
    up = _uses(execute, UPLOAD)[0]
    assert up["if"] == "always()" and up["with"]["name"].startswith("workmill-shard-")
    paths = up["with"]["path"].split()
    # what settle reads: receipts and journals, with runtime/ as the artifact's root
    assert {
        "runtime/plan.json",
        "runtime/shards/",
        "runtime/publish/",
        "runtime/*/*/journal.jsonl",
    } <= set(paths)

    assert settle["needs"] == ["plan", "execute"]
    assert settle["if"].startswith("always()") and "needs.plan.result == 'success'" in settle["if"]
    shards = [s for s in _uses(settle, DOWNLOAD) if "pattern" in s["with"]]
    assert shards[0]["with"] == {
        "pattern": "workmill-shard-*",
        "merge-multiple": True,
        "path": "runtime",
        **BY_RUN,
    }
    assert "workmill release publish runtime/publish" in runs(settle)
    assert 'workmill settle --plan-file runtime/plan.json --shards "$WM_SHARD_COUNT"' in runs(
        settle
    )


def test_orchestrator__example_copy_is_the_template():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "platform" / ".github"
    for name, text in TEMPLATES.items():
        assert (example / "workflows" / name).read_text() == text, name
