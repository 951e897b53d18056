"""A module run's fresh workspace and the clean environment its steps get (docs/reference.md "Running a module").

Layout (all under ``<runtime>/<tenant>/<work_order>/<module>/``)::

    outputs/                 WM_OUTPUTS_DIR
    logs/runner.log          workmill's own log of the run
    logs/step-NN-<id>.log    each step's stdout+stderr (masked, capped)
    work/                    GITHUB_WORKSPACE, default working directory
    tmp/                     RUNNER_TEMP and TMPDIR
    steps/                   step scripts and their command files
    params.json              WM_PARAMS_FILE
    reason.txt               WM_REASON_FILE (written by the module, if at all)
    outputs_manifest.json    written after every run
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workmill.errors import WorkmillError

# Variables a module inherits from workmill's own environment; nothing else leaks in.
ALLOWED_PARENT_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "USER",
    "LOGNAME",
    "SHELL",
    "TERM",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
)


class RunnerError(WorkmillError):
    """The run could not even start (bad request, workspace exists, catalog incomplete)."""


class Workspace:
    """The paths of one run's workspace (computed once: a run asks for them often)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outputs = root / "outputs"
        self.logs = root / "logs"
        self.work = root / "work"
        self.tmp = root / "tmp"
        self.steps = root / "steps"
        self.inputs = root / "inputs"
        self.params_file = root / "params.json"
        self.reason_file = root / "reason.txt"
        self.manifest_file = root / "outputs_manifest.json"
        self.runner_log = self.logs / "runner.log"

    def __repr__(self) -> str:
        return f"Workspace({self.root!s})"


def workspace_path(runtime_dir: Path, tenant_id: str, work_order_id: str, module_id: str) -> Path:
    return runtime_dir / tenant_id / work_order_id / module_id


def create_workspace(root: Path, *, replace: bool) -> Workspace:
    """A fresh, empty workspace; an existing one is refused unless ``replace``."""
    if root.is_symlink():
        raise RunnerError(f"{root}: workspace path is a symlink; refusing to use it")
    if root.exists():
        if not replace:
            raise RunnerError(
                f"{root}: workspace already exists (a previous run of this module in this "
                "work order); remove it or run with replace"
            )
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.mkdir(mode=0o700)
    ws = Workspace(root)
    for d in (ws.outputs, ws.logs, ws.work, ws.tmp, ws.steps):
        d.mkdir()
    # exists (empty = no reason) so the sandbox can bind just this file writable
    ws.reason_file.touch()
    return ws


def param_env_name(name: str) -> str:
    return "WM_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def param_env(params: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """``WM_PARAM_<NAME>`` for each top-level scalar param, and any problems."""
    out: dict[str, str] = {}
    problems: list[str] = []
    owner: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif value is None:
            text = ""
        elif isinstance(value, int | float | str):
            text = str(value)
        else:
            continue  # lists/objects are in WM_PARAMS_FILE only
        key = param_env_name(name)
        if key in owner:
            problems.append(f"params.{name}: maps to {key} like params.{owner[key]}")
            continue
        if "\0" in text:
            problems.append(f"params.{name}: contains a NUL character")
            continue
        owner[key] = name
        out[key] = text
    return out, problems


def runner_os() -> str:
    return {"Linux": "Linux", "Darwin": "macOS", "Windows": "Windows"}.get(
        platform.system(), platform.system()
    )


def base_environment(
    parent: Mapping[str, str], platform_vars: Mapping[str, str], extra: Mapping[str, str]
) -> dict[str, str]:
    """Allow-listed parent variables + the module's ``extra`` (its declared secrets)
    + the documented ``WM_*``/``GITHUB_*`` variables, which win.

    No credential of workmill's own (``GH_TOKEN``, ``GITHUB_TOKEN``…) is passed
    unless it is in ``extra`` (docs/reference.md "Sandbox and tenant isolation").
    """
    env = {k: parent[k] for k in ALLOWED_PARENT_ENV if k in parent}
    py_bin = str(Path(sys.executable).parent)
    path = env.get("PATH", os.defpath)
    if path.split(os.pathsep)[0] != py_bin:
        # `python` in a bash step is the interpreter workmill runs under (its venv)
        path = py_bin + os.pathsep + path
    env["PATH"] = path
    env.setdefault("LANG", "C.UTF-8")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    env.update(platform_vars)
    return env


def write_params(ws: Workspace, params: Mapping[str, Any]) -> None:
    ws.params_file.write_text(
        json.dumps(params, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
