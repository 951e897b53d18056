"""CLI for orchestration: run, plan, execute, settle, release, demo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from workmill.backends import open_billing_store
from workmill.cli._common import (
    AppContext,
    PlainConsole,
    echo_err,
    echo_json,
    id_check,
    is_terminal,
    json_option,
    make_console,
    pass_app,
    runtime_dir_option,
    summary_console,
)
from workmill.errors import NotFound, UsageError, WorkmillError
from workmill.orchestrator import (
    Plan,
    RunContext,
    RunOptions,
    RunResult,
    default_plan_path,
    execute_plan,
    plan,
    run,
    settle_plan,
    sharding,
    unsettled,
)
from workmill.orchestrator.progress import (
    LiveReporter,
    Reporter,
    reason_label,
    skipped_line,
    summary_table,
    summary_text,
    touched,
    with_reason_names,
)
from workmill.specs import RELEASE_TAG

if TYPE_CHECKING:
    from rich.console import Console


def _filters(f):
    f = click.option(
        "--work-order-id",
        default=None,
        callback=id_check("work order"),
        help="Only this work order.",
    )(f)
    f = click.option(
        "--tenant-id",
        default=None,
        callback=id_check("tenant"),
        help="Only this tenant's work orders.",
    )(f)
    return f


def _ctx(app: AppContext, runtime_dir, as_json: bool, **opts) -> RunContext:
    show = not as_json and is_terminal(stderr=True)
    return RunContext(
        app.repo,
        RunOptions(runtime_dir=runtime_dir, **opts),
        reporter=LiveReporter() if show else Reporter(),
    )


def _sandbox_preflight(app: AppContext) -> None:
    """Hide workmill's credentials from /proc, then fail closed before anything is planned
    or charged when the configured sandbox cannot be had; say so on every run when
    ``auto`` falls back to none (docs/reference.md "Sandbox and tenant isolation")."""
    from workmill.sandbox import choose_sandbox, sandbox_setting, scrub_own_secrets

    scrub_own_secrets()  # before planning: same-user processes cannot read our token
    choice = choose_sandbox(sandbox_setting(app.repo.config.sandbox))
    if choice.warning:
        click.echo(f"warning: {choice.warning}", err=True)


def _rows(result: RunResult, ctx: RunContext) -> list[dict]:
    """Summary rows with reason names, and each module's times and log files."""
    from workmill.history import module_logs_dir
    from workmill.reasons import catalog_for_display, name_of

    names = name_of(catalog_for_display(ctx.repo.maintenance_dir))
    rows = with_reason_names(result.summary_rows(), names)
    for r in rows:
        for m in r["modules"]:
            if isinstance(m, dict):
                logs = module_logs_dir(
                    ctx.runtime_dir, r["tenant_id"], r["work_order_id"], m["module_id"]
                )
                m["logs_dir"] = str(logs) if logs.is_dir() else None
                m["logs"] = sorted(str(p) for p in logs.glob("step-*.log"))
    return rows


def _print(result: RunResult, as_json: bool, ctx: RunContext) -> None:
    rows = _rows(result, ctx)
    from workmill.cli._dashboard import report_run  # docs/reference.md "Status dashboard"

    report_run(ctx.repo, rows, result.dry_run)
    if as_json:
        echo_json(
            {
                "dry_run": result.dry_run,
                "work_orders": rows,
                "not_run": len(rows) - len(touched(rows)),
            }
        )
        for w in ctx.reporter.warnings:  # stdout stays JSON; a warning is still said
            click.echo(f"warning: {w}", err=True)
        return
    console = summary_console()
    _print_summary(rows, console)
    plain = isinstance(console, PlainConsole)
    for w in ctx.reporter.warnings:
        console.print(f"warning: {w}" if plain else f"[yellow]warning:[/] {w}")


def _print_summary(rows: list[dict], console: Console | PlainConsole) -> None:
    """The table of work orders this run touched, why any was refused or failed (with the
    log to read), and a count of those it did not run."""
    shown = touched(rows)
    if shown and isinstance(console, PlainConsole):
        console.print(summary_text(shown))
    elif shown:
        console.print(summary_table(shown))
    elif not rows:
        console.print("no work orders to process")
    for r in shown:
        wo = r["work_order_id"]
        if r["status"] in {"REJECTED", "INVALID", "BUSY", "UNSETTLED"} and r["message"]:
            label = reason_label(r)
            why = f"{label}: {r['message']}" if label else r["message"]
            console.print(f"{wo} {r['status']}: {why}", highlight=False, soft_wrap=True)
        for m in r["modules"]:
            if isinstance(m, dict) and m["status"] == "FAILED":
                console.print(
                    f"{wo} module {m['module_id']} FAILED {reason_label(m)}: "
                    f"{m['message'] or 'no message'}\n    log: {m['logs_dir'] or '(none kept)'}"
                    f"  (workmill logs {wo} {m['module_id']})",
                    highlight=False,
                    soft_wrap=True,
                )
    line = skipped_line(rows)
    if line:
        hint = " (`workmill history` lists them)" if "processed" in line else ""
        console.print(line + hint, highlight=False, soft_wrap=True)


