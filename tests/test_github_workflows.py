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
    for job_name, job in doc["jobs"].items():
        writes = job.get("permissions", {})
        if name in STATE_WRITERS and "GH_TOKEN" in job.get("env", {}):
            assert writes.get("contents") == "write", f"{name}:{job_name}"
            # the job's own group, or the workflow's (a fanned-out run holds it throughout)
            held = job.get("concurrency") or doc.get("concurrency") or {}
            assert held.get("group") == "workmill-billing-state", f"{name}:{job_name}: no group"
            assert held.get("cancel-in-progress") is False
            if "concurrency" in doc:  # a job re-entering its run's group would wait forever
                assert "concurrency" not in job, f"{name}:{job_name}: nested concurrency group"


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


def test_init__writes_the_workflows(cli, tmp_path):
    r = cli("init", str(tmp_path / "p"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name, text in TEMPLATES.items():
        assert (tmp_path / "p" / ".github" / "workflows" / name).read_text() == text


UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"


def _uses(job, action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses") == action]


def test_orchestrator__fans_execute_out_over_a_matrix_from_the_plan():
    doc = parse_yaml(TEMPLATES["orchestrator.yml"], "orchestrator.yml").data
    plan, execute, settle = (doc["jobs"][j] for j in ("plan", "execute", "settle"))
    assert doc["concurrency"] == {"group": "workmill-billing-state", "cancel-in-progress": False}
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
    assert _uses(execute, DOWNLOAD)[0]["with"] == {"name": "workmill-plan", "path": "runtime"}
    up = _uses(execute, UPLOAD)[0]
    assert up["if"] == "always()" and up["with"]["name"].startswith("workmill-shard-")
    paths = up["with"]["path"].split()
    # what settle reads: receipts and journals, with runtime/ as the artifact's root
    assert {"runtime/plan.json", "runtime/shards/", "runtime/*/*/journal.jsonl"} <= set(paths)

    assert settle["needs"] == ["plan", "execute"]
    assert settle["if"].startswith("always()") and "needs.plan.result == 'success'" in settle["if"]
    shards = [s for s in _uses(settle, DOWNLOAD) if "pattern" in s["with"]]
    assert shards[0]["with"] == {
        "pattern": "workmill-shard-*",
        "merge-multiple": True,
        "path": "runtime",
    }
    assert 'workmill settle --plan-file runtime/plan.json --shards "$WM_SHARD_COUNT"' in runs(
        settle
    )


def test_orchestrator__example_copy_is_the_template():
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "platform" / ".github"
    for name, text in TEMPLATES.items():
        assert (example / "workflows" / name).read_text() == text, name
