"""Tenant isolation: each module run's steps run inside one sandbox (docs/reference.md
"Sandbox and tenant isolation", docs/architecture.md "Threat model").

Public API: :func:`choose_sandbox` (which sandbox, fail closed on GitHub),
:class:`SandboxPolicy` and the pure :func:`bwrap_argv`, :class:`StepLauncher`
(the platform's side of the in-sandbox step agent), :func:`scrub_own_secrets`
(what ``sandbox: none`` can still hide) and :func:`refused_env_name` (the
``GITHUB_ENV``/``GITHUB_PATH`` denylist).
"""

from __future__ import annotations

from workmill.sandbox._envpolicy import (
    CREDENTIAL_VARS,
    is_credential_name,
    refused_env_name,
    refused_path_entry,
)
from workmill.sandbox._launcher import SandboxError, StepHandle, StepLauncher, python_paths
from workmill.sandbox._mode import (
    NO_SANDBOX_WARNING,
    SandboxChoice,
    SandboxUnavailable,
    choose_sandbox,
    sandbox_setting,
)
from workmill.sandbox._policy import ETC_PATHS, SYSTEM_DIRS, SandboxPolicy, bwrap_argv
from workmill.sandbox._scrub import scrub_own_secrets

__all__ = [
    "CREDENTIAL_VARS",
    "ETC_PATHS",
    "NO_SANDBOX_WARNING",
    "SYSTEM_DIRS",
    "SandboxChoice",
    "SandboxError",
    "SandboxPolicy",
    "SandboxUnavailable",
    "StepHandle",
    "StepLauncher",
    "bwrap_argv",
    "choose_sandbox",
    "is_credential_name",
    "python_paths",
    "refused_env_name",
    "refused_path_entry",
    "sandbox_setting",
    "scrub_own_secrets",
]
