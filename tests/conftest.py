"""Shared test helpers: run the real CLI in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXED_NOW = "2026-11-23T12:00:00Z"


def run_cli(
    *args: str,
    cwd: Path | str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``workmill ARGS`` in a subprocess; returns the completed process (text mode)."""
    full_env = {**os.environ, "WORKMILL_NOW": FIXED_NOW, "PYTHONWARNINGS": "ignore"}
    full_env.pop("WORKMILL_REPO", None)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "workmill", *args],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
