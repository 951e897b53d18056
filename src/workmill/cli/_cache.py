"""``workmill cache list`` and ``workmill cache prune``: thin shells over workmill.cache.prune.

The index is ``cache_index.csv`` of the billing state: read from (and, by
``prune --delete``, committed to) the state store itself, with retry on
conflict; or, with ``--billing-state-dir DIR``, a pulled working copy that the
operator then commits with ``workmill state push``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from workmill import clock, ids
from workmill.backends import open_billing_store, open_cache_backend
from workmill.billing_tables import CACHE_INDEX
from workmill.cache.index import INDEX_COLUMNS, IndexMutation, apply_to_state
from workmill.cache.prune import ListedEntry, list_cache, prune
from workmill.cli._common import CONTEXT_SETTINGS, AppContext, echo_json, json_option, pass_app
from workmill.errors import NotFound
from workmill.tables import Row, header_with_extras, read_table, write_table


def billing_state_dir_option(f):  # type: ignore[no-untyped-def]
    """Like the shared bundle, but the default here is the state store itself."""
    return click.option(
        "--billing-state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Use the cache_index.csv of this pulled working copy instead of the state store.",
    )(f)


def _working_copy(billing_state_dir: Path) -> Path:
    path = billing_state_dir / CACHE_INDEX
    if not path.is_file():
        raise NotFound(
            f"{path}: cache index not found (pull the billing state first: "
            f"workmill state pull --billing-state-dir {billing_state_dir})"
        )
    return path


def _read_index(app: AppContext, billing_state_dir: Path | None) -> list[Row]:
    """The index from a working copy when one is named, else from the state store itself."""
    if billing_state_dir is not None:
        return read_table(_working_copy(billing_state_dir), INDEX_COLUMNS)
    return open_billing_store(app.repo).load().rows(CACHE_INDEX)


def _commit_index(app: AppContext, billing_state_dir: Path | None, mutation: IndexMutation) -> str:
    """Apply the prune's index change where it was read from; says where it went."""
    if billing_state_dir is not None:
        path = _working_copy(billing_state_dir)
        rows = mutation(read_table(path, INDEX_COLUMNS))
        write_table(path, header_with_extras(INDEX_COLUMNS, rows), rows)
        return f"{path} (commit it with `workmill state push`)"
    store = open_billing_store(app.repo)
    store.commit_with_retry(lambda state: apply_to_state(state, [mutation]))
    return f"billing state {store.tag!r}"


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _tenant_option(value: str | None) -> str | None:
    if value is not None and (msg := ids.check(ids.IdKind.TENANT, value)):
        raise click.BadParameter(msg, param_hint="--tenant-id")
    return value


def _line(x: ListedEntry) -> str:
    state = "expired" if x.expired else "live"
    if not x.in_backend:
        state += ",missing"
    if not x.in_index:
        state += ",unindexed"
    if x.problem and x.in_backend:
        state += ",corrupt"
    return (
        f"{x.cache_key[:16]}  {x.tenant_id or '-':6}  {x.module_id or '-':3}  "
        f"{x.module_version or '-':10}  {human_size(x.size_bytes):>10}  "
        f"{x.expires_at or '-':20}  {x.last_hit_at or '-':20}  {x.origin or '-':8}  {state}"
    )


@click.group("cache", context_settings=CONTEXT_SETTINGS)
def cache_group() -> None:
    """Cached module outputs: list entries, prune expired ones.

    Example:

    \b
        workmill cache list --expired
        workmill cache prune --delete
    """


@cache_group.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--tenant-id", default=None, help="Only entries of this tenant.")
@click.option(
    "--expired",
    is_flag=True,
    help="Only entries that can no longer be served (index row, else the entry's own, expired).",
)
@billing_state_dir_option
@json_option
@pass_app
def list_command(
    app: AppContext,
    tenant_id: str | None,
    expired: bool,
    billing_state_dir: Path | None,
    as_json: bool,
) -> None:
    """List every entry in the cache backend, joined with cache_index.csv.

    Index rows whose entry is not in this backend are listed too (state
    'missing'); entries the index does not know yet are 'unindexed'.

    Example:

        workmill cache list --tenant-id Ab12Cd --json
    """
    tenant_id = _tenant_option(tenant_id)
    rows = _read_index(app, billing_state_dir)
    entries = open_cache_backend(app.repo).list_entries()
    listed = list_cache(rows, entries, clock.now(), tenant_id=tenant_id, expired_only=expired)
    if as_json:
        echo_json({"entries": [asdict(x) for x in listed]})
        return
    click.echo(
        f"{'key':16}  {'tenant':6}  mod  {'version':10}  {'size':>10}  {'expires_at':20}  "
        f"{'last_hit_at':20}  {'origin':8}  state"
    )
    for x in listed:
        click.echo(_line(x))
    total = sum(x.size_bytes for x in listed if x.in_backend)
    click.echo(f"{len(listed)} entr{'y' if len(listed) == 1 else 'ies'}, {human_size(total)}")


