"""Where a dashboard lives: a GitHub comment, or a Markdown file on one machine.

docs/architecture.md "Status dashboard". Both stores offer ``read()`` and
``transact(mutate, check)``: apply ``mutate`` to the current state and write
it so that ``check`` holds afterwards. On one machine a file lock makes that
exact. GitHub has no conditional write for comments, so the comment store
re-reads after writing and re-applies what a concurrent writer overwrote.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from workmill.dashboard._model import State, merge
from workmill.dashboard._render import read_body, render
from workmill.errors import WorkmillError
from workmill.fsio import atomic_write_text
from workmill.github._client import GithubClient, GithubError, GithubNotFound

Mutate = Callable[[State], State]
Check = Callable[[State], bool]
SECRET_VARS = (
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
SETTLE_ENV = "WORKMILL_DASHBOARD_SETTLE_S"


def mask_env(text: str, env: dict[str, str] | None = None) -> str:
    """``text`` with the value of every credential variable in the environment replaced."""
    env = dict(os.environ) if env is None else env
    for var in SECRET_VARS:
        value = env.get(var, "")
        if len(value) >= 8:
            text = text.replace(value, "***")
    return text


class DashboardStore(Protocol):
    where: str

    def read(self) -> State | None: ...

    def transact(self, mutate: Mutate, check: Check) -> State: ...


class LocalStore:
    """``<dir>/<sha>.md``: the same Markdown a comment would hold; a file lock serialises writers."""

    def __init__(self, directory: Path, sha: str) -> None:
        self.path = Path(directory) / f"{sha}.md"
        self.sha = sha
        self.where = str(self.path)

    def read(self) -> State | None:
        if not self.path.exists():
            return None
        return read_body(self.path.read_text(encoding="utf-8"), self.sha)

    def transact(self, mutate: Mutate, check: Check) -> State:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock", timeout=60):
            before = self.read() or State(sha=self.sha)
            body = render(mutate(before), mask_env)
            atomic_write_text(self.path, body)
            after = read_body(body, self.sha)
        assert after is not None and check(after)
        return after


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


class GithubCommentStore:
    """The one comment carrying the marker: on the PR when there is one, else on the commit.

    ``settle_s``: how long a writer waits before re-reading to confirm its write
    survived (a writer that read before our write and writes after it would
    erase our stage; the re-read catches every such writer that wrote within
    this window, and we then apply our stage again).
    """

    def __init__(
        self,
        client: GithubClient,
        repository: str,
        sha: str,
        pr: int | None = None,
        *,
        settle_s: float | None = None,
        attempts: int = 12,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.repo_path = f"repos/{repository}"
        self.sha = sha
        self._pr = pr
        self._resolved = pr is not None
        env_settle = os.environ.get(SETTLE_ENV)
        if settle_s is None:
            settle_s = check_settle(env_settle) if env_settle else 1.0
        self.settle_s = settle_s
        self.attempts = attempts
        self._sleep = sleep

    # ------------------------------------------------------------ where
    @property
    def pr(self) -> int | None:
        """The PR given, else an open PR whose commits include ``sha`` (else None: the commit)."""
        if not self._resolved:
            pulls = self.client.request("GET", f"{self.repo_path}/commits/{self.sha}/pulls").json()
            open_prs = [p for p in pulls if isinstance(p, dict) and p.get("state") == "open"]
            self._pr = int(open_prs[0]["number"]) if open_prs else None
            self._resolved = True
        return self._pr

    @property
    def where(self) -> str:
        return f"pull request #{self.pr}" if self.pr else f"commit {self.sha[:12]}"

    def _list_path(self) -> str:
        if self.pr:
            return f"{self.repo_path}/issues/{self.pr}/comments"
        return f"{self.repo_path}/commits/{self.sha}/comments"

    def _item_path(self, comment_id: int) -> str:
        kind = "issues/comments" if self.pr else "comments"
        return f"{self.repo_path}/{kind}/{comment_id}"

    # ------------------------------------------------------------ comments
    def _comments(self) -> Iterator[dict[str, Any]]:
        for c in self.client.paginate(self._list_path()):
            if isinstance(c, dict) and isinstance(c.get("body"), str) and _trusted(c):
                yield c

    def _find(self) -> list[tuple[Comment, State]]:
        """Every trusted comment carrying our marker, oldest first, with its state."""
        found = []
        for c in self._comments():
            state = read_body(c["body"], self.sha)
            if state is not None:
                found.append((Comment(int(c["id"]), c["body"]), state))
        return sorted(found, key=lambda f: f[0].id)

    def _mask(self, text: str) -> str:
        return mask_env(self.client.mask(text))

    def _write(self, found: list[tuple[Comment, State]], body: str) -> None:
        """Create the comment, or edit the oldest in place and delete the duplicates."""
        if not found:
            self.client.request("POST", self._list_path(), json={"body": body})
            return
        keep = found[0][0]
        if keep.body != body:
            self.client.request("PATCH", self._item_path(keep.id), json={"body": body})
        for dup, _ in found[1:]:
            with contextlib.suppress(GithubNotFound):  # another writer merged it first
                self.client.request("DELETE", self._item_path(dup.id))

    # ------------------------------------------------------------ the store
    def read(self) -> State | None:
        found = self._find()
        return merge([s for _, s in found]) if found else None

    def transact(self, mutate: Mutate, check: Check) -> State:
        for _ in range(self.attempts):
            found = self._find()
            base = merge([s for _, s in found]) if found else State(sha=self.sha, pr=self.pr)
            body = render(mutate(base), self._mask)
            if len(found) == 1 and found[0][0].body == body:
                return found[0][1]  # nothing to change
            try:
                self._write(found, body)
            except GithubNotFound:
                continue  # the comment we edit was removed meanwhile: look again
            self._sleep(self.settle_s * random.uniform(1.0, 1.5))
            after = self._find()
            if len(after) == 1 and check(after[0][1]):
                return after[0][1]
        raise GithubError(
            f"dashboard on {self.where}: could not confirm the update after "
            f"{self.attempts} attempts (too many concurrent writers?)"
        )


def _trusted(comment: dict[str, Any]) -> bool:
    """Only a bot's or a maintainer's comment is read: anyone else could forge a stage."""
    user = comment.get("user") or {}
    return (isinstance(user, dict) and user.get("type") == "Bot") or comment.get(
        "author_association"
    ) in TRUSTED_ASSOCIATIONS


def check_settle(value: str) -> float:
    try:
        out = float(value)
    except ValueError:
        out = -1.0
    if not 0 <= out <= 60:
        raise WorkmillError(f"{SETTLE_ENV}: {value!r} is not a number of seconds from 0 to 60")
    return out