@click.command("run")
@_filters
@click.option("--dry-run", is_flag=True, help="Price and plan without writing anything.")
@click.option("--max-parallel", type=click.IntRange(1, 256), default=None, help="Modules at once.")
@runtime_dir_option
@json_option
@pass_app
def run_cmd(app, tenant_id, work_order_id, dry_run, max_parallel, runtime_dir, as_json):
    """Plan, execute and settle every enabled work order not yet processed.

    Example:

        workmill run --tenant-id Ab12Cd --max-parallel 4
    """
    if not dry_run:
        _sandbox_preflight(app)
    ctx = _ctx(
        app,
        runtime_dir,
        as_json,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        dry_run=dry_run,
        max_parallel=max_parallel,
    )
    result = run(ctx)
    _print(result, as_json, ctx)
    _fail_if_unsettled(result)


def _fail_if_unsettled(result: RunResult) -> None:
    """Exit 1 naming each charged work order this command had to leave RUNNING."""
    waiting = unsettled(result)
    for d in waiting:
        echo_err(f"error: {d.tenant_id}/{d.work_order_id} not settled: {d.message}")
    if waiting:
        raise click.exceptions.Exit(1)


def _plan_path_option(f):
    return click.option(
        "--plan-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Plan file passed between the phases (default: <runtime-dir>/plan.json).",
    )(f)


@click.command("plan")
@_filters
@click.option("--dry-run", is_flag=True, help="Price and plan without writing anything.")
@click.option(
    "--shards",
    "max_shards",
    type=click.IntRange(1, 256),
    default=None,
    help="Fan-out: also split the plan into at most N shards (one per linked group at most); "
    'with --json print only the GitHub matrix {"shard": ["1/N", ...]}.',
)
@_plan_path_option
@runtime_dir_option
@json_option
@pass_app
def plan_cmd(app, tenant_id, work_order_id, dry_run, max_shards, plan_file, runtime_dir, as_json):
    """Phase 1: reject or charge (SPEND) work orders and write the plan file.

    Example:

        workmill plan && workmill execute && workmill settle

        workmill plan --plan-file runtime/plan.json --shards 4 --json > matrix.json
    """
    ctx = _ctx(
        app, runtime_dir, True, tenant_id=tenant_id, work_order_id=work_order_id, dry_run=dry_run
    )
    p = plan(ctx)
    path = plan_file or default_plan_path(ctx)
    if not dry_run:
        p.write(path)
    grid = sharding.matrix(p.work_orders, max_shards) if max_shards else None
    if as_json:
        echo_json(grid if grid is not None else json.loads(p.model_dump_json()))
        return
    for wo in p.work_orders:
        click.echo(
            f"planned {wo.tenant_id}/{wo.work_order_id}: spend {wo.spend_credits}, "
            f"{len(wo.modules)} module(s)"
        )
    for d in p.decisions:
        click.echo(f"{d.status.lower()} {d.tenant_id}/{d.work_order_id}: {d.message}")
    if not dry_run:
        click.echo(f"plan written to {path}")
    if grid is not None:
        click.echo("shards: " + " ".join(grid["shard"]))


def _read_plan(ctx: RunContext, plan_file: Path | None) -> Plan:
    path = plan_file or default_plan_path(ctx)
    if not path.exists():
        raise NotFound(f"{path}: no plan file (run `workmill plan` first)")
    return Plan.read(path)


def _shard_arg(ctx, param, value: str | None) -> sharding.ShardSpec | None:
    if value is None:
        return None
    try:
        return sharding.parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("execute")
