"""The step agent's exit report: what the platform learns when a step exits, without
asking again (docs/architecture.md "Runner", *Processes*)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from test_runner_support import run
from workmill.sandbox import StepLauncher
from workmill.sandbox._launcher import AGENT_FILE, parse_exit_report

AGENT_DIR = AGENT_FILE.parent


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"0 0 0", (0, False, False)),
        (b"3 1 1", (3, True, True)),
        (b"-15 0 1", (-15, False, True)),
        (b"", (-9, True, True)),  # the agent died before reporting
        (b"0", (-9, True, True)),
        (b"0 2 0", (-9, True, True)),
        (b"zero 0 0", (-9, True, True)),
    ],
)
def test_parse_exit_report__well_formed_or_assume_the_worst(data, expected):
    assert parse_exit_report(data) == expected


@given(st.binary(max_size=64))
def test_parse_exit_report__hostile_bytes_never_raise_and_never_claim_an_empty_run(data):
    code, group, run_alive = parse_exit_report(data)
    assert isinstance(code, int)
    if (code, group, run_alive) != (-9, True, True):
        assert data.split()[1:] in ([b"0", b"0"], [b"0", b"1"], [b"1", b"0"], [b"1", b"1"])


@pytest.fixture
def stops(monkeypatch) -> list[float]:
    seen: list[float] = []
    real = StepLauncher.stop

    def stop(self: StepLauncher, grace: float) -> None:
        seen.append(grace)
        real(self, grace)

    monkeypatch.setattr(StepLauncher, "stop", stop)
    return seen


def test_module_end__no_stop_round_trip_when_the_agent_reported_an_empty_run(tmp_path, stops):
    r = run(tmp_path, [{"shell": "bash", "run": 'echo hi > "$WM_OUTPUTS_DIR/o.txt"'}])
    assert r.status == "COMPLETED", r.message
    assert stops == []


def test_module_end__a_left_process_is_stopped_with_its_grace(tmp_path, stops):
    pidfile = tmp_path / "d.pid"
    script = f"sleep 300 > /dev/null 2>&1 & echo $! > {pidfile}"
    r = run(tmp_path, [{"shell": "bash", "run": script}], sandbox="none")
    assert r.status == "COMPLETED", r.message
    assert stops == [0.5]  # kill_grace_seconds of the test request


def test_agent_prctl__sets_the_parent_death_signal_and_subreaper_without_ctypes(tmp_path):
    """The agent's prctl (through ``_ctypes`` only) takes effect; checked with ctypes."""
    code = (
        "import ctypes, sys\n"
        f"sys.path.insert(0, {str(AGENT_DIR)!r})\n"
        "import _agent\n"
        "_agent._prctl(_agent.PR_SET_PDEATHSIG, 15)\n"
        "_agent._prctl(_agent.PR_SET_CHILD_SUBREAPER, 1)\n"
        "v = ctypes.c_int()\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.prctl(2, ctypes.byref(v), 0, 0, 0)\n"  # PR_GET_PDEATHSIG
        "w = ctypes.c_int()\n"
        "libc.prctl(37, ctypes.byref(w), 0, 0, 0)\n"  # PR_GET_CHILD_SUBREAPER
        "print(v.value, w.value)\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["15", "1"], out.stderr


def test_agent__imports_no_ctypes_package_in_either_mode():
    """What keeps the agent's start cheap: built-in and C modules only."""
    code = (
        f"import sys; sys.path.insert(0, {str(AGENT_DIR)!r})\n"
        "import _agent\n"
        "_agent._prctl(_agent.PR_SET_CHILD_SUBREAPER, 0)\n"
        "print(sorted(m for m in ('ctypes', 'json', 'socket', 'signal') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
