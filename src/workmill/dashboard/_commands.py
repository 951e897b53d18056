"""PR comment commands: ``/workmill plan`` and ``/workmill run``.

docs/reference.md "Status dashboard". The event arrives as GitHub's JSON
file (``$GITHUB_EVENT_PATH``), read here: no part of a comment ever reaches a
shell. Only a comment that is exactly one of the command lines counts; only
owners, members and collaborators start anything; anyone else gets a polite
refusal. A started command runs the orchestrator workflow on the default
branch (never the PR's code, which may come from a fork) and tells it which
PR's dashboard to report to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workmill.dashboard._stores import TRUSTED_ASSOCIATIONS
from workmill.errors import WorkmillError
from workmill.github._client import GithubClient

WORKFLOW_FILE = "orchestrator.yml"
# command line -> the orchestrator workflow's dry_run input
COMMANDS: dict[str, str] = {"/workmill plan": "true", "/workmill run": "false"}
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")


@dataclass(frozen=True)
class CommandOutcome:
    action: str  # "ignored" | "started" | "refused"
    command: str | None
    message: str


def parse_command(body: object) -> str | None:
    """The command when the comment is exactly one command line (surrounding blanks aside)."""
    if not isinstance(body, str):
        return None
    text = body.strip()
    return text if text in COMMANDS else None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkmillError(f"event: {what} is not a positive integer")
    return value


def _ignored(why: str) -> CommandOutcome:
    return CommandOutcome("ignored", None, why)


def handle_comment(
    event: Mapping[str, Any],
    client: GithubClient,
    repository: str,
    workflow: str = WORKFLOW_FILE,
) -> CommandOutcome:
    """Answer one ``issue_comment`` event: react and start the workflow, or refuse, or ignore."""
    comment, issue = event.get("comment"), event.get("issue")
    if event.get("action") != "created" or not isinstance(comment, dict):
        return _ignored("not a new comment")
    if not isinstance(issue, dict) or not issue.get("pull_request"):
        return _ignored("not a pull request comment")
    command = parse_command(comment.get("body"))
    if command is None:
        return _ignored("not a command")
    user = comment.get("user") if isinstance(comment.get("user"), dict) else {}
    if user.get("type") == "Bot":
        return _ignored("comment by a bot")
    base = f"repos/{repository}"
    number = _int(issue.get("number"), "issue.number")
    comment_id = _int(comment.get("id"), "comment.id")
    login = str(user.get("login", ""))
    who = f"@{login}" if _LOGIN.fullmatch(login) else "there"
    if comment.get("author_association") not in TRUSTED_ASSOCIATIONS:
        text = (
            f"Sorry {who}, `{command}` can only be started by this repository's owners, "
            "members and collaborators. Nothing was started; a maintainer can run it for you."
        )
        client.request("POST", f"{base}/issues/{number}/comments", json={"body": text})
        return CommandOutcome("refused", command, f"refused {command} from {login or '?'}")
    client.request(
        "POST", f"{base}/issues/comments/{comment_id}/reactions", json={"content": "eyes"}
    )
    repo_info = event.get("repository") if isinstance(event.get("repository"), dict) else {}
    ref = str(repo_info.get("default_branch") or "main")
    if not _REF.fullmatch(ref) or ".." in ref:
        raise WorkmillError(f"event: repository.default_branch {ref[:60]!r} is not a branch name")
    head = client.request("GET", f"{base}/pulls/{number}").json().get("head") or {}
    inputs = {"dry_run": COMMANDS[command], "dashboard_pr": str(number)}
    if isinstance(head.get("sha"), str) and re.fullmatch(r"[0-9a-f]{40,64}", head["sha"]):
        inputs["dashboard_sha"] = head["sha"]
    client.request(
        "POST",
        f"{base}/actions/workflows/{workflow}/dispatches",
        json={"ref": ref, "inputs": inputs},
    )
    return CommandOutcome("started", command, f"started {workflow} on {ref} for PR #{number}")
