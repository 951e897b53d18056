"""Repo commands: init, new, validate, maintenance, schema, inspect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from workmill.cli._common import (
    CONTEXT_SETTINGS,
    AppContext,
    echo_err,
    echo_json,
    id_check,
    json_option,
    pass_app,
)
from workmill.errors import UsageError


@click.command("init", context_settings=CONTEXT_SETTINGS)
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--github",
    "repository",
    default=None,
    metavar="OWNER/NAME",
    help="GitHub mode: store and cache on GitHub, workflows, hash-pinned install of this workmill.",
)
@click.option(
    "--install-from",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --github: pin workmill to this wheel inside the repo (a fork, a local build).",
)
@pass_app
def init_cmd(
    app: AppContext, directory: Path | None, repository: str | None, install_from: Path | None
) -> None:
    """Scaffold a new platform repo in DIRECTORY (default: --repo or the current directory).

    Writes workmill.yml, config/global_reasons.yml, the ID registries, the
    billing-state templates, .gitignore and a README, then compiles
    maintenance-state/. Refuses a directory that already has workmill.yml,
    except with --github, which switches an existing repo to GitHub mode.

    Example:

        workmill init my-platform
        workmill init my-platform --github acme/platform
    """
    from workmill.repo import CONFIG_FILE
    from workmill.scaffold import init_repo

    root = directory or Path(app.repo_arg or ".")
    if install_from is not None and repository is None:
        raise UsageError("--install-from needs --github OWNER/NAME")
    pins = None
    if repository is not None:  # pins first: a failure leaves nothing behind
        from workmill.github._enable import check_repository
        from workmill.github._install import resolve_pins

        check_repository(repository)
        pins = resolve_pins(install_from=install_from, root=root)
    if repository is None or not (root / CONFIG_FILE).exists():
        root = init_repo(root).root
        click.echo(f"initialised platform repo at {root}")
    if repository is not None and pins is not None:
        from workmill.github._enable import enable_github

        done = enable_github(root, repository, pins)
        click.echo(f"GitHub mode for {repository}: store: github, cache_backend: github")
        for path in done.written:
            click.echo(f"  wrote {path}")
        for note in done.notes:
            click.echo(f"  - {note}")


@click.group("new", context_settings=CONTEXT_SETTINGS)
def new_group() -> None:
    """Create a module, tenant or work order skeleton with a fresh ID.

    Example:

        workmill new tenant --name "Acme Media"
    """


@new_group.command("module", context_settings=CONTEXT_SETTINGS)
@click.option("--name", required=True, help="Human name of the module.")
@click.option(
    "--category-id",
    required=True,
    callback=id_check("category"),
    help="Registered category (two digits), e.g. 04; decides the module's reason codes.",
)
@click.option("--random", "random_id", is_flag=True, help="Random Base62 id, not the next number.")
@pass_app
def new_module_cmd(app: AppContext, name: str, category_id: str, random_id: bool) -> None:
    """Create modules/<id>/ (next free number 001-999) and register it.

    Prints the new id alone on stdout (the folder goes to stderr).

    Example:

        MODULE=$(workmill new module --name "Ingest CSV" --category-id 02)
    """
    from workmill.scaffold import new_module

    module_id = new_module(app.repo, name, category_id, random=random_id)
    # the id alone on stdout, so `MODULE=$(workmill new module ...)` captures it
    echo_err(f"created modules/{module_id}/ (run `workmill maintenance` next)")
    click.echo(module_id)


@new_group.command("tenant", context_settings=CONTEXT_SETTINGS)
@click.option("--name", required=True, help="Human name of the tenant.")
@pass_app
def new_tenant_cmd(app: AppContext, name: str) -> None:
    """Create tenants/<id>/tenant.yml with a fresh 6-character ID.

    Prints the new id alone on stdout (the file name goes to stderr).

    Example:

        TENANT=$(workmill new tenant --name "Acme Media")
    """
    from workmill.scaffold import new_tenant

    tenant_id = new_tenant(app.repo, name)
    echo_err(f"created tenants/{tenant_id}/tenant.yml (run `workmill maintenance` next)")
    click.echo(tenant_id)


@new_group.command("work-order", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--tenant-id",
    required=True,
    callback=id_check("tenant"),
    help="Tenant that owns the work order.",
)
@click.option(
    "--module-id",
    "module_ids",
    multiple=True,
    required=True,
    callback=id_check("module"),
    help="Module to run (repeat); missing dependencies are added.",
)
@click.option(
    "--purchase-artifacts",
    "artifacts",
    is_flag=True,
    help="Buy each module's outputs as release artifacts (purchase_release_artifacts: true).",
)
@pass_app
def new_work_order_cmd(
    app: AppContext, tenant_id: str, module_ids: tuple[str, ...], artifacts: bool
) -> None:
    """Create tenants/<tenant>/workorders/<id>.yml for the given modules.

    Prints the new id alone on stdout (the file name goes to stderr).

    Example:

        WORK_ORDER=$(workmill new work-order --tenant-id Ab12Cd --module-id 001 --module-id 002)
    """
    from workmill.scaffold import new_work_order

    wo = new_work_order(app.repo, tenant_id, list(module_ids), purchase_artifacts=artifacts)
    echo_err(f"created tenants/{tenant_id}/workorders/{wo}.yml")
    click.echo(wo)


@click.command("validate", context_settings=CONTEXT_SETTINGS)
@json_option
@click.pass_context
def validate_cmd(ctx: click.Context, as_json: bool) -> None:
    """Check the whole platform repo and print every problem (exit 1 if any).

    Each problem is `path:line: field: message`.

    Example:

        workmill validate
    """
    from workmill.validate import validate_repo_report

    report = validate_repo_report(ctx.find_object(AppContext).repo)
    if as_json:
        echo_json(
            {
                "ok": report.ok,
                "modules": report.modules,
                "tenants": report.tenants,
                "work_orders": report.work_orders,
                "problems": [
                    {"path": p.path, "line": p.line, "field": p.field, "message": p.message}
                    for p in report.problems
                ],
                "warnings": [
                    {"path": p.path, "line": p.line, "field": p.field, "message": p.message}
                    for p in report.warnings
                ],
            }
        )
    else:
        for p in report.problems:
            click.echo(str(p))
        for p in report.warnings:
            click.echo(f"warning: {p}", err=True)
        if report.ok:
            click.echo(report.summary())
        else:
            click.echo(f"{len(report.problems)} problem(s)", err=True)
    if not report.ok:
        ctx.exit(1)


@click.command("maintenance", context_settings=CONTEXT_SETTINGS)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@json_option
@click.pass_context
def maintenance_cmd(ctx: click.Context, check: bool, as_json: bool) -> None:
    """Compile maintenance-state/ from modules, tenants and reasons.

    Deterministic: a second run changes no byte. Admin-owned values
    (reason_policy.csv, module_artifacts_policy.csv, the registries) are kept.
    Refuses to compile, listing every problem, when modules/tenants/reasons
    are invalid (invalid work orders do not block it).

    Example:

        workmill maintenance --check
    """
    from workmill.maintenance import run_maintenance

    result = run_maintenance(ctx.find_object(AppContext).repo, check=check)
    if as_json:
        echo_json({"check": check, "changed": result.changed, "unchanged": result.unchanged})
    elif check:
        for name in result.changed:
            click.echo(f"drift: maintenance-state/{name}")
        if not result.changed:
            click.echo("maintenance-state is up to date")
    else:
        for name in result.changed:
            click.echo(f"wrote maintenance-state/{name}")
        click.echo(f"{len(result.changed)} changed, {len(result.unchanged)} unchanged")
    if check and result.changed:
        if not as_json:
            click.echo(
                f"{len(result.changed)} file(s) drifted; run `workmill maintenance`", err=True
            )
        ctx.exit(1)


@click.command("schema", context_settings=CONTEXT_SETTINGS)
@click.argument("kind", required=False)
@json_option
def schema_cmd(kind: str | None, as_json: bool) -> None:
    """Print the JSON Schema of a spec KIND; without KIND, list the kinds.

    Editors use these schemas: `workmill init` writes them to config/schemas/ and
    each scaffolded file names its schema on a `# yaml-language-server:` line.

    Example:

        workmill schema

        workmill schema work-order > work-order.schema.json
    """
    from workmill.specs import SCHEMA_KINDS, SCHEMA_TITLES, json_schema

    if kind is None:
        if as_json:
            echo_json({k: SCHEMA_TITLES.get(k, k) for k in sorted(SCHEMA_KINDS)})
            return
        width = max(len(k) for k in SCHEMA_KINDS)
        for k in sorted(SCHEMA_KINDS):
            click.echo(f"{k:<{width}}  {SCHEMA_TITLES.get(k, '')}")
        return
    if kind not in SCHEMA_KINDS:
        raise UsageError(f"unknown schema kind {kind!r}; one of: {', '.join(sorted(SCHEMA_KINDS))}")
    echo_json(json_schema(kind))


@click.group("inspect", context_settings=CONTEXT_SETTINGS)
def inspect_group() -> None:
    """Show the resolved view of a module or work order.

    Example:

        workmill inspect module 001
    """


def _print_view(view: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    console.print(f"[bold]{title}[/bold]")
    for key, value in view.items():
        if key == "reason_codes" and value:
            table = Table(*value[0].keys(), title=key)
            for row in value:
                table.add_row(*(_short(v) for v in row.values()))
            console.print(table)
        elif key == "modules":
            for i, mod in enumerate(value, start=1):
                console.print(f"[bold]{i}. module {mod['module_id']}[/bold] {mod['name']}")
                for k, v in mod.items():
                    if k not in {"module_id", "name"}:
                        console.print(f"     {k}: {_short(v)}", highlight=False)
        else:
            console.print(f"  {key}: {_short(value)}", highlight=False)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        if set(value) == {"ok", "values", "problems"}:
            body = ", ".join(f"{k}={v!r}" for k, v in value["values"].items()) or "(none)"
            return body if value["ok"] else f"{body}  INVALID: {'; '.join(value['problems'])}"
        return ", ".join(f"{k}={_short(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value) or "-"
    return "-" if value is None else str(value)


@inspect_group.command("module", context_settings=CONTEXT_SETTINGS)
@click.argument("module_id")
@json_option
@pass_app
def inspect_module_cmd(app: AppContext, module_id: str, as_json: bool) -> None:
    """Dependencies in run order, params after defaults, reason codes, artifact gates.

    Example:

        workmill inspect module 001 --json
    """
    from workmill.inspection import inspect_module

    view = inspect_module(app.repo, module_id)
    if as_json:
        echo_json(view)
    else:
        _print_view(view, f"module {module_id}")


@inspect_group.command("work-order", context_settings=CONTEXT_SETTINGS)
@click.argument("work_order_id")
@json_option
@pass_app
def inspect_work_order_cmd(app: AppContext, work_order_id: str, as_json: bool) -> None:
    """Modules in run order with resolved params, reuse, cache and artifact eligibility.

    Example:

        workmill inspect work-order Qw3Er5Ty
    """
    from workmill.inspection import inspect_work_order

    view = inspect_work_order(app.repo, work_order_id)
    if as_json:
        echo_json(view)
    else:
        _print_view(view, f"work order {work_order_id}")


COMMANDS: list[click.Command] = [
    init_cmd,
    new_group,
    validate_cmd,
    maintenance_cmd,
    schema_cmd,
    inspect_group,
]
