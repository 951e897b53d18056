"""Start-up stays fast because nothing is imported before it is needed (docs/architecture.md
"Start-up"): the import set of a piped one-module `workmill run`, read from ``-X importtime``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXED_NOW
from platform_factory import T1, build_repo, prepare, work_order

# Loaded only for what needs them: a terminal (rich), a params schema (jsonschema), GitHub (httpx).
HEAVY = ("rich", "jsonschema", "httpx", "jinja2", "cryptography")


def _imported(cmd: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore"}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_INTERACTIVE", None)
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "workmill", *cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in p.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return p, names


def _heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY)


def test_run__piped_one_module_run_loads_no_terminal_schema_or_github_library(cli, tmp_path):
    root = build_repo(tmp_path / "repo")
    prepare(cli, root, {T1: 100})
    work_order(root, T1, "W1aaaaaa", [{"module_id": "005"}])
    p, names = _imported(["run"], root)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "W1aaaaaa" in p.stdout and "COMPLETED" in p.stdout  # the plain summary
    assert "workmill.orchestrator.executing" in names  # the probe did see the run path
    assert _heavy(names) == []
    # module 005 has no cache and the repo is small: no cache service, no worker pool
    assert {"workmill.cache.service", "multiprocessing"} & names == set()
    # (a module loaded by importlib.import_module, as _run is, has no importtime line)
    commands = {n for n in names if n.startswith("workmill.cli._")}
    assert commands <= {"workmill.cli._common", "workmill.cli._run", "workmill.cli._dashboard"}


def test_version_and_help__load_no_command_module_nor_pydantic(tmp_path):
    for cmd in (["--version"], ["-h"]):
        p, names = _imported(cmd, tmp_path)
        assert p.returncode == 0, p.stderr
        loaded = [n for n in names if n.startswith(("workmill.cli._r", "pydantic", "yaml"))]
        assert _heavy(names) + loaded == [], cmd


def test_summary_text__plain_columns_numbers_right_aligned():
    from workmill.orchestrator.progress import summary_text

    rows = [
        {
            "work_order_id": "W1aaaaaa",
            "tenant_id": T1,
            "status": "COMPLETED",
            "spend_credits": 7,
            "refund_credits": 0,
            "duration_ms": 1234,
        },
        {
            "work_order_id": "W2aaaaaa",
            "tenant_id": T1,
            "status": "REJECTED",
            "spend_credits": None,
            "refund_credits": None,
            "reason_code": "100001001",
            "reason_name": "BAD",
        },
    ]
    lines = summary_text(rows).splitlines()
    assert lines[0].split("  ")[0] == "work order" and lines[0].endswith("module time")
    assert lines[1].split() == ["W1aaaaaa", T1, "COMPLETED", "7", "0", "1.23s"]
    assert "100001001 BAD" in lines[2] and lines[2].rstrip() == lines[2]
    spend = lines[0].index("spend") + len("spend")
    assert lines[1][spend - 1] == "7"  # right-aligned under its header


def test_is_terminal__a_pipe_is_not_unless_rich_is_told_so(monkeypatch):
    import io

    from workmill.cli._common import is_terminal

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
    assert is_terminal() is False
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert is_terminal() is True
