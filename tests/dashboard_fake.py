"""The fake GitHub of test_github_support, plus what the dashboard uses.

A separate block on top of :class:`FakeGithub`: issue comments (list, create,
edit, delete), commit comments (the same), reactions on an issue comment,
pull requests (one, and the pulls associated with a commit), and workflow
dispatch. Shapes follow GitHub's REST documentation; a comment body over
65,536 characters is refused with GitHub's 422. Comments made through the API
are authored by the token's bot; tests add others' comments with
:meth:`DashboardFake.add_comment`.
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any

from test_github_support import OWNER_REPO, FakeGithub

BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
BODY_LIMIT = 65_536


class DashboardFake(FakeGithub):
    def __init__(self, page_size: int = 2) -> None:
        self.comments: dict[int, dict[str, Any]] = {}  # id -> json + "_kind", "_target"
        self.reactions: list[dict[str, Any]] = []
        self.dispatches: list[dict[str, Any]] = []
        self.pulls: dict[int, dict[str, Any]] = {}  # number -> {"head_sha", "state"}
        self.edits = 0
        self.clients: list[Any] = []  # the tests' clients, closed with the fake
        self.latency = 0.0  # seconds added to every dashboard request (GitHub is not local)
        super().__init__(page_size=page_size)

    # ------------------------------------------------------------ helpers for tests
    def add_pull(self, number: int, head_sha: str, state: str = "open") -> None:
        self.pulls[number] = {"head_sha": head_sha, "state": state}

    def add_comment(
        self,
        body: str,
        *,
        pr: int | None = None,
        sha: str | None = None,
        user: dict[str, Any] | None = None,
        association: str = "MEMBER",
    ) -> int:
        with self.lock:
            return self._new_comment(
                "issue" if pr else "commit",
                pr if pr else sha,
                body,
                user or {"login": "octocat", "id": 1, "type": "User"},
                association,
            )

    def bodies(self, kind: str = "issue", target: Any = None) -> list[str]:
        with self.lock:
            return [
                c["body"]
                for c in sorted(self.comments.values(), key=lambda c: c["id"])
                if c["_kind"] == kind and (target is None or c["_target"] == target)
            ]

    # ------------------------------------------------------------ shapes
    def _new_comment(
        self, kind: str, target: Any, body: str, user: dict[str, Any], association: str
    ) -> int:
        cid = self.new_id()
        base = f"{self.url}/repos/{OWNER_REPO}"
        c: dict[str, Any] = {
            "id": cid,
            "node_id": f"IC_{cid}",
            "body": body,
            "user": user,
            "created_at": "2026-11-23T12:00:00Z",
            "updated_at": "2026-11-23T12:00:00Z",
            "author_association": association,
            "reactions": {"url": "", "total_count": 0},
            "_kind": kind,
            "_target": target,
        }
        if kind == "issue":
            c["url"] = f"{base}/issues/comments/{cid}"
            c["html_url"] = f"https://github.com/{OWNER_REPO}/pull/{target}#issuecomment-{cid}"
            c["issue_url"] = f"{base}/issues/{target}"
        else:
            c["url"] = f"{base}/comments/{cid}"
            c["html_url"] = f"https://github.com/{OWNER_REPO}/commit/{target}#commitcomment-{cid}"
            c.update(commit_id=target, path=None, position=None, line=None)
        self.comments[cid] = c
        return cid

    @staticmethod
    def public(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in c.items() if not k.startswith("_")}

    def pull_json(self, number: int) -> dict[str, Any]:
        p = self.pulls[number]
        return {
            "id": 9000 + number,
            "number": number,
            "state": p["state"],
            "title": f"PR {number}",
            "head": {"ref": f"feature-{number}", "sha": p["head_sha"]},
            "base": {"ref": "main", "sha": "0" * 40},
            "html_url": f"https://github.com/{OWNER_REPO}/pull/{number}",
        }

    # ------------------------------------------------------------ routes
    def dashboard_route(self, h: Any, method: str, path: str, q: dict, body: bytes):
        """(status, json, headers, raw) for a dashboard endpoint, or None to fall through."""
        if not path.startswith(f"/repos/{OWNER_REPO}/") or path.startswith("/uploads/"):
            return None  # not a dashboard endpoint (e.g. a release upload's raw bytes)
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return None
        base = f"/repos/{OWNER_REPO}"
        routes = (
            (rf"{base}/(?:issues/(\d+)|commits/([0-9a-f]+))/comments", self._comment_list),
            (rf"{base}/(issues/comments|comments)/(\d+)", self._comment_item),
            (rf"{base}/issues/comments/(\d+)/reactions", self._reaction),
            (rf"{base}/commits/([0-9a-f]+)/pulls", self._pulls_for_commit),
            (rf"{base}/pulls/(\d+)", self._pull),
            (rf"{base}/actions/workflows/([^/]+)/dispatches", self._dispatch),
        )
        for pattern, route in routes:
            m = re.fullmatch(pattern, path)
            if m:
                return route(h, method, m, q, data)
        return None

    def _comment_list(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        kind, target = ("issue", int(m.group(1))) if m.group(1) else ("commit", m.group(2))
        if method == "GET":
            items = [
                self.public(c)
                for c in sorted(self.comments.values(), key=lambda c: c["id"])
                if c["_kind"] == kind and c["_target"] == target
            ]
            return h._defer_page(items, q, m.group(0), None)
        if method != "POST":
            return _NOT_FOUND
        bad = _body_problem(data)
        if bad:
            return bad
        cid = self._new_comment(kind, target, data["body"], BOT, "NONE")
        return 201, self.public(self.comments[cid]), None, None

    def _comment_item(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        kind = "issue" if m.group(1) == "issues/comments" else "commit"
        c = self.comments.get(int(m.group(2)))
        if c is None or c["_kind"] != kind:
            return _NOT_FOUND
        if method == "PATCH":
            bad = _body_problem(data)
            if bad:
                return bad
            c["body"] = data["body"]
            c["updated_at"] = "2026-11-23T12:00:01Z"
            self.edits += 1
        if method == "DELETE":
            del self.comments[c["id"]]
            return 204, None, None, None
        return 200, self.public(c), None, None

    def _reaction(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        cid = int(m.group(1))
        if method != "POST" or cid not in self.comments:
            return _NOT_FOUND
        if data.get("content") not in _REACTIONS:
            return _invalid("content")
        reaction = {
            "id": self.new_id(),
            "node_id": "REA_x",
            "user": BOT,
            "content": data["content"],
            "created_at": "2026-11-23T12:00:00Z",
            "_comment": cid,
        }
        self.reactions.append(reaction)
        return 201, self.public(reaction), None, None

    def _pulls_for_commit(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        items = [
            self.pull_json(n) for n, p in sorted(self.pulls.items()) if p["head_sha"] == m.group(1)
        ]
        return h._defer_page(items, q, m.group(0), None)

    def _pull(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        n = int(m.group(1))
        return (200, self.pull_json(n), None, None) if n in self.pulls else _NOT_FOUND

    def _dispatch(self, h: Any, method: str, m: re.Match, q: dict, data: dict):
        if method != "POST":
            return _NOT_FOUND
        if not isinstance(data.get("ref"), str):
            return _invalid("ref")
        self.dispatches.append({"workflow": m.group(1), **data})
        return 204, None, None, None

    def _handler(self):
        parent = super()._handler()
        fake = self

        class Handler(parent):  # type: ignore[misc, valid-type]
            def _route(self, method: str, path: str, q: dict, body: bytes):
                if fake.latency:
                    time.sleep(fake.latency * random.uniform(0.5, 1.5))
                with fake.lock:
                    hit = fake.dashboard_route(self, method, path, q, body)
                if hit is not None:
                    return hit
                return super()._route(method, path, q, body)

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        return Handler


_NOT_FOUND = (
    404,
    {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
    None,
    None,
)
_REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}


def _invalid(field: str, message: str | None = None):
    err: dict[str, Any] = {"resource": "IssueComment", "code": "invalid", "field": field}
    if message:
        err.update(code="custom", message=message)
    return 422, {"message": "Validation Failed", "errors": [err]}, None, None


def _body_problem(data: dict[str, Any]):
    body = data.get("body")
    if not isinstance(body, str) or not body:
        return _invalid("body")
    if len(body.encode("utf-16-le")) // 2 > BODY_LIMIT:
        return _invalid("body", "body is too long (maximum is 65536 characters)")
    return None


def run_at_once(commands: list[list[str]], cwd: Any, env: dict[str, str]) -> list[tuple[int, str]]:
    """Start every ``workmill`` command at once; (exit code, stderr) of each, in order."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "workmill", *c],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in commands
    ]
    out = []
    for p in procs:
        _, err = p.communicate(timeout=180)
        out.append((p.returncode, err))
    return out


def failed_lines(n: int, credits: int = 10) -> list[Any]:
    """``n`` failed work orders for a run table (each with a reason name)."""
    from workmill.dashboard import RunLine

    return [
        RunLine(
            work_order_id=f"W{i:07d}",
            tenant_id="Ag3ncy",
            status="FAILED",
            spend=credits,
            refund=credits,
            reasons=["103002001 BAD_INPUT (module 002)"],
        )
        for i in range(n)
    ]
