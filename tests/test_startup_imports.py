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
