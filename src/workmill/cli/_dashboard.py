"""``workmill dashboard init|update|show|command``: thin shells over workmill.dashboard."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click

from workmill.cli._common import AppContext, echo_json, json_option, pass_app
from workmill.errors import UsageError, WorkmillError


def _sha_and_pr(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--pr",
        type=click.IntRange(min=1),
        default=None,
        envvar="WORKMILL_DASHBOARD_PR",
        help="Pull request number (default: $WORKMILL_DASHBOARD_PR, else the commit's open PR, "
        "else a comment on the commit itself).",
    )(f)
    f = click.option(
        "--sha",
        default=None,
        help="Commit (default: $WORKMILL_DASHBOARD_SHA, $GITHUB_SHA, else git HEAD of the repo).",
    )(f)
    return f


def _sha(app: AppContext, sha: str | None) -> str:
    for candidate in (sha, os.environ.get("WORKMILL_DASHBOARD_SHA"), os.environ.get("GITHUB_SHA")):
        if candidate:
            return candidate
    try:
        out = subprocess.run(
            ["git", "-C", str(app.repo.root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        raise UsageError("--sha: no commit given and the repo is not a git repository") from None
    return out.stdout.strip()


def _open(app: AppContext, sha: str | None, pr: int | None):  # type: ignore[no-untyped-def]
    from workmill.dashboard import open_dashboard

    return open_dashboard(app.repo, _sha(app, sha), pr)


@click.group("dashboard")
def dashboard_group() -> None:
    """The status dashboard: one comment per commit (or a local file), updated in place.

    Example:

        workmill dashboard init --sha "$GITHUB_SHA" --pr 12

        workmill dashboard update --stage plan --status running

        workmill dashboard show
    """


@dashboard_group.command("init")
@_sha_and_pr
@pass_app
def init_cmd(app: AppContext, sha: str | None, pr: int | None) -> None:
    """Create the commit's dashboard with every configured stage pending (kept if it exists).

    Example:

        workmill dashboard init --sha 4f2c9e1 --pr 12
    """
    board = _open(app, sha, pr)
    state = board.load().save()
    click.echo(f"dashboard on {board.where}: {len(state.stages)} stage(s)")


@dashboard_group.command("update")
@_sha_and_pr
@click.option(
    "--stage",
    "stages",
    required=True,
    multiple=True,
    help="Stage key (one of workmill.yml dashboard.stages); repeat it to set several at once.",
)
@click.option(
    "--status",
    required=True,
    help="pending, running, success, failure or skipped (GitHub's cancelled shows as failure).",
)
@click.option(
    "--link",
    default=None,
    help="URL shown for the stage (default in GitHub Actions: this workflow run).",
)
@click.option("--note", default=None, help="A short note shown beside the stage.")
@pass_app
def update_cmd(app, sha, pr, stages, status, link, note) -> None:  # type: ignore[no-untyped-def]
    """Set a stage's status (GitHub's job.status words work as they are), editing in place.

    Example:

        workmill dashboard update --stage execute --status "$JOB_STATUS"

        workmill dashboard update --stage validate --stage maintenance --status running
    """
    from workmill.dashboard._runs import run_link

    board = _open(app, sha, pr)
    for stage in stages:
        board.update_stage(stage, status, link or run_link(os.environ), note)
    state = board.save()
    for stage in stages:
        now = state.stage(stage)
        assert now is not None
        click.echo(f"{stage}: {now.status.value} (dashboard on {board.where})")


@dashboard_group.command("show")
@_sha_and_pr
@click.option("--markdown", is_flag=True, help="Print the Markdown body as stored.")
@json_option
@pass_app
def show_cmd(app, sha, pr, markdown, as_json) -> None:  # type: ignore[no-untyped-def]
    """Print the dashboard: a table of stages (and the last run) in the terminal.

    Example:

        workmill dashboard show --sha 4f2c9e1
    """
    board = _open(app, sha, pr).load()
    if as_json:
        echo_json({"where": board.where, **board.state.model_dump(mode="json")})
    elif markdown:
        click.echo(board.markdown(), nl=False)
    else:
        from rich.console import Console

        from workmill.cli._dashboard_view import dashboard_tables

        console = Console()
        for table in dashboard_tables(board.state, board.where):
            console.print(table)


@dashboard_group.command("command")
@click.option(
    "--event",
    "event_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="GitHub's event JSON (default: $GITHUB_EVENT_PATH).",
)
def command_cmd(event_path: Path | None) -> None:
    """Answer a /workmill plan or /workmill run PR comment (in the pr-commands workflow).

    Reads the issue_comment event file; owners, members and collaborators get a
    👀 reaction and the orchestrator workflow started, anyone else a refusal.

    Example:

        workmill dashboard command --event "$GITHUB_EVENT_PATH"
    """
    from workmill.dashboard import handle_comment
    from workmill.github._client import GithubClient
    from workmill.github._config import TOKEN_VARS

    path = event_path or os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        raise UsageError("--event: no event file (set GITHUB_EVENT_PATH or pass --event)")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkmillError(f"{path}: not a readable JSON event ({type(exc).__name__})") from None
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    if not repository:
        raise UsageError("GITHUB_REPOSITORY is not set")
    token = next((os.environ[v] for v in TOKEN_VARS if os.environ.get(v)), "")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    outcome = handle_comment(
        event if isinstance(event, dict) else {}, GithubClient(token, api), repository
    )
    click.echo(outcome.message)


def report_run(repo, rows: list[dict], dry_run: bool = False) -> None:  # type: ignore[no-untyped-def]
    """After settle: the run into $GITHUB_STEP_SUMMARY and the commit's dashboard, where set.

    The money is already settled: a dashboard that cannot be written is a
    warning, never a failed run.
    """
    if not any(
        os.environ.get(v)
        for v in ("GITHUB_STEP_SUMMARY", "WORKMILL_DASHBOARD_SHA", "GITHUB_ACTIONS")
    ):
        return  # a run on one machine: not even the dashboard package is imported
    from workmill.dashboard import publish_run

    try:
        publish_run(repo, rows, dry_run=dry_run)
    except WorkmillError as exc:
        click.echo(f"warning: dashboard not updated: {exc}", err=True)


COMMANDS: list[click.Command] = [dashboard_group]