@cache_group.command("prune", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--delete", "delete", is_flag=True, help="Really delete (default: dry run, change nothing)."
)
@billing_state_dir_option
@json_option
@pass_app
def prune_command(
    app: AppContext, delete: bool, billing_state_dir: Path | None, as_json: bool
) -> None:
    """Register orphan entries and delete expired ones (dry run unless --delete).

    Every backend entry missing from cache_index.csv is registered as
    origin=orphan, expiring orphan_cache_hold_days (workmill.yml, 365) from
    now. Expired entries are deleted from the backend and their index rows
    removed. Without --delete nothing is written: the output says what would be.
    The index change is committed to the billing state (retried on conflict), or
    written to --billing-state-dir's working copy for `workmill state push`.

    Example:

    \b
        workmill cache prune            # what would happen
        workmill cache prune --delete   # do it
    """
    rows = _read_index(app, billing_state_dir)
    report = prune(
        open_cache_backend(app.repo),
        rows,
        now=clock.now(),
        hold_days=app.repo.config.orphan_cache_hold_days,
        delete=delete,
    )
    where = ""
    if delete and report.index_changed and report.mutation is not None:
        where = _commit_index(app, billing_state_dir, report.mutation)
    if as_json:
        echo_json({**report.to_json(), "index_written_to": where or None})
    else:
        _print_prune(report)
        if where:
            click.echo(f"cache index updated in {where}")
    if report.failed:
        raise click.exceptions.Exit(1)


def _print_prune(report) -> None:  # type: ignore[no-untyped-def]
    verb_reg, verb_del = (
        ("registered", "deleted")
        if report.delete
        else (
            "would register",
            "would delete",
        )
    )
    if not report.delete:
        click.echo("dry run: nothing changed (use --delete to apply)")
    reg_bytes = sum(int(r.get("size_bytes") or 0) for r in report.registered)
    click.echo(
        f"{verb_reg} {len(report.registered)} orphan entr"
        f"{'y' if len(report.registered) == 1 else 'ies'} ({human_size(reg_bytes)}), "
        f"held until {report.registered[0]['expires_at'] if report.registered else '-'}"
    )
    for r in report.registered:
        click.echo(
            f"  orphan   {r['cache_key']}  tenant {r['tenant_id'] or '-'}  "
            f"module {r['module_id'] or '-'}  {human_size(int(r['size_bytes'] or 0))}"
        )
    targets = [x for x in report.expired if x.in_backend]
    if report.delete:
        done = set(report.deleted)
        targets = [x for x in targets if x.cache_key in done]
    size = sum(x.size_bytes for x in targets)
    click.echo(
        f"{verb_del} {len(targets)} expired entr{'y' if len(targets) == 1 else 'ies'} "
        f"({human_size(size)})"
    )
    for x in targets:
        click.echo(
            f"  expired  {x.cache_key}  tenant {x.tenant_id or '-'}  module {x.module_id or '-'}"
            f"  {human_size(x.size_bytes)}  expired_at {x.expires_at}"
        )
    rows_only = [x for x in report.expired if not x.in_backend]
    if rows_only:
        verb = "removed" if report.delete else "would remove"
        click.echo(f"{verb} {len(rows_only)} expired index row(s) with no entry in this backend")
    for key, message in report.failed:
        click.echo(f"error: could not delete {key}: {message}", err=True)
    if report.leftovers:
        verb = "removed" if report.delete else "would remove"
        n = len(report.leftovers_removed) if report.delete else len(report.leftovers)
        size = sum(b for _, b in report.leftovers)
        click.echo(f"{verb} {n} leftover(s) of interrupted saves ({human_size(size)})")
    if report.dangling:
        click.echo(
            f"kept {len(report.dangling)} live index row(s) with no entry in this backend "
            "(possibly held by another machine's cache)"
        )


COMMANDS: list[click.Command] = [cache_group]