@_plan_path_option
@click.option("--max-parallel", type=click.IntRange(1, 256), default=None, help="Modules at once.")
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    callback=_shard_arg,
    help="Run only shard K of N (1-based) of the plan; other runners run the other shards.",
)
@runtime_dir_option
@json_option
@pass_app
def execute_cmd(app, plan_file, max_parallel, shard, runtime_dir, as_json):
    """Phase 2: run the planned modules (journaled in the runtime dir).

    With --shard K/N only that shard's work orders run, and a receipt
    runtime/shards/K-of-N.json tells settle the shard finished.

    Example:

        workmill execute --plan-file runtime/plan.json --max-parallel 4

        workmill execute --plan-file runtime/plan.json --shard 2/3
    """
    _sandbox_preflight(app)
    ctx = _ctx(app, runtime_dir, as_json, max_parallel=max_parallel)
    outcomes = execute_plan(ctx, _read_plan(ctx, plan_file), shard)
    data = {f"{t}/{w}": {m: o.status for m, o in mods.items()} for (t, w), mods in outcomes.items()}
    if as_json:
        echo_json(data)
    else:
        for k, mods in data.items():
            click.echo(f"{k}: " + ", ".join(f"{m} {s}" for m, s in mods.items()))


@click.command("settle")
@_plan_path_option
@click.option(
    "--shards",
    type=click.IntRange(1, 256),
    default=None,
    help="The plan ran as N shards: settle only work orders whose shard left a finished "
    "receipt (default: N from the receipts in the runtime dir, if any).",
)
@runtime_dir_option
@json_option
@pass_app
def settle_cmd(app, plan_file, shards, runtime_dir, as_json):
    """Phase 3: REFUND, logs, cache index and release maps in one commit.

    Work orders of a shard whose results are missing stay RUNNING with their
    SPEND (shown as UNSETTLED, exit 1) until that shard is executed and settle
    runs again.

    Example:

        workmill settle --plan-file runtime/plan.json

        workmill settle --plan-file runtime/plan.json --shards 3
    """
    ctx = _ctx(app, runtime_dir, True)
    result = settle_plan(ctx, _read_plan(ctx, plan_file), shards)
    _print(result, as_json, ctx)
    _fail_if_unsettled(result)


@click.group("release")
def release_group() -> None:
    """Work-order releases (artifacts) in the configured store.

    Example:

        workmill release list && workmill release download wo-Ab12Cd-Qw3Er5Ty --dir out/
    """


def _release_info(store, tag: str) -> dict:
    from workmill.artifacts.manifest import ReleaseManifest
    from workmill.artifacts.naming import manifest_name

    m = RELEASE_TAG.fullmatch(tag)
    assets = store.list_assets(tag)
    name = manifest_name(m.group(1), m.group(2)) if m else ""
    info = {"tag": tag, "complete": name in assets, "assets": len(assets), "items": None}
    if name in assets:
        manifest = ReleaseManifest.parse(store.read_asset(tag, name), f"{tag}/{name}")
        info.update(
            owning_tenant_id=manifest.owning_tenant_id,
            items=len(manifest.items),
            size_bytes=sum(i.size_bytes for i in manifest.items),
        )
    return info


@release_group.command("list")
@click.option(
    "--tenant-id", default=None, callback=id_check("tenant"), help="Only this tenant's releases."
)
@json_option
@pass_app
def release_list(app: AppContext, tenant_id, as_json):
    """List work-order releases, whether complete (manifest uploaded) and their size.

    Example:

        workmill release list --tenant-id Ab12Cd
    """
    store = open_billing_store(app.repo).releases
    tags = [t for t in store.list_tags() if RELEASE_TAG.fullmatch(t)]
    if tenant_id:
        tags = [t for t in tags if t.split("-")[1] == tenant_id]
    infos = [_release_info(store, t) for t in sorted(tags)]
    if as_json:
        echo_json(infos)
        return
    if not infos:
        click.echo("no releases")
    for i in infos:
        state = (
            f"{i['items']} item(s), {i.get('size_bytes', 0)} bytes"
            if i["complete"]
            else ("INCOMPLETE (no manifest)")
        )
        click.echo(f"{i['tag']}  {state}")


