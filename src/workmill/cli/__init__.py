"""The ``workmill`` command: a thin shell over the library.

Each command group lives in its own module and exports ``COMMANDS``; this
module only assembles them and turns library errors into one clear line.
Command modules are imported only when their command runs (``COMMAND_MODULES``),
so ``workmill --version`` and ``-h`` stay fast.
"""

from __future__ import annotations

import importlib
import sys

import click

from workmill import __version__
from workmill.cli._common import CONTEXT_SETTINGS, REPO_HELP, AppContext, add_repo_option
from workmill.errors import SpecError, WorkmillError
from workmill.errors import printable as _printable

# command name -> (module under workmill.cli, one-line help shown by `workmill -h`).
# A new command: add its module's COMMANDS and one row here.
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "init": ("_repo", "Scaffold a new platform repo."),
    "new": ("_repo", "Create a module, tenant or work order skeleton with a fresh ID."),
    "validate": ("_repo", "Check the whole platform repo and print every problem."),
    "maintenance": ("_repo", "Compile maintenance-state/ from modules, tenants and reasons."),
    "schema": ("_repo", "Print the JSON Schema of a spec kind."),
    "inspect": ("_repo", "Show the resolved view of a module or work order."),
    "state": ("_billing", "Create, download and upload the billing state."),
    "topup": ("_billing", "Credit a tenant's balance (idempotent per tenant and reference)."),
    "balance": ("_billing", "Show tenants' credit balances."),
    "ledger": ("_billing", "Read and audit the billing ledger."),
    "module": ("_module", "Work with one module on its own (for module authors)."),
    "cache": ("_cache", "Cached module outputs: list entries, prune expired ones."),
    "run": ("_run", "Plan, execute and settle every enabled work order not yet processed."),
    "plan": ("_run", "Phase 1: reject or charge (SPEND) work orders and write the plan."),
    "execute": ("_run", "Phase 2: run the planned modules."),
    "settle": ("_run", "Phase 3: REFUND, logs, cache index and release maps in one commit."),
    "release": ("_run", "Work-order releases (artifacts) in the configured store."),
    "demo": ("_run", "Run the example platform repo end to end and show the results."),
    "console": ("_console", "Build the static operator console (HTML) from the billing state."),
    "history": ("_ops", "List processed work orders: status, reason, spend, refund, time."),
    "logs": ("_ops", "Print the step logs of a work order's module runs."),
    "dashboard": ("_dashboard", "The status dashboard: one comment per commit, updated in place."),
    "keygen": ("_licence", "Write an Ed25519 key pair for registry signatures and licences."),
    "licence": ("_licence", "Issue, verify and list offline licences for premium modules."),
    "registry": ("_registry", "Search, show, install and publish signed module archives."),
    "usage": ("_usage", "Per tenant and module: work orders, runs, credits, time, cache hits."),
    "pin": ("_supply", "Record each module's content digest (what was reviewed) in the registry."),
    "smoke": ("_supply", "Run modules with their smoke params in WM_MODE=smoke, without billing."),
    "promote": (
        "_supply",
        "Check an environment carries the source environment's pins, then smoke.",
    ),
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use, not at start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMAND_MODULES:
            return None
        module = importlib.import_module(f"workmill.cli.{COMMAND_MODULES[cmd_name][0]}")
        for command in module.COMMANDS:
            add_repo_option(command)
            self.add_command(command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the short help comes from the table, so `-h` imports no command module
        rows = [(name, COMMAND_MODULES[name][1]) for name in sorted(COMMAND_MODULES)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "--repo",
    "repo",
    type=click.Path(file_okay=False, path_type=str),
    envvar="WORKMILL_REPO",
    default=None,
    help=REPO_HELP + " Accepted before or after the sub-command.",
)
@click.version_option(__version__, prog_name="workmill")
@click.pass_context
def cli(ctx: click.Context, repo: str | None) -> None:
    """workmill: multi-tenant work orders over a DAG of modules, billed in integer credits.

    Example:

        workmill init my-platform && cd my-platform && workmill validate
    """
    app = ctx.ensure_object(AppContext)
    if repo is not None:
        app.repo_arg = repo


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
