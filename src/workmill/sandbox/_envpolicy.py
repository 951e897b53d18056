"""Environment names: the credentials workmill holds, and what ``GITHUB_ENV`` may not set.

One place owns both lists (docs/reference.md "Sandbox and tenant isolation").
A step's ``$GITHUB_ENV`` often echoes tenant data; were it allowed to set
``BASH_ENV`` or ``LD_PRELOAD``, a param with a newline would make the next
step run a tenant file. So names that make a shell, loader or interpreter run
code, and names the platform owns, are refused (with a log line).
"""

from __future__ import annotations

import re

# Credentials workmill's own process may hold; never passed to a module unless the
# module declares them in module.yml `secrets:` (and then only to that module).
CREDENTIAL_VARS = (
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "GH_ENTERPRISE_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_RUNTIME_URL",
    "ACTIONS_RESULTS_URL",
    "ACTIONS_CACHE_URL",
)
_CREDENTIAL_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|LICEN[CS]E")

# Exact names a step may not set through $GITHUB_ENV.
REFUSED_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "TMPDIR",
        "BASH_ENV",
        "ENV",
        "IFS",
        "PS4",
        "PS1",
        "PS2",
        "PROMPT_COMMAND",
        "SHELLOPTS",
        "BASHOPTS",
        "CDPATH",
        "GLOBIGNORE",
        "BASH_XTRACEFD",
        "BASH_LOADABLES_PATH",
        "NODE_OPTIONS",
        "NODE_PATH",
        "RUBYOPT",
        "RUBYLIB",
        "PERLLIB",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCPATH",
        "NLSPATH",
        "MALLOC_CHECK_",
        "LUA_INIT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    }
)
# Prefixes a step may not set: loaders, interpreters, exported bash functions, git,
# and the names the platform owns.
REFUSED_PREFIXES = (
    "LD_",
    "DYLD_",
    "PYTHON",
    "PERL5",
    "BASH_FUNC_",
    "GIT_",
    "WM_",
    "GITHUB_",
    "RUNNER_",
    "ACTIONS_",
    "WORKMILL_",
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_credential_name(name: str) -> bool:
    """A variable of workmill's own environment that must never reach a module by default."""
    upper = name.upper()
    return (
        upper in CREDENTIAL_VARS
        or (upper.startswith("WORKMILL_") and upper != "WORKMILL_NOW")
        or bool(_CREDENTIAL_WORDS.search(upper))
    )


def refused_env_name(name: str) -> str | None:
    """Why ``$GITHUB_ENV`` may not set ``name``, or None when it may."""
    if not _NAME.fullmatch(name):
        return "it is not a plain variable name ([A-Za-z_][A-Za-z0-9_]*)"
    upper = name.upper()
    if upper in REFUSED_NAMES:
        return "it changes how a shell, loader or interpreter starts, or is set by workmill"
    for prefix in REFUSED_PREFIXES:
        if upper.startswith(prefix):
            return f"names starting with {prefix} are reserved"
    return None


def refused_path_entry(entry: str) -> str | None:
    """Why ``$GITHUB_PATH`` may not add ``entry``, or None when it may."""
    if not entry.startswith("/"):
        return "it is not an absolute path"
    if ":" in entry or "\0" in entry:
        return "it contains ':' (more than one folder)"
    return None
