"""Pre-started sandboxes: a module run's step agent started before the run's turn
(docs/architecture.md "Pre-started sandboxes")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from platform_factory import T1, build_repo, prepare, work_order
from test_runner_support import CODES, request
from workmill.runner import prepare_run, run_module
from workmill.sandbox import SandboxUnavailable, StepLauncher, choose_sandbox

COPY_INPUT = 'cat "$WM_INPUTS_DIR/dep/in.txt" > "$WM_OUTPUTS_DIR/out.txt"'


def _modes() -> list[str]:
    try:
        choose_sandbox("bwrap")
    except SandboxUnavailable:
        return ["none"]
    return ["none", "bwrap"]


@pytest.fixture
def starts(monkeypatch) -> list[StepLauncher]:
    """The launchers started at run time (not ahead)."""
    seen: list[StepLauncher] = []
    real = StepLauncher.start

    def start(self: StepLauncher) -> None:
        seen.append(self)
        real(self)

    monkeypatch.setattr(StepLauncher, "start", start)
    return seen


@pytest.mark.parametrize("sandbox", _modes())
def test_prepared__run_takes_the_early_agent_and_sees_inputs_staged_after_it(
    tmp_path, starts, sandbox
):
    inputs = tmp_path / "inputs"
    req = request(
        tmp_path, [{"shell": "bash", "run": COPY_INPUT}], sandbox=sandbox, inputs_dir=inputs
    )
    prepared = prepare_run(req)
    assert prepared.launcher is not None
    prepared.launcher.wait_ready()  # the sandbox is up before its inputs exist
    (inputs / "dep").mkdir()
    (inputs / "dep" / "in.txt").write_text("from the dependency\n")

    result = run_module(req, prepared)

    assert result.status == "COMPLETED", result.message
    assert (result.outputs_dir / "out.txt").read_text() == "from the dependency\n"
    assert starts == [] and prepared.used
    assert prepared.launcher.proc is None  # closed with the run


def test_prepared__agent_for_another_policy_is_closed_not_used(tmp_path, starts):
    steps = [{"shell": "bash", "run": 'echo hi > "$WM_OUTPUTS_DIR/out.txt"'}]
    early = request(tmp_path, steps, sandbox=_modes()[-1])
    prepared = prepare_run(early)
    # the same run, but its module now says network: false (a different sandbox)
    req = dataclasses.replace(early, module=early.module.model_copy(update={"network": False}))

    result = run_module(req, prepared)

    assert result.status == "COMPLETED", result.message
    assert len(starts) == 1 and starts[0] is not prepared.launcher
    assert prepared.launcher is not None and prepared.launcher.proc is None


def test_prepared__unused_preparation_is_closed_by_run_module_on_a_params_refusal(tmp_path, starts):
    req = request(
        tmp_path,
        [{"shell": "bash", "run": "true"}],
        action_kw={"inputs": {"rows": {"required": True}}},
    )
    prepared = prepare_run(req)
    result = run_module(req, prepared)
    assert result.status == "FAILED" and result.reason_code == CODES["PARAMS_INVALID"]
    assert starts == []
    assert prepared.launcher is not None and prepared.launcher.proc is None


def _run_json(cli, root: Path) -> dict:
    r = cli("run", "--json", "--max-parallel", "2", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


def test_run__prepared_modules_that_never_run_leave_no_workspace(cli, tmp_path):
    """A STRICT work order whose first module fails: the modules prepared meanwhile are
    skipped and leave no workspace or inputs folder; a chain's data still flows."""
    repo = build_repo(tmp_path / "repo")
    m = lambda mid, **kw: {"module_id": mid, **kw}  # noqa: E731
    work_order(repo, T1, "W1aaaaaa", [m("001"), m("002")])
    work_order(repo, T1, "W3aaaaaa", [m("003", params={"fail": "E01"}), m("001"), m("002")])
    prepare(cli, repo, {T1: 1000})

    rows = _run_json(cli, repo)

    assert rows["W1aaaaaa"]["status"] == "COMPLETED"
    assert [x["status"] for x in rows["W3aaaaaa"]["modules"]] == ["FAILED", "SKIPPED", "SKIPPED"]
    wo3 = repo / "runtime" / T1 / "W3aaaaaa"
    assert sorted(p.name for p in wo3.iterdir() if p.is_dir()) == [".inputs", "003"]
    assert sorted(p.name for p in (wo3 / ".inputs").iterdir()) == ["003"]


class _BrokenRepo:
    """A repo whose module lookup fails the way no prepare anticipates."""

    def module_dir(self, module_id: str) -> Path:
        raise RuntimeError("unexpected")

    def module(self, module_id: str):
        raise RuntimeError("unexpected")


def test_prepare_module__an_unexpected_error_prepares_nothing_and_leaves_nothing(tmp_path):
    from types import SimpleNamespace

    from workmill.orchestrator.modules import prepare_module

    ctx = SimpleNamespace(runtime_dir=tmp_path / "runtime", repo=_BrokenRepo())
    wo = SimpleNamespace(tenant_id=T1, work_order_id="W1aaaaaa")
    mp = SimpleNamespace(module_id="001", reuse_output_type="new", unrunnable="")

    assert prepare_module(ctx, wo, mp) is None  # the module's own turn reports the problem
    assert not (tmp_path / "runtime" / T1 / "W1aaaaaa" / ".inputs" / "001").exists()
