"""Supply-chain commands: pin, smoke, promote (docs/supply-chain.md)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from workmill.cli._common import (
    CONTEXT_SETTINGS,
    AppContext,
    echo_err,
    echo_json,
    json_option,
    pass_app,
    runtime_dir_option,
)


def _short(digest: str) -> str:
    return digest[:12] if digest else "-"


@click.command("pin", context_settings=CONTEXT_SETTINGS)
@click.argument("module_ids", nargs=-1)
@click.option(
    "--check", is_flag=True, help="Write nothing; exit 1 if any module differs from its pin."
)
@click.option(
    "--pull-request",
    "pull_request",
    is_flag=True,
    help="GitHub: commit the new pins to a bot branch and open a pull request (only when "
    "a pin changed) instead of leaving them in the work tree.",
)
@click.option(
    "--base",
    default=None,
    help="With --pull-request: the base branch (default: "
    "$GITHUB_REF_NAME, else the first of workmill.yml environments).",
)
@json_option
@pass_app
def pin_cmd(
    app: AppContext,
    module_ids: tuple[str, ...],
    check: bool,
    pull_request: bool,
    base: str | None,
    as_json: bool,
) -> None:
    """Record each module's content digest in maintenance-state/ids/module_registry.csv.

    With `require_pinned: true` in workmill.yml a work order whose module's files
    differ from its pin is REJECTED before any charge (MODULE_NOT_PINNED). Pin
    after reviewing a module change; the pin commit is what you revert to roll
    back. Default: every module. Recompiles maintenance-state when a pin moved.

    Example:

        workmill pin 003

        workmill pin --check
    """
    from workmill.supply import PinState, pin, pin_status

    repo = app.repo
    ids_ = list(module_ids) or None
    if check:
        statuses = pin_status(repo, ids_)
        written = False
    else:
        result = pin(repo, ids_)
        statuses, written = result.statuses, result.written
    pr = None
    if pull_request and written:
        from workmill.supply.pull_request import open_pin_pull_request

        pr = open_pin_pull_request(repo, base=base)
    moved = [s for s in statuses if s.state is not PinState.PINNED]
    if as_json:
        echo_json(
            {
                "check": check,
                "written": written,
                "modules": [s.to_dict() for s in statuses],
                "pull_request": pr.to_dict() if pr else None,
            }
        )
    else:
        for s in statuses:
            if s.state is PinState.PINNED:
                click.echo(f"{s.module_id}  pinned     {_short(s.current)}")
            elif check:
                click.echo(
                    f"{s.module_id}  {s.state!s:<9}  pin {_short(s.pinned)}  files {_short(s.current)}"
                )
            else:
                click.echo(f"{s.module_id}  re-pinned  {_short(s.pinned)} -> {_short(s.current)}")
        if pull_request and not written:
            click.echo("pins unchanged: no pull request")
        if pr is not None:
            click.echo(f"pull request #{pr.number}: {pr.url}")
    if check and moved:
        echo_err(
            f"{len(moved)} module(s) differ from their pin; review them and run `workmill pin`"
        )
        raise click.exceptions.Exit(1)


def print_smoke(report, as_json: bool) -> None:
    if as_json:
        echo_json(report.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("module", "name", "status", "reason", "ms", "message", title="workmill smoke")
    for r in report.rows:
        colour = "green" if r.passed else "red"
        label = r.module_id if r.requested else f"{r.module_id} (dep)"
        table.add_row(
            label,
            r.name,
            f"[{colour}]{r.status}[/]",
            r.reason_code or "-",
            str(r.duration_ms),
            r.message,
        )
    Console(soft_wrap=True).print(table)
    failed = [r for r in report.rows if not r.passed]
    if failed:
        click.echo(
            f"{len(failed)} module(s) failed smoke; logs under {report.runtime_dir}", err=True
        )


def run_smoke(app: AppContext, module_ids, runtime_dir, max_parallel):
    """Smoke with Ctrl-C / SIGTERM killing the modules' processes (reported INTERRUPTED)."""
    from workmill.supply.smoke import smoke

    cancel = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: cancel.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return smoke(
            app.repo,
            list(module_ids) or None,
            runtime_dir=runtime_dir,
            max_parallel=max_parallel,
            cancel=cancel,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("smoke", context_settings=CONTEXT_SETTINGS)
@click.argument("module_ids", nargs=-1)
@click.option("--max-parallel", type=click.IntRange(1, 256), default=None, help="Modules at once.")
@runtime_dir_option
@json_option
@pass_app
def smoke_cmd(
    app: AppContext,
    module_ids: tuple[str, ...],
    max_parallel: int | None,
    runtime_dir: Path | None,
    as_json: bool,
) -> None:
    """Run modules with their smoke.params and WM_MODE=smoke, without billing.

    Every module (or the named ones, with the modules they depend on) runs in
    its sandbox exactly as in a work order; dependencies hand their smoke
    outputs on. Declared secrets are placeholders. Exit 1 when any module
    FAILED or was SKIPPED.

    Example:

        workmill smoke

        workmill smoke 003 --json
    """
    report = run_smoke(app, module_ids, runtime_dir, max_parallel)
    print_smoke(report, as_json)
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command("promote", context_settings=CONTEXT_SETTINGS)
@click.option("--to", "target", required=True, help="Environment (branch) being promoted to.")
@click.option(
    "--from",
    "source",
    default=None,
    help="Source environment (default: the one before --to in workmill.yml environments).",
)
@click.option("--no-smoke", is_flag=True, help="Only compare pins; do not run smoke.")
@click.option("--max-parallel", type=click.IntRange(1, 256), default=None, help="Modules at once.")
@runtime_dir_option
@json_option
@pass_app
def promote_cmd(
    app: AppContext,
    target: str,
    source: str | None,
    no_smoke: bool,
    max_parallel: int | None,
    runtime_dir: Path | None,
    as_json: bool,
) -> None:
    """Check that this checkout of ENV carries exactly the source environment's pins, then smoke.

    Pins are made once on the first environment; promotion merges them, it
    never re-pins. Refuses (exit 1) when a pin differs from the source
    branch's (read with `git show <source>:maintenance-state/ids/module_registry.csv`),
    a module is unpinned, or a module's files differ from its pin; then runs
    `workmill smoke` (exit 1 on any failure). Rollback: revert the pin commit on
    the first environment and promote again.

    Example:

        workmill promote --to staging
    """
    from workmill.supply.promote import check_promotion

    result = check_promotion(app.repo, target, source)
    report = None
    if result.ok and not no_smoke:
        report = run_smoke(app, (), runtime_dir, max_parallel)
    if as_json:
        echo_json({**result.to_dict(), "smoke": report.to_dict() if report else None})
    else:
        for c in result.checks:
            mark = c.problem or "ok"
            click.echo(
                f"{c.module_id}  {result.source} {_short(c.source)}  {target} "
                f"{_short(c.target)}  files {_short(c.current)}  {mark}"
            )
        if report is not None:
            print_smoke(report, False)
    if not result.ok:
        echo_err(
            f"refusing to promote {result.source} -> {target}: {len(result.problems)} module(s) "
            f"differ; merge {result.source} into {target} (never re-pin on {target})"
        )
        raise click.exceptions.Exit(1)
    if report is not None and not report.ok:
        raise click.exceptions.Exit(1)
    if not as_json:
        click.echo(
            f"ok: {target} carries {result.source}'s pins" + ("" if no_smoke else "; smoke passed")
        )


COMMANDS: list[click.Command] = [pin_cmd, smoke_cmd, promote_cmd]
