"""The few read-only git questions the supply chain asks of a platform repo's checkout."""

from __future__ import annotations

import subprocess

from workmill.errors import NotFound
from workmill.repo import PlatformRepo


def git(repo: PlatformRepo, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``git -C <repo> ARGS`` (never raises for a non-zero exit; the caller decides)."""
    try:
        return subprocess.run(
            ["git", "-C", str(repo.root), *args], capture_output=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotFound(f"cannot run git in {repo.root}: {exc}") from exc


def repo_prefix(repo: PlatformRepo) -> str:
    """The platform repo's path inside its git work tree ('' at the top)."""
    proc = git(repo, "rev-parse", "--show-prefix")
    if proc.returncode != 0:
        raise NotFound(f"{repo.root} is not inside a git repository")
    return proc.stdout.decode().strip()


def show(repo: PlatformRepo, rev: str, path: str) -> bytes | None:
    """``git show REV:PATH`` bytes, or None when that revision or file does not exist."""
    proc = git(repo, "show", f"{rev}:{path}")
    return proc.stdout if proc.returncode == 0 else None


def head_commit(repo: PlatformRepo) -> str:
    proc = git(repo, "rev-parse", "HEAD")
    if proc.returncode != 0:
        raise NotFound(f"{repo.root}: no commit checked out")
    return proc.stdout.decode().strip()


def changed_files(repo: PlatformRepo, under: str) -> list[str]:
    """Paths (relative to the platform repo) under ``under`` that differ from HEAD."""
    proc = git(repo, "status", "--porcelain", "--no-renames", "--untracked-files=all", "--", under)
    if proc.returncode != 0:
        raise NotFound(f"git status failed in {repo.root}: {proc.stderr.decode().strip()}")
    prefix = repo_prefix(repo)
    out = []
    for line in proc.stdout.decode().splitlines():
        path = line[3:]
        out.append(path[len(prefix) :] if prefix and path.startswith(prefix) else path)
    return sorted(out)
