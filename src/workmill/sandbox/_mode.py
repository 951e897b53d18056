"""Which sandbox a module run gets: ``workmill.yml`` ``sandbox: auto | bwrap | none``.

``auto`` uses bubblewrap when it works here and otherwise runs unsandboxed
with a warning on every run; on GitHub Actions (``GITHUB_ACTIONS=true``) a
missing bubblewrap is an error for ``auto`` and ``bwrap`` alike (fail closed),
so a tenant never runs unsandboxed next to the platform's token.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from workmill.errors import WorkmillError

Configured = Literal["auto", "bwrap", "none"]
Resolved = Literal["bwrap", "none"]
NO_SANDBOX_WARNING = (
    "bubblewrap (bwrap) is not available: modules run WITHOUT a sandbox and can read "
    "what the workmill user can; install bubblewrap or set 'sandbox: none' in workmill.yml "
    "to accept this"
)


class SandboxUnavailable(WorkmillError):
    """The configured sandbox cannot be had here; nothing may run."""


@dataclass(frozen=True)
class SandboxChoice:
    mode: Resolved
    bwrap: str | None  # the bwrap executable when mode is "bwrap"
    warning: str | None  # said on every run when auto fell back to none


ENV_OVERRIDE = "WORKMILL_SANDBOX"


def sandbox_setting(configured: Configured, env: Mapping[str, str] | None = None) -> Configured:
    """workmill.yml ``sandbox``, unless the environment says ``WORKMILL_SANDBOX`` (what the
    GitHub workflows set on the jobs that run modules); a bad value is an error."""
    env = os.environ if env is None else env
    value = env.get(ENV_OVERRIDE, "").strip()
    if not value:
        return configured
    if value not in ("auto", "bwrap", "none"):
        raise SandboxUnavailable(f"{ENV_OVERRIDE}={value!r}: expected auto, bwrap or none")
    return value  # type: ignore[return-value]


@functools.cache
def bwrap_works(path: str) -> str | None:
    """None when ``path`` can build a sandbox here, else why not (checked once per process)."""
    try:
        proc = subprocess.run(
            [path, "--unshare-pid", "--die-with-parent", "--ro-bind", "/", "/", "--", "true"],
            capture_output=True,
            timeout=20,
            env={"PATH": os.defpath},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"exit code {proc.returncode}"
    return None


def find_bwrap(env: Mapping[str, str]) -> tuple[str | None, str]:
    """(the working bwrap, or None and why not)."""
    return _find_bwrap(env.get("PATH") or os.defpath)


@functools.cache
def _find_bwrap(search_path: str) -> tuple[str | None, str]:
    """Once per process and PATH: every module run asks (``bwrap_works`` is cached too)."""
    path = shutil.which("bwrap", path=search_path)
    if path is None:
        return None, "bwrap is not installed (apt-get install bubblewrap)"
    broken = bwrap_works(path)
    if broken:
        return None, f"{path} cannot create a sandbox here: {broken}"
    return path, ""


def choose_sandbox(configured: Configured, env: Mapping[str, str] | None = None) -> SandboxChoice:
    """The sandbox for ``configured`` here; raises :class:`SandboxUnavailable` to fail closed."""
    env = os.environ if env is None else env
    if configured == "none":
        return SandboxChoice("none", None, None)
    path, why = find_bwrap(env)
    if path is not None:
        return SandboxChoice("bwrap", path, None)
    on_github = env.get("GITHUB_ACTIONS", "").lower() == "true"
    if configured == "bwrap" or on_github:
        where = " on GitHub Actions" if on_github and configured == "auto" else ""
        raise SandboxUnavailable(
            f"workmill.yml: sandbox: {configured}{where} needs bubblewrap: {why}"
        )
    return SandboxChoice("none", None, f"{NO_SANDBOX_WARNING} ({why})")
