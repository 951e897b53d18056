"""Status dashboard: one live comment per commit, updated in place (docs/reference.md).

Public API:

- :class:`Dashboard` — ``Dashboard(repo=..., sha=..., pr=None, client=...)``,
  ``.load()``, ``.update_stage(key, status, link=None, note=None)``, ``.save()``
- :func:`open_dashboard` — the dashboard a platform repo's ``workmill.yml`` points at
- :class:`Status`, :class:`Stage`, :class:`State` — the model
- :class:`GithubCommentStore`, :class:`LocalStore` — where a dashboard lives
- :func:`render`, :func:`marker` — the Markdown body
- :func:`run_section`, :func:`publish_run` — an orchestrator run on the dashboard
- :func:`handle_comment`, :func:`parse_command` — ``/workmill plan`` / ``/workmill run``
"""

from __future__ import annotations

from workmill.dashboard._commands import CommandOutcome, handle_comment, parse_command
from workmill.dashboard._dashboard import Dashboard, open_dashboard
from workmill.dashboard._model import RunLine, RunSection, Stage, State, Status, parse_status
from workmill.dashboard._render import MAX_BODY, body_length, marker, render, stage_rows
from workmill.dashboard._runs import publish_run, run_section, step_summary
from workmill.dashboard._stores import GithubCommentStore, LocalStore

__all__ = [
    "MAX_BODY",
    "CommandOutcome",
    "Dashboard",
    "GithubCommentStore",
    "LocalStore",
    "RunLine",
    "RunSection",
    "Stage",
    "State",
    "Status",
    "body_length",
    "handle_comment",
    "marker",
    "open_dashboard",
    "parse_command",
    "parse_status",
    "publish_run",
    "render",
    "run_section",
    "stage_rows",
    "step_summary",
]
