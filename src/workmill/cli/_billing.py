"""CLI for the billing ledger and its state store: state, topup, balance, ledger."""

from __future__ import annotations

from pathlib import Path

import click

from workmill import billing_tables as bt
from workmill.backends import open_billing_store
from workmill.cli._common import (
    AppContext,
    billing_state_dir_option,
    echo_json,
    id_check,
    json_option,
    pass_app,
    reason_catalog,
)
from workmill.errors import LedgerError, NotFound, UsageError, WorkmillError
from workmill.ledger import parse_amount
from workmill.ledger.postings import check_reference
from workmill.state import BillingStore


def _store(app: AppContext) -> BillingStore:
    return open_billing_store(app.repo)


def _working_dir(app: AppContext, value: Path | None) -> Path:
    return value if value is not None else app.repo.root / ".billing-state"


@click.group("state")
def state_group() -> None:
    """Create, download and upload the billing state (docs/reference.md "Billing rules").

    Example:

        workmill state bootstrap && workmill state pull --billing-state-dir /tmp/bs
    """


@state_group.command("bootstrap")
@pass_app
def state_bootstrap(app: AppContext) -> None:
    """Create the billing-state tag from releases/<billing_state_tag>/ (no-op when it exists).

    Example:

        workmill state bootstrap
    """
    store = _store(app)
    created = store.bootstrap(app.repo.templates_dir)
    head = store.head_revision()
    if created:
        click.echo(f"created billing state {store.tag!r} at revision {head}")
    else:
        click.echo(f"billing state {store.tag!r} already exists (revision {head}); nothing done")


@state_group.command("pull")
@billing_state_dir_option
@pass_app
def state_pull(app: AppContext, billing_state_dir: Path | None) -> None:
    """Write the head revision as plain CSV tables (one file per table) to a directory.

    Example:

        workmill state pull --billing-state-dir /tmp/bs && head /tmp/bs/transactions.csv
    """
    d = _working_dir(app, billing_state_dir)
    m = _store(app).export(d)
    click.echo(f"pulled revision {m.revision} into {d}")


@state_group.command("push")
@billing_state_dir_option
@pass_app
def state_push(app: AppContext, billing_state_dir: Path | None) -> None:
    """Commit edits made in a pulled working copy.

    Admin tables (pricing, promotions, topup_methods, cache_index) are replaced;
    ledger tables may only gain rows that keep every invariant. A working copy
    pulled from an older revision is refused: pull again.

    Example:

        workmill state pull --billing-state-dir bs && $EDITOR bs/pricing.csv && workmill state push --billing-state-dir bs
    """
    d = _working_dir(app, billing_state_dir)
    res = _store(app).push(d)
    if res.changed:
        click.echo(f"pushed {', '.join(res.changed)} as revision {res.revision}")
    else:
        click.echo(f"nothing changed (revision {res.revision})")


@state_group.command("compact")
@pass_app
def state_compact(app: AppContext) -> None:
    """Move every stored chunk to its home release now, then collect garbage.

    Commits move chunks that became sealed a few at a time; this does all of
    them in one new revision. It is how a billing state written by a workmill
    from before segment releases (everything in one release) is migrated; the
    data does not change (docs/reference.md "GitHub mode").

    Example:

        workmill state compact
    """
    store = _store(app)
    revision, moved = store.compact()
    if moved:
        click.echo(f"moved {moved} chunk(s) to their releases as revision {revision}")
    else:
        click.echo(f"every chunk is already in its release (revision {revision}); nothing done")


