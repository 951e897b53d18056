"""Shared CLI pieces: the context object, option bundles, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from workmill.repo import PlatformRepo

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AppContext:
    repo_arg: str | None
    _repo: PlatformRepo | None = field(default=None, repr=False)

    @property
    def repo(self) -> PlatformRepo:
        if self._repo is None:
            from workmill.repo import PlatformRepo  # here, so start-up does not load the specs

            self._repo = PlatformRepo.open(self.repo_arg)
        return self._repo


pass_app = click.make_pass_decorator(AppContext)


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
