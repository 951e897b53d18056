"""Hostile modules: each attack runs through the `workmill` CLI against a real repo, is
blocked, and the money stays exact (docs/architecture.md "Threat model").

The same attacks run under ``sandbox: bwrap`` and ``sandbox: none``; what only the
sandbox can stop (files outside the workspace) is asserted for bwrap alone.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from hostile_support import (
    CAP,
    GIT_SECRET,
    HOME_SECRET,
    OTHER_SECRET,
    STORE_SECRET,
    add_work_order,
    every_file_bytes,
    hostile_repo,
    kill_leftovers,
    marker_secs,
    processes_with,
    run_json,
    snoop_params,
    still_growing,
    tag_of,
    tokens,
    workmill_env,
)
from reliability_support import check_invariants, cli_run, popen_workmill

from platform_factory import T3, build_repo, work_order

MODES = ["bwrap", "none"]
WORK_ORDERS = {"Hs000001": "101", "Hs000002": "102", "Hs000003": "103", "Hs000004": "104"}
WORK_ORDERS["Hs000005"] = "105"


def _codes(root: Path) -> dict[str, str]:
    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return {r["name"]: r["reason_code"] for r in csv.DictReader(fh)}


def _world(tmp_path: Path, mode: str) -> dict:
    """One repo: every hostile module in its own work order, run once by `workmill run`."""
    root = hostile_repo(tmp_path / "repo", mode, sorted(set(WORK_ORDERS.values())))
    add_work_order(root, "Hs000001", "101", snoop_params(root))
    add_work_order(root, "Hs000002", "102", {"greeting": f"hi\nBASH_ENV={root}/x.sh"})
    add_work_order(root, "Hs000003", "103", {"secs": marker_secs(root)})
    add_work_order(root, "Hs000004", "104")
    add_work_order(root, "Hs000005", "105")
    results = run_json(root)
    return {"mode": mode, "root": root, "results": results}


def _ws(world: dict, wo: str) -> Path:
    return world["root"] / "runtime" / T3 / wo / WORK_ORDERS[wo]


def _published(root: Path, wo: str) -> bytes:
    rel = root / ".workmill" / "releases" / f"wo-{T3}-{wo}"
    return every_file_bytes(rel) if rel.exists() else b""


def check_no_credential_of_workmill_readable(world):
    """Defect 4: env, /proc/<every pid>/environ (incl. $PPID), .git/config: no token."""
    root = world["root"]
    assert world["results"]["Hs000001"]["status"] == "COMPLETED"
    seen = every_file_bytes(_ws(world, "Hs000001")) + _published(root, "Hs000001")
    assert (_ws(world, "Hs000001") / "outputs" / "loot.txt").exists()
    for name, value in tokens(tag_of(root)).items():
        assert value.encode() not in seen, f"{name} leaked to the module ({world['mode']})"


def check_store_git_other_tenants_and_home_invisible_in_bwrap(world):
    if world["mode"] != "bwrap":
        return  # sandbox: none cannot hide files the workmill user can read (threat model)
    seen = every_file_bytes(_ws(world, "Hs000001"))
    for secret in (GIT_SECRET, STORE_SECRET, OTHER_SECRET, HOME_SECRET):
        assert secret.encode() not in seen
    listing = (_ws(world, "Hs000001") / "outputs" / "ls-repo.txt").read_text().split()
    assert ".git" not in listing and "tenants" not in listing and "config" not in listing


def check_github_env_and_path_tricks_refused(world):
    """Defect 5: BASH_ENV/ENV/LD_*/PYTHON*/NODE_OPTIONS/… and a param with a newline."""
    assert world["results"]["Hs000002"]["status"] == "COMPLETED"
    out = _ws(world, "Hs000002") / "outputs"
    assert not (out / "pwned.txt").exists()
    assert (out / "leaked-env.txt").read_text() == ""
    assert (out / "greeting.txt").read_text() == "hi\n"
    log = (_ws(world, "Hs000002") / "logs" / "runner.log").read_text()
    for name in ("BASH_ENV", "ENV", "LD_PRELOAD", "NODE_OPTIONS", "WM_OUTPUTS_DIR", "IFS"):
        assert f"GITHUB_ENV may not set {name}:" in log
    assert "GITHUB_PATH may not add .:" in log


def check_200_children_and_a_daemon_gone_when_the_module_ends(world):
    """Defect 7: nothing the module started runs on after it."""
    assert world["results"]["Hs000003"]["status"] == "COMPLETED"
    left = processes_with(str(marker_secs(world["root"])))
    kill_leftovers(str(marker_secs(world["root"])))
    assert left == []
    heartbeat = world["root"] / ".workmill" / "cache" / "deps" / "103" / T3 / "heartbeat"
    assert heartbeat.exists()
    assert not still_growing(heartbeat)


def check_3gb_output_stopped_by_the_cap(world):
    codes = _codes(world["root"])
    r = world["results"]["Hs000004"]
    assert r["status"] == "FAILED"
    out = _ws(world, "Hs000004") / "outputs"
    sizes = [p.stat().st_size for p in out.iterdir()]
    assert max(sizes) <= CAP + 1
    assert sum(p.stat().st_blocks * 512 for p in out.iterdir()) <= 2 * CAP + 65536
    log = (_ws(world, "Hs000004") / "logs" / "runner.log").read_text()
    assert f"more than max_output_bytes ({CAP})" in log
    assert codes["OUTPUT_CONTRACT_VIOLATION"] in log
    assert _published(world["root"], "Hs000004") == b""


def check_unrestorable_output_names_refused(world):
    r = world["results"]["Hs000005"]
    assert r["status"] == "FAILED"
    log = (_ws(world, "Hs000005") / "logs" / "runner.log").read_text()
    assert "cannot be restored" in log
    assert _published(world["root"], "Hs000005") == b""


def check_money_exact_after_every_attack(world):
    assert check_invariants(world["root"], world["root"].parent / "pulled") == []


CHECKS = [
    check_no_credential_of_workmill_readable,
    check_store_git_other_tenants_and_home_invisible_in_bwrap,
    check_github_env_and_path_tricks_refused,
    check_200_children_and_a_daemon_gone_when_the_module_ends,
    check_3gb_output_stopped_by_the_cap,
    check_unrestorable_output_names_refused,
    check_money_exact_after_every_attack,
]


@pytest.mark.parametrize("mode", MODES)
def test_hostile_modules__every_attack_blocked_and_money_exact(tmp_path, mode):
    """One `workmill run` of every hostile module (defects 4, 5, 7, the output cap and
    names); each check below reports on its own."""
    world = _world(tmp_path, mode)
    failures = []
    for check in CHECKS:
        try:
            check(world)
        except AssertionError as exc:
            failures.append(f"{check.__name__} ({mode}): {exc}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- defect 7: SIGKILL


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_of_workmill_alone__module_processes_die_and_resume_is_clean(tmp_path, mode):
    """Defect 7: SIGKILL workmill only (its descendants are NOT killed by the test)."""
    root = hostile_repo(tmp_path / "repo", mode, ["106"])
    secs = marker_secs(root)
    add_work_order(root, "Lg000001", "106", {"secs": secs})
    heartbeat = root / ".workmill" / "cache" / "deps" / "106" / T3 / "heartbeat"
    try:
        _kill_alone_then_resume(root, tmp_path, secs, heartbeat)
    finally:
        kill_leftovers(str(secs))


def _kill_alone_then_resume(root: Path, tmp_path: Path, secs: int, heartbeat: Path) -> None:
    proc = popen_workmill(root, "run", "--json", extra_env=workmill_env(root))
    deadline = time.monotonic() + 60
    while not heartbeat.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert heartbeat.exists(), proc.stderr.read() if proc.poll() is not None else "no heartbeat"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 10
    while processes_with(f"sleep {secs}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(f"sleep {secs}") == []
    assert not still_growing(heartbeat)
    results = run_json(root)  # the resume finishes the recorded work order
    assert results["Lg000001"]["status"] == "COMPLETED"
    outputs = root / "runtime" / T3 / "Lg000001" / "106" / "outputs"
    assert sorted(p.name for p in outputs.iterdir()) == ["ok.txt"]  # a fresh workspace
    assert check_invariants(root, tmp_path / "pulled", finished=True) == []


# ---------------------------------------------------------------- defect 6: typed params


ARITH = {
    "module_id": "107",
    "name": "Arith",
    "version": "1.0.0",
    "outputs": [{"name": "n.txt", "format": "text"}],
    "timeout_minutes": 1,
}


def _arith_repo(tmp_path: Path, run: str, inputs: dict) -> Path:
    return hostile_repo(tmp_path / "repo", "auto", [], lambda root: _arith(root, run, inputs))


def _arith(root: Path, run: str, inputs: dict) -> None:
    d = root / "modules" / "107"
    d.mkdir(parents=True)
    (d / "module.yml").write_text(json.dumps(ARITH))
    (d / "validation.yml").write_text('{"reasons": []}')
    steps = [{"shell": "bash", "run": run}]
    (d / "action.yml").write_text(
        json.dumps(
            {"name": "Arith", "inputs": inputs, "runs": {"using": "composite", "steps": steps}}
        )
    )
    with (root / "maintenance-state" / "ids" / "module_registry.csv").open("a") as fh:
        fh.write("107,02,Arith,active,\n")
    with (root / "releases" / "billing-state-v1" / "pricing.csv").open("a") as fh:
        fh.write("107,ART,3,1,true\n")


def test_string_param_for_a_numeric_input__rejected_before_charge(tmp_path):
    """Defect 6: `$(( WM_PARAM_N + 1 ))` never sees `a[$(touch …)]`: PARAMS_INVALID, no SPEND."""
    run = 'echo $(( WM_PARAM_N + 1 )) > "$WM_OUTPUTS_DIR/n.txt"'
    root = _arith_repo(tmp_path, run, {"n": {"default": 3}})
    canary = tmp_path / "pwned"
    work_order(
        root, T3, "Ar000001", [{"module_id": "107", "params": {"n": f"a[$(touch {canary})]"}}]
    )
    work_order(root, T3, "Ar000002", [{"module_id": "107", "params": {"n": 41}}])
    results = run_json(root)
    assert results["Ar000001"]["status"] == "REJECTED"
    assert results["Ar000001"]["reason_code"] == _codes(root)["PARAMS_INVALID"]
    assert results["Ar000001"]["spend_credits"] is None
    assert not canary.exists()
    assert results["Ar000002"]["status"] == "COMPLETED"
    n = root / "runtime" / T3 / "Ar000002" / "107" / "outputs" / "n.txt"
    assert n.read_text() == "42\n"
    assert check_invariants(root, tmp_path / "pulled") == []


@pytest.mark.parametrize(
    "expr",
    [
        "${{ INPUTS.n }}",
        "${{ Inputs['n'] }}",
        "${{ format('{0}', inputs.n) }}",
        "${{ github.event.issue.title }}",
        "${{ env.HOME }}",
        "${{ steps.a.outputs.x }}",
        "${{ toJSON(inputs) }}",
    ],
)
def test_validate__refuses_every_expression_pasted_into_run(tmp_path, expr):
    """Defect 6: the `${{ }}`-in-run: check is case-insensitive and covers every form."""
    root = build_repo(tmp_path / "repo")
    _arith(root, f'echo {expr} > "$WM_OUTPUTS_DIR/n.txt"', {"n": {"default": 3}})
    r = cli_run("validate", cwd=root)
    assert r.returncode == 1
    assert "modules/107/action.yml" in r.stdout + r.stderr
    assert "script injection" in r.stdout + r.stderr


def test_validate__platform_paths_may_be_pasted(tmp_path):
    root = build_repo(tmp_path / "repo")
    _arith(root, 'echo "${{ github.action_path }}" > "$WM_OUTPUTS_DIR/n.txt"', {})
    r = cli_run("validate", cwd=root)
    assert "script injection" not in r.stdout + r.stderr


def test_auto_without_bwrap_on_github__fails_closed_before_any_charge(tmp_path):
    root = hostile_repo(tmp_path / "repo", "auto", ["103"])
    add_work_order(root, "Gh000001", "103", {"secs": 5})
    # a PATH without bwrap: only the folder of the Python running workmill
    env = {**workmill_env(root), "GITHUB_ACTIONS": "true", "PATH": os.path.dirname(sys.executable)}
    r = cli_run("run", "--json", cwd=root, env=env)
    assert r.returncode == 1
    assert "needs bubblewrap" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert check_invariants(root, tmp_path / "pulled") == []
    assert not (root / "runtime" / T3 / "Gh000001").exists()