@click.command("topup")
@click.option(
    "--tenant-id",
    required=True,
    callback=id_check("tenant"),
    help="Tenant to credit (must exist under tenants/).",
)
@click.option(
    "--topup-method-id", required=True, help="Top-up method (topup_methods.csv), e.g. AD."
)
@click.option("--amount-credits", required=True, help="Positive integer number of credits.")
@click.option(
    "--reference", required=True, help="Client reference; the same one twice is one top-up."
)
@click.option("--payment-id", default="", help="Payment id (8 Base62 characters), optional.")
@json_option
@pass_app
def topup(
    app: AppContext,
    tenant_id: str,
    topup_method_id: str,
    amount_credits: str,
    reference: str,
    payment_id: str,
    as_json: bool,
) -> None:
    """Credit a tenant's balance (idempotent per tenant and reference).

    Example:

        workmill topup --tenant-id Ab12Cd --topup-method-id AD --amount-credits 500 --reference inv-2024-001
    """
    try:  # a malformed value is a usage error (exit 2); the store re-checks both
        amount = parse_amount(amount_credits)
        check_reference(reference)
    except LedgerError as exc:
        raise UsageError(str(exc)) from exc
    if not (app.repo.tenant_dir(tenant_id) / "tenant.yml").is_file():
        raise NotFound(f"tenant {tenant_id!r} not found (no tenants/{tenant_id}/tenant.yml)")
    app.repo.tenant(tenant_id)  # must parse
    store = _store(app)
    outcome = store.commit_with_retry(
        lambda s: s.topup(tenant_id, topup_method_id, amount, reference, payment_id)
    )
    tx = outcome.transaction
    if as_json:
        echo_json({"created": outcome.created, "transaction": tx.to_row()})
    elif outcome.created:
        click.echo(
            f"topped up {tx.amount_credits} credits for {tenant_id}: transaction {tx.transaction_id}, "
            f"balance {tx.balance_after}"
        )
    else:
        click.echo(
            f"reference {reference!r} was already used: transaction {tx.transaction_id} "
            f"({tx.amount_credits} credits at {tx.created_at}); nothing changed"
        )


@click.command("balance")
@click.option(
    "--tenant-id",
    default=None,
    callback=id_check("tenant"),
    help="Only this tenant (exit 1 if it does not exist).",
)
@json_option
@pass_app
def balance(app: AppContext, tenant_id: str | None, as_json: bool) -> None:
    """Show every tenant's credit balance, with its name (tenants with 0 credits too).

    Example:

        workmill balance --tenant-id Ab12Cd
    """
    state = _store(app).load()
    rows = _tenant_balances(app, state.balances())
    if tenant_id is not None:
        rows = [r for r in rows if r["tenant_id"] == tenant_id]
        if not rows:
            raise NotFound(f"tenant {tenant_id!r} not found (no tenants/{tenant_id}/tenant.yml)")
    if as_json:
        echo_json(
            {
                "revision": state.revision,
                "balances": {r["tenant_id"]: r["balance_credits"] for r in rows},
                "tenants": rows,
            }
        )
        return
    if not rows:
        click.echo("no tenants yet (workmill new tenant --name NAME)")
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        note = "" if r["status"] in ("", "active") else f"  ({r['status']})"
        click.echo(f"{r['tenant_id']}  {r['name']:<{width}}  {r['balance_credits']:>10}{note}")


def _tenant_balances(app: AppContext, balances: dict[str, int]) -> list[dict]:
    """One row per tenant of the repo, plus any tenant the ledger knows whose folder is gone."""
    rows = []
    for tid in sorted({*app.repo.tenant_ids(), *balances}):
        name, status = "", ""
        try:
            spec = app.repo.tenant(tid)
            name, status = spec.name, str(spec.status)
        except WorkmillError:
            status = "no tenant.yml" if tid in balances else "invalid tenant.yml"
        rows.append(
            {
                "tenant_id": tid,
                "name": name,
                "status": status,
                "balance_credits": balances.get(tid, 0),
            }
        )
    return rows


@click.group("ledger")
def ledger_group() -> None:
    """Read and audit the billing ledger.

    Example:

        workmill ledger verify
    """


