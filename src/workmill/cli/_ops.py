"""Operating commands: history (what ran) and logs (what a module printed)."""

from __future__ import annotations

from pathlib import Path

import click

from workmill.backends import open_billing_store
from workmill.cli._common import (
    CONTEXT_SETTINGS,
    AppContext,
    echo_json,
    id_check,
    json_option,
    make_console,
    pass_app,
    reason_catalog,
    runtime_dir_option,
)


def _label(code: str, name: str) -> str:
    return f"{code} {name}" if code and name else code


def _credits(value: int | None) -> str:
    return "" if value is None else str(value)


@click.command("history", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--tenant-id", default=None, callback=id_check("tenant"), help="Only this tenant's work orders."
)
@click.option(
    "--work-order-id",
    default=None,
    callback=id_check("work order"),
    help="Only this work order (lists its modules; exit 1 if it never ran).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Show at most N work orders, newest first.",
)
@json_option
@pass_app
def history_cmd(
    app: AppContext, tenant_id: str | None, work_order_id: str | None, limit: int, as_json: bool
) -> None:
    """List processed work orders, newest first: status, reason, spend, refund, time.

    Reads the billing state's work-order and module-run logs. With --work-order-id
    each module run is listed too; `workmill logs WO MODULE` prints its output.

    Example:

        workmill history --tenant-id Ab12Cd --limit 10

        workmill history --work-order-id Qw3Er5Ty
    """
    from workmill import billing_tables as bt
    from workmill.errors import NotFound
    from workmill.history import history
    from workmill.reasons import name_of

    state = open_billing_store(app.repo).load()
    entries = history(
        state.rows(bt.WORKORDERS_LOG),
        state.rows(bt.MODULE_RUNS_LOG),
        name_of(reason_catalog(app)),
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        limit=limit,
    )
    if work_order_id is not None and not entries:
        raise NotFound(f"work order {work_order_id!r} has not been processed (no history)")
    if as_json:
        echo_json({"revision": state.revision, "work_orders": [e.to_dict() for e in entries]})
        return
    if not entries:
        click.echo("no work orders processed yet")
        return
    _print_history(entries, with_modules=work_order_id is not None)


def _print_history(entries: list, *, with_modules: bool) -> None:
    from rich.table import Table

    table = Table(title="work orders, newest first")
    for col in ("finished", "work order", "tenant", "status", "reason", "spend", "refund"):
        table.add_column(col, justify="right" if col in {"spend", "refund"} else "left")
    for e in entries:
        table.add_row(
            e.finished_at or f"(started {e.started_at})",
            e.work_order_id,
            e.tenant_id,
            e.status,
            _label(e.reason_code, e.reason_name),
            _credits(e.spend_credits),
            _credits(e.refund_credits),
        )
    console = make_console()
    console.print(table)
    if not with_modules:
        return
    for e in entries:
        for m in e.modules:
            extra = " (cache hit)" if m.cache_hit else ""
            digest = f"  digest {m.module_digest[:12]}" if m.module_digest else ""
            console.print(
                f"  {m.module_id}  {m.status:<24} {_label(m.reason_code, m.reason_name):<40} "
                f"{m.duration_ms / 1000:.2f}s{extra}{digest}",
                highlight=False,
            )


@click.command("logs", context_settings=CONTEXT_SETTINGS)
@click.argument("work_order_id", callback=id_check("work order"))
@click.argument("module_id", required=False, callback=id_check("module"))
@click.option(
    "--tenant-id",
    default=None,
    callback=id_check("tenant"),
    help="The work order's tenant (when two share the id).",
)
@click.option("--runner", is_flag=True, help="Also print workmill's own runner.log per module.")
@click.option("--list", "list_only", is_flag=True, help="Print only the log files' paths.")
@runtime_dir_option
@json_option
@pass_app
def logs_cmd(
    app: AppContext,
    work_order_id: str,
    module_id: str | None,
    tenant_id: str | None,
    runner: bool,
    list_only: bool,
    runtime_dir: Path | None,
    as_json: bool,
) -> None:
    """Print the step logs of a work order's module runs (one MODULE, or all of them).

    Each file is introduced by a `==> path <==` line. Logs are kept in the runtime
    dir of the machine that ran the module (default: <repo>/runtime).

    Example:

        workmill logs Qw3Er5Ty 006

        workmill logs Qw3Er5Ty --list
    """
    from workmill.history import find_logs

    found = find_logs(
        runtime_dir or app.repo.root / "runtime",
        work_order_id,
        module_id=module_id,
        tenant_id=tenant_id,
    )
    files = {
        f"{m.tenant_id}/{m.work_order_id}/{m.module_id}": [
            *m.step_logs,
            *([m.runner_log] if runner and m.runner_log else []),
        ]
        for m in found
    }
    if as_json:
        echo_json({k: [str(p) for p in v] for k, v in files.items()})
        return
    for paths in files.values():
        for path in paths:
            if list_only:
                click.echo(str(path))
                continue
            click.echo(f"==> {path} <==")
            text = path.read_text(encoding="utf-8", errors="replace")
            click.echo(text, nl=not text.endswith("\n") and bool(text))


COMMANDS: list[click.Command] = [history_cmd, logs_cmd]
