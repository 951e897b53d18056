"""The ``workmill`` command: a thin shell over the library.

Each command group lives in its own module and exports ``COMMANDS``; this
module only assembles them and turns library errors into one clear line.
"""

from __future__ import annotations

import sys
import unicodedata

import click

from workmill import __version__
from workmill.cli import _billing, _cache, _module, _repo, _run
from workmill.cli._common import CONTEXT_SETTINGS, AppContext
from workmill.errors import SpecError, WorkmillError


@click.group(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--repo",
    "repo",
    type=click.Path(file_okay=False, path_type=str),
    envvar="WORKMILL_REPO",
    default=None,
    help="Platform repo root (default: $WORKMILL_REPO or the current directory).",
)
@click.version_option(__version__, prog_name="workmill")
@click.pass_context
def cli(ctx: click.Context, repo: str | None) -> None:
    """workmill: multi-tenant work orders over a DAG of modules, billed in integer credits.

    Example:

        workmill init my-platform && cd my-platform && workmill validate
    """
    ctx.obj = AppContext(repo_arg=repo)


for _module_ in (_repo, _billing, _module, _cache, _run):
    for _command in _module_.COMMANDS:
        cli.add_command(_command)


def _printable(text: str) -> str:
    """Escape control characters (other than the newlines we put there ourselves), so a
    hostile name in a message cannot forge extra lines or terminal escapes."""
    return "\n".join(
        "".join(
            ch
            if ch == "\t" or (unicodedata.category(ch)[0] != "C" and ch not in "\u2028\u2029")
            else ch.encode("unicode_escape").decode("ascii")
            for ch in line
        )
        for line in text.split("\n")
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, print WorkmillErrors as one line each, return the exit code."""
    try:
        # without standalone mode click *returns* the code of ctx.exit(N)
        rv = cli.main(args=argv, prog_name="workmill", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SpecError as exc:
        for problem in exc.problems:
            click.echo(f"error: {_printable(str(problem))}", err=True)
        return exc.exit_code
    except WorkmillError as exc:
        click.echo(f"error: {_printable(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0


def _console_main() -> None:  # pragma: no cover - exercised through subprocess tests
    sys.exit(main())