@ledger_group.command("show")
@click.option(
    "--tenant-id",
    default=None,
    callback=id_check("tenant"),
    help="Only this tenant's transactions.",
)
@click.option(
    "--work-order-id",
    default=None,
    callback=id_check("work order"),
    help="Only this work order's transactions (exit 1 if it does not exist).",
)
@json_option
@pass_app
def ledger_show(
    app: AppContext, tenant_id: str | None, work_order_id: str | None, as_json: bool
) -> None:
    """List transactions with their items.

    Example:

        workmill ledger show --tenant-id Ab12Cd --json
    """
    state = _store(app).load()
    txs = [
        r
        for r in state.rows(bt.TRANSACTIONS)
        if (tenant_id is None or r.get("tenant_id") == tenant_id)
        and (work_order_id is None or r.get("work_order_id") == work_order_id)
    ]
    if not txs:
        _check_known(app, state, tenant_id, work_order_id)
    catalog = reason_catalog(app)
    wanted = {r["transaction_id"] for r in txs}
    items: dict[str, list[dict[str, str]]] = {}
    for it in state.rows(bt.TRANSACTION_ITEMS):
        if it.get("transaction_id") in wanted:
            items.setdefault(it["transaction_id"], []).append(it)
    if as_json:
        echo_json(
            {
                "revision": state.revision,
                "transactions": [
                    {
                        **t,
                        "note_named": catalog.annotate(t.get("note", "")),
                        "items": items.get(t["transaction_id"], []),
                    }
                    for t in txs
                ],
            }
        )
        return
    if not txs:
        click.echo("no transactions")
    for t in txs:
        click.echo(
            f"{t['created_at']}  {t['transaction_id']}  {t['tenant_id']}  {t.get('work_order_id') or '-':8}  "
            f"{t['type']:<10} {int(t['amount_credits']):>10}  balance {t['balance_after']}  "
            f"{catalog.annotate(t.get('note', ''))}"
        )
        for it in items.get(t["transaction_id"], []):
            label = it.get("promo_code") or catalog.annotate(it.get("note") or "")
            click.echo(
                f"    {it['line_no']:>3} {it['kind']:<15} {it.get('module_id') or '':3} "
                f"{int(it['amount_credits']):>10}  {label}"
            )


def _check_known(app: AppContext, state, tenant_id: str | None, work_order_id: str | None) -> None:
    """An id that names nothing is a mistake (exit 1), not an empty ledger."""
    if tenant_id is not None and not (app.repo.tenant_dir(tenant_id) / "tenant.yml").is_file():
        raise NotFound(f"tenant {tenant_id!r} not found (no tenants/{tenant_id}/tenant.yml)")
    if work_order_id is None:
        return
    logged = any(r.get("work_order_id") == work_order_id for r in state.rows(bt.WORKORDERS_LOG))
    if logged:
        return
    try:
        app.repo.find_work_order(work_order_id)
    except NotFound:
        raise NotFound(
            f"work order {work_order_id!r} not found (no file under tenants/*/workorders/ "
            "and no history)"
        ) from None


@ledger_group.command("verify")
@json_option
@pass_app
def ledger_verify(app: AppContext, as_json: bool) -> None:
    """Audit the stored ledger; exit 1 listing every violation.

    Checks: balances equal the sum of transactions; balance_after chains hold and
    never go negative; items sum to |amount|; one SPEND and one REFUND per work
    order, REFUND <= SPEND; promo events match PROMO items; IDs well-formed and
    unique; stored tables match state_manifest.json.

    Example:

        workmill ledger verify
    """
    store = _store(app)
    head = store.head_revision()
    violations = store.verify()
    if as_json:
        echo_json(
            {"revision": head, "ok": not violations, "violations": [str(v) for v in violations]}
        )
    if violations:
        if not as_json:
            for v in violations:
                click.echo(f"violation: {v}", err=True)
        raise click.exceptions.Exit(1)
    if not as_json:
        click.echo(f"ledger OK at revision {head}")


COMMANDS: list[click.Command] = [state_group, topup, balance, ledger_group]
