"""CLI for the operator console: ``workmill console build``."""

from __future__ import annotations

from pathlib import Path

import click

from workmill.cli._common import AppContext, echo_json, json_option, pass_app, runtime_dir_option


@click.group("console")
def console_group():
    """A static operator console (HTML) built from the billing state.

    Example:

        workmill console build --out site && xdg-open site/index.html
    """


@console_group.command("build")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the site into (new, empty, or an earlier console).",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 100_000),
    default=500,
    show_default=True,
    help="Rows per page of ledgers, work-order lists and cache entries.",
)
@click.option(
    "--recent-rows",
    type=click.IntRange(0, 10_000_000),
    default=50_000,
    show_default=True,
    help="List row by row only the most recent N transactions and N work orders.",
)
@click.option(
    "--work-order-pages",
    type=click.IntRange(0, 1_000_000),
    default=500,
    show_default=True,
    help="Give the most recent N work orders a page of their own.",
)
@runtime_dir_option
@json_option
@pass_app
def build_cmd(
    app: AppContext,
    out: Path,
    page_size: int,
    recent_rows: int,
    work_order_pages: int,
    runtime_dir: Path | None,
    as_json: bool,
):
    """Write the operator console: balances, ledgers, work orders, modules, reuse.

    The pages are plain HTML with inline SVG charts: open OUT/index.html from
    disk or publish OUT on GitHub Pages; nothing is fetched when they are viewed.
    Totals and charts cover all history; row listings cover the most recent rows.

    Example:

        workmill console build --out site --page-size 200
    """
    from workmill.console import Options, build_console

    options = Options(page_size, recent_rows, work_order_pages)
    report = build_console(app.repo, out, options, runtime_dir)
    if as_json:
        echo_json(
            {
                "out": str(report.out),
                "pages": report.pages,
                "transactions": report.transactions,
                "work_orders": report.work_orders,
                "seconds": round(report.seconds, 3),
            }
        )
    else:
        click.echo(
            f"console: {report.pages} pages from {report.transactions} transactions and "
            f"{report.work_orders} work orders in {report.seconds:.1f}s: "
            f"{report.out / 'index.html'}"
        )


COMMANDS: list[click.Command] = [console_group]
