"""``workmill usage``: a thin shell over workmill.usage."""

from __future__ import annotations

import csv
import io

import click

from workmill.cli._common import CONTEXT_SETTINGS, AppContext, echo_json, pass_app


@click.command("usage", context_settings=CONTEXT_SETTINGS)
@click.option("--month", default=None, help="YYYY-MM (default: the current UTC month).")
@click.option("--tenant-id", default=None, help="Only this tenant.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_app
def usage_cmd(app: AppContext, month: str | None, tenant_id: str | None, fmt: str) -> None:
    """Per tenant and module for one month: work orders, module runs, credits spent,
    refunded and net, module-seconds, cache hits, artifacts published.

    Example:

        workmill usage --month 2026-11 --format csv > usage-2026-11.csv
    """
    from workmill import clock, ids, usage
    from workmill.backends import open_billing_store
    from workmill.errors import UsageError

    if tenant_id is not None and (msg := ids.check(ids.IdKind.TENANT, tenant_id)):
        raise UsageError(f"--tenant-id: {msg}")
    month = usage.check_month(month or clock.now().strftime("%Y-%m"))
    rows = usage.report(usage.month_state(open_billing_store(app.repo), month), month, tenant_id)
    dicts = [r.as_dict() for r in rows]
    if fmt == "json":
        echo_json({"month": month, "rows": dicts, "totals": usage.totals(rows).as_dict()})
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=usage.COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(dicts)
        click.echo(buf.getvalue(), nl=False)
        return
    _table(month, dicts, usage.totals(rows).as_dict())


def _table(month: str, rows: list[dict], total: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from workmill.usage import COLUMNS

    table = Table(title=f"usage {month}")
    heads = ["tenant", "module", "WOs", "runs", "spent", "refunded", "net", "module-s",
             "cache hits", "artifacts"]  # fmt: skip
    for i, h in enumerate(heads):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in [*rows, {**total, "tenant_id": "total", "module_id": ""}] if rows else []:
        table.add_row(*(str(r[c]) for c in COLUMNS))
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped: the whole table, not cut at 80 columns
    if rows:
        console.print(table)
    else:
        console.print(f"no usage in {month}")


COMMANDS = [usage_cmd]
