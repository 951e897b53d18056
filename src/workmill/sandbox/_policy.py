"""The sandbox policy of one module run and the bwrap command line it means.

Deny by default (Flatpak style): the sandbox starts from an empty root and only
what a module needs is bound in. :func:`bwrap_argv` is pure, so a test can
assert the policy without starting a process, and it is the one place that
decides what a module can see (docs/reference.md "Sandbox and tenant isolation").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

# The system, read-only; absent ones are skipped (--ro-bind-try).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files of /etc programs need to run, resolve names and check TLS certificates.
ETC_PATHS = (
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/mime.types",
    "/etc/python3",
)
HOSTNAME = "workmill"


@dataclass(frozen=True)
class SandboxPolicy:
    """What one module run may see and do.

    Attributes:
        command: what runs inside (the step agent).
        env: the whole environment of ``command`` (after ``--clearenv``).
        read_only: host paths bound read-only at the same path (module folder,
            inputs, the Python the steps use).
        writable: host paths bound read-write at the same path (workspace
            parts, ``WM_CACHE_DIR``).
        files: ``(host file, path inside)`` pairs bound read-only.
        cwd: the working directory inside.
        network: False adds ``--unshare-net`` (only loopback inside).
    """

    command: tuple[str, ...]
    env: Mapping[str, str]
    read_only: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    cwd: str = "/"
    network: bool = True
    system_dirs: tuple[str, ...] = SYSTEM_DIRS
    etc_paths: tuple[str, ...] = ETC_PATHS
    extra: tuple[str, ...] = field(default=())  # more bwrap options, appended before binds


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def bwrap_argv(policy: SandboxPolicy, bwrap: str = "bwrap") -> list[str]:
    """The full ``bwrap`` argv for ``policy``.

    Binds are ordered parent before child, and at equal depth read-only before
    writable, so a writable folder inside a read-only one stays writable.
    """
    argv = [
        bwrap,
        "--unshare-pid",
        # the step agent is the namespace's init (it reaps every orphan): one process
        # fewer per module run than bwrap's own reaper
        "--as-pid-1",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        HOSTNAME,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]
    if not policy.network:
        argv.append("--unshare-net")
    argv.append("--clearenv")
    for key in sorted(policy.env):
        argv += ["--setenv", key, policy.env[key]]
    for d in policy.system_dirs:
        argv += ["--ro-bind-try", d, d]
    for p in policy.etc_paths:
        argv += ["--ro-bind-try", p, p]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    argv += list(policy.extra)
    binds = [(p, "--ro-bind") for p in policy.read_only] + [(p, "--bind") for p in policy.writable]
    binds.sort(key=lambda b: (_depth(b[0]), b[1] == "--bind", b[0]))
    for path, opt in binds:
        argv += [opt, path, path]
    for host, inside in policy.files:
        argv += ["--ro-bind", host, inside]
    argv += ["--chdir", policy.cwd, "--", *policy.command]
    return argv
