"""Shared CLI pieces: the context object, option bundles, output helpers."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from workmill.reasons import ReasonCatalog
    from workmill.repo import PlatformRepo

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    repo_arg: str | None = None
    _repo: PlatformRepo | None = field(default=None, repr=False)

    @property
    def repo(self) -> PlatformRepo:
        if self._repo is None:
            from workmill.repo import PlatformRepo  # here, so start-up does not load the specs

            self._repo = PlatformRepo.discover(self.repo_arg)
        return self._repo


pass_app = click.make_pass_decorator(AppContext)

REPO_HELP = (
    "Platform repo (default: $WORKMILL_REPO, or found by walking up from the current directory)."
)


def _set_repo(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppContext).repo_arg = value


def add_repo_option(command: click.Command) -> None:
    """Give ``command`` (and every sub-command of a group) its own ``--repo``, so the
    option works after the sub-command as well as before it."""
    if not any(p.name == "repo_after" for p in command.params):
        command.params.append(
            click.Option(
                ["--repo", "repo_after"],
                type=click.Path(file_okay=False, path_type=str),
                expose_value=False,
                callback=_set_repo,
                help=REPO_HELP,
            )
        )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_repo_option(sub)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def billing_state_dir_option(f: F) -> F:
    return click.option(
        "--billing-state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Working copy of the billing state (default: <repo>/.billing-state).",
    )(f)


def runtime_dir_option(f: F) -> F:
    return click.option(
        "--runtime-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where module workspaces are created (default: <repo>/runtime).",
    )(f)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()


def is_terminal(stderr: bool = False) -> bool:
    """rich's answer to "is stdout (stderr) a terminal?" without loading rich for a pipe:
    rich says yes only for a tty or when FORCE_COLOR / TTY_INTERACTIVE ask it to."""
    stream = sys.stderr if stderr else sys.stdout
    if not (stream.isatty() or os.environ.get("FORCE_COLOR") or os.environ.get("TTY_INTERACTIVE")):
        return False
    from rich.console import Console

    return Console(stderr=stderr).is_terminal


class PlainConsole:
    """The part of rich's Console that summaries use, for output that is not a terminal:
    each text printed as it is, one ``click.echo``, so a piped run never loads rich."""

    def print(self, text: str = "", **_: Any) -> None:
        click.echo(text)


def summary_console() -> Console | PlainConsole:
    """A rich console for a terminal, plain lines for a pipe or a CI log."""
    return make_console() if is_terminal() else PlainConsole()


def reason_catalog(app: AppContext) -> ReasonCatalog:
    """The repo's compiled reason catalog, for showing names beside codes (never fails)."""
    from workmill.reasons import catalog_for_display

    return catalog_for_display(app.repo.maintenance_dir)


def make_console(stderr: bool = False) -> Console:
    """A rich console that is not cut at 80 columns when its output is piped to a file."""
    from rich.console import Console

    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=max(probe.width, 200))


def id_check(kind: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback refusing a malformed ID with exit 2 (a usage error, one line);
    an ID that is well-formed but names nothing is the command's business (exit 1)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        from workmill import ids
        from workmill.errors import UsageError

        for v in value if isinstance(value, tuple) else (value,):
            msg = None if v is None else ids.check(ids.IdKind(kind), v)
            if msg:
                name = (
                    param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                )
                raise UsageError(f"{name}: {msg}")
        return value

    return check