@release_group.command("download")
@click.argument("tag")
@click.option(
    "--dir",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write the files (created).",
)
@pass_app
def release_download(app: AppContext, tag: str, dest: Path):
    """Download a complete release: its manifest and every item, each sha256-verified.

    Example:

        workmill release download wo-Ab12Cd-Qw3Er5Ty --dir out/
    """
    from workmill.artifacts.manifest import ReleaseManifest
    from workmill.artifacts.naming import manifest_name

    m = RELEASE_TAG.fullmatch(tag)
    if not m:
        raise UsageError(f"TAG: {tag!r} is not a work-order release tag wo-<tenant>-<wo>")
    store = open_billing_store(app.repo).releases
    if not store.tag_exists(tag):
        raise NotFound(f"release {tag} not found")
    name = manifest_name(m.group(1), m.group(2))
    if name not in store.list_assets(tag):
        raise WorkmillError(f"release {tag} is incomplete: it has no manifest {name}")
    data = store.read_asset(tag, name)
    manifest = ReleaseManifest.parse(data, f"{tag}/{name}")
    dest.mkdir(parents=True, exist_ok=True)
    for item in manifest.items:
        if (dest / item.filename).resolve().parent != dest.resolve():
            raise WorkmillError(f"{tag}/{name}: item file name {item.filename!r} leaves --dir")
        blob = store.read_asset(tag, item.filename)
        if hashlib.sha256(blob).hexdigest() != item.sha256:
            raise WorkmillError(f"{tag}/{item.filename}: sha256 does not match the manifest")
        (dest / item.filename).write_bytes(blob)
    (dest / name).write_bytes(data)
    click.echo(f"downloaded {len(manifest.items)} item(s) and {name} to {dest}")


@release_group.command("publish")
@click.argument("staged", type=click.Path(file_okay=False, path_type=Path))
@json_option
@pass_app
def release_publish(app: AppContext, staged: Path, as_json: bool):
    """Upload releases staged by a job without a write token (manifest last, idempotent).

    GitHub mode: execute shards write work-order releases to STAGED
    (WORKMILL_STAGE_RELEASES); the settle job, which runs no tenant code,
    publishes them. A missing STAGED directory publishes nothing.

    Example:

        workmill release publish runtime/publish
    """
    from workmill.state.staging import publish_staged

    report = publish_staged(open_billing_store(app.repo).releases, staged)
    if as_json:
        echo_json(
            {
                "uploaded": report.uploaded,
                "already_there": report.already_there,
                "deleted": report.deleted,
            }
        )
        return
    click.echo(
        f"published {len(report.uploaded)} asset(s); {len(report.already_there)} already "
        f"there; {len(report.deleted)} stray(s) deleted"
    )


@click.command("demo")
@click.option(
    "--dir",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to copy the example repo (default: a fresh workmill-demo-* folder in the "
    "system temp dir).",
)
@json_option
def demo_cmd(target: Path | None, as_json: bool):
    """Copy the example platform repo, compile, bootstrap, top up, run, and show the results.

    Some work orders fail or are rejected on purpose (each shows one billing rule);
    the demo says which, and exits 1 only if an outcome differs from demo.yml.

    Example:

        workmill demo --dir /tmp/wm-demo
    """
    from workmill.orchestrator.demo import run_demo

    show = not as_json and is_terminal(stderr=True)
    out = run_demo(target, LiveReporter() if show else Reporter())
    ctx = RunContext(out.repo, RunOptions())
    rows = _rows(out.result, ctx)
    if as_json:
        echo_json(
            {
                "repo": str(out.repo.root),
                "work_orders": rows,
                "balances": out.balances,
                "deliberate": out.deliberate,
                "mismatches": out.mismatches,
            }
        )
    else:
        _print_demo(out, rows)
    if out.mismatches:
        for m in out.mismatches:
            click.echo(f"error: demo outcome differs from demo.yml: {m}", err=True)
        raise click.exceptions.Exit(1)


def _print_demo(out, rows: list[dict]) -> None:
    console = make_console()
    _print_summary(rows, console)
    console.print("balances: " + ", ".join(f"{t} {b}" for t, b in out.balances.items()))
    if out.deliberate and not out.mismatches:
        console.print("\nThese failures and rejections are deliberate (see demo.yml):")
        for wo, why in out.deliberate.items():
            console.print(f"  {wo}: {why}", highlight=False)
    r = out.repo.root
    console.print(f"\nThe demo platform repo is at [bold]{r}[/]. Try:", highlight=False)
    for cmd, what in (
        ("history", "what ran, with reasons"),
        ("logs A4Strct1 006", "the step log of a failed module"),
        ("ledger show", "the SPEND/REFUND ledger"),
        ("release list", "published artifacts"),
        ("ledger verify", "the audit"),
    ):
        console.print(f"  workmill --repo {r} {cmd:<20} # {what}", highlight=False)


COMMANDS: list[click.Command] = [
    run_cmd,
    plan_cmd,
    execute_cmd,
    settle_cmd,
    release_group,
    demo_cmd,
]
