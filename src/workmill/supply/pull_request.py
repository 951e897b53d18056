"""The bot pull request that carries new pins (``workmill pin --pull-request``).

Pins change only through a reviewed commit (docs/supply-chain.md "Who can
change a pin"), so on GitHub ``build-and-pin.yml`` does not push them: it
commits the changed ``maintenance-state/`` files on top of the commit it
computed them from, through the REST git-data API (tree → commit → ref), and
opens a pull request against the environment branch. The branch name is
derived from the new registry's bytes, so a re-run for the same pins finds its
branch and pull request instead of opening a second one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from workmill.github import GithubClient, GithubError, github_settings
from workmill.github._config import open_client
from workmill.repo import MAINTENANCE_DIR, PlatformRepo
from workmill.supply._git import changed_files, head_commit, repo_prefix
from workmill.supply._pins import REGISTRY_PATH

BRANCH_PREFIX = "workmill/pin-"
TITLE = "workmill pin: new module digests"


@dataclass(frozen=True)
class PinPullRequest:
    number: int
    url: str
    branch: str
    base: str
    commit: str
    created: bool  # False when an open pull request for these pins already existed

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def default_base(repo: PlatformRepo) -> str:
    """``$GITHUB_REF_NAME`` (the branch the workflow runs on), else the first environment."""
    if ref := os.environ.get("GITHUB_REF_NAME"):
        return ref
    envs = repo.config.environments
    return envs[0] if envs else "main"


def _body(paths: list[str], branch: str) -> str:
    listed = "\n".join(f"- `{p}`" for p in paths)
    return (
        "New module pins computed by `workmill pin` (opened by build-and-pin).\n\n"
        f"Changed files:\n{listed}\n\n"
        "Merging this pull request is the review of the modules' current files: with "
        "`require_pinned: true` only pinned files run. Roll back by reverting the merge "
        f"commit.\n\n<!-- workmill-pin-branch:{branch} -->\n"
    )


class _Api:
    """The REST calls, with paths built in one place."""

    def __init__(self, client: GithubClient, repository: str) -> None:
        self.client = client
        self.base = f"repos/{repository}"
        self.owner = repository.split("/", 1)[0]

    def get(self, path: str, **params: str) -> Any:
        return self.client.request("GET", f"{self.base}/{path}", params=params or None).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.request("POST", f"{self.base}/{path}", json=body).json()

    def tree(self, parent: str, files: dict[str, str]) -> str:
        base_tree = self.get(f"git/commits/{parent}")["tree"]["sha"]
        entries = [
            {"path": p, "mode": "100644", "type": "blob", "content": text}
            for p, text in sorted(files.items())
        ]
        return self.post("git/trees", {"base_tree": base_tree, "tree": entries})["sha"]

    def point_branch(self, branch: str, sha: str) -> None:
        """Create ``refs/heads/<branch>`` at ``sha``, or move it there when it exists."""
        try:
            self.post("git/refs", {"ref": f"refs/heads/{branch}", "sha": sha})
        except GithubError as exc:
            if exc.status != 422:
                raise
            self.client.request(
                "PATCH",
                f"{self.base}/git/refs/heads/{quote(branch, safe='/')}",
                json={"sha": sha, "force": True},
            )

    def open_pull(self, branch: str, base: str) -> dict[str, Any] | None:
        found = self.get("pulls", head=f"{self.owner}:{branch}", base=base, state="open")
        return found[0] if found else None


def pin_files(repo: PlatformRepo) -> dict[str, str]:
    """The changed ``maintenance-state/`` files (paths from the git root) and their text."""
    prefix = repo_prefix(repo)
    paths = changed_files(repo, MAINTENANCE_DIR) or [REGISTRY_PATH]
    return {
        prefix + p: (repo.root / p).read_text(encoding="utf-8")
        for p in paths
        if (repo.root / p).is_file()
    }


def open_pin_pull_request(
    repo: PlatformRepo, *, base: str | None = None, client: GithubClient | None = None
) -> PinPullRequest:
    """Commit the changed pins on a bot branch and open (or find) its pull request."""
    settings = github_settings(repo)
    api = _Api(client or open_client(settings), settings.repository)
    base = base or default_base(repo)
    files = pin_files(repo)
    registry = files.get(repo_prefix(repo) + REGISTRY_PATH, "")
    branch = BRANCH_PREFIX + hashlib.sha256(registry.encode()).hexdigest()[:12]
    parent = head_commit(repo)
    commit = api.post(
        "git/commits",
        {
            "message": f"workmill pin: {len(files)} file(s) under {MAINTENANCE_DIR}/",
            "tree": api.tree(parent, files),
            "parents": [parent],
        },
    )["sha"]
    api.point_branch(branch, commit)
    existing = api.open_pull(branch, base)
    if existing is not None:
        return PinPullRequest(
            existing["number"], existing["html_url"], branch, base, commit, created=False
        )
    pr = api.post(
        "pulls",
        {
            "title": TITLE,
            "head": branch,
            "base": base,
            "body": _body(sorted(files), branch),
            "maintainer_can_modify": True,
        },
    )
    return PinPullRequest(pr["number"], pr["html_url"], branch, base, commit, created=True)
