"""``workmill keygen`` and ``workmill licence issue|verify|show`` (docs/reference.md
"Registry, tiers, licences, quotas, usage"). The private key is read, used to sign
and dropped: it is never printed, logged or written anywhere but its own file."""

from __future__ import annotations

from pathlib import Path

import click

from workmill.cli._common import CONTEXT_SETTINGS, AppContext, echo_json, json_option, pass_app
from workmill.errors import UsageError


@click.command("keygen", context_settings=CONTEXT_SETTINGS)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="workmill", show_default=True, help="File stem of the pair.")
def keygen_cmd(out_dir: Path, name: str) -> None:
    """Write an Ed25519 key pair: NAME.key (mode 0600, keep it secret) and NAME.pub.

    The private key signs registry indexes (`registry publish --key`) and licences
    (`licence issue --key`); consumers configure the public key in workmill.yml.

    Example:

        workmill keygen --out ~/.workmill-keys --name publisher
    """
    from workmill import signing
    from workmill.specs import SAFE_NAME

    if not SAFE_NAME.fullmatch(name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    key, pub = signing.generate_keypair(out_dir, name)
    click.echo(f"private key {key} (mode 0600; never commit it)")
    click.echo(f"public key  {pub}")


@click.group("licence", context_settings=CONTEXT_SETTINGS)
def licence_group() -> None:
    """Issue, verify and list offline licences for premium modules.

    Example:

        workmill licence show
    """


def _quotas(per_day: int | None, per_month: int | None, parallel: int | None):
    from workmill.specs import QuotasSpec

    return QuotasSpec(
        max_work_orders_per_day=per_day,
        max_credits_per_month=per_month,
        max_parallel_modules=parallel,
    )


@licence_group.command("issue", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Private key file (default: the PEM text in $WORKMILL_LICENCE_KEY).",
)
@click.option("--licensee", required=True, help="Who the licence is for (shown, not checked).")
@click.option(
    "--tenant-id", "tenant_ids", multiple=True, required=True, help="Covered tenant, or '*'."
)
@click.option("--tier", type=click.Choice(["premium"]), default="premium", show_default=True)
@click.option(
    "--module-id", "module_ids", multiple=True, help="Covered module (repeat; default every one)."
)
@click.option("--expires-at", required=True, help="UTC expiry, e.g. 2027-12-31T00:00:00Z.")
@click.option("--max-work-orders-per-day", type=click.IntRange(min=0), default=None)
@click.option("--max-credits-per-month", type=click.IntRange(min=0), default=None)
@click.option("--max-parallel-modules", type=click.IntRange(min=1), default=None)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the token to this file (e.g. licences/acme.lic) instead of printing it.",
)
def issue_cmd(
    key_path: Path | None,
    licensee: str,
    tenant_ids: tuple[str, ...],
    tier: str,
    module_ids: tuple[str, ...],
    expires_at: str,
    max_work_orders_per_day: int | None,
    max_credits_per_month: int | None,
    max_parallel_modules: int | None,
    out_path: Path | None,
) -> None:
    """Sign a licence token (operator side; needs the private key, not a platform repo).

    Example:

        workmill licence issue --key ops.key --licensee "Acme Media" --tenant-id Ab12Cd \\
            --module-id 008 --expires-at 2027-12-31T00:00:00Z --out licences/acme.lic
    """
    from workmill import licences, signing

    key = signing.load_private_key(key_path)
    token, payload = licences.issue(
        key,
        licensee=licensee,
        tenant_ids=list(tenant_ids),
        module_ids=list(module_ids),
        expires_at=expires_at,
        tier=tier,
        quotas=_quotas(max_work_orders_per_day, max_credits_per_month, max_parallel_modules),
    )
    if out_path is None:
        click.echo(token)
        return
    licences.write_token(out_path, token)
    click.echo(f"licence {payload.licence_id} for {payload.licensee} written to {out_path}")


def _describe(payload, now, grace_hours: int) -> dict:
    data = payload.model_dump(mode="json", exclude_none=True)
    data["status"] = payload.status(now, grace_hours).value
    return data


@licence_group.command("verify", context_settings=CONTEXT_SETTINGS)
@click.argument("token")
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Public key (default: licence_public_key of workmill.yml).",
)
@json_option
@pass_app
def verify_cmd(app: AppContext, token: str, public_key: Path | None, as_json: bool) -> None:
    """Check a token's signature and expiry; exit 1 when it does not verify or has expired
    past the grace period.

    Example:

        workmill licence verify "$(cat licences/acme.lic)"
    """
    from workmill import clock, licences, signing
    from workmill.errors import WorkmillError

    grace = 72
    if public_key is None:
        repo = app.repo
        grace = repo.config.licence_grace_hours
        if not repo.config.licence_public_key:
            raise UsageError("no --public-key and workmill.yml has no licence_public_key")
        public_key = repo.resolve_dir(repo.config.licence_public_key)
    payload = licences.decode(token, signing.load_public_key(public_key))
    info = _describe(payload, clock.now(), grace)
    if as_json:
        echo_json(info)
    else:
        for k, v in info.items():
            click.echo(f"{k}: {v}")
    if info["status"] == licences.LicenceStatus.EXPIRED:
        raise WorkmillError(f"licence {payload.licence_id} expired past its grace period")


@licence_group.command("show", context_settings=CONTEXT_SETTINGS)
@json_option
@pass_app
def show_cmd(app: AppContext, as_json: bool) -> None:
    """List the licences this platform repo finds (licences/*.lic, $WORKMILL_LICENCE,
    licence_url) with their status; tokens that do not verify are listed as INVALID.

    Example:

        workmill licence show --json
    """
    from workmill import clock, licences

    repo = app.repo
    warnings: list[str] = []
    found = licences.load_licences(repo, warnings)
    now, grace = clock.now(), repo.config.licence_grace_hours
    rows = []
    for lic in found:
        if lic.payload is None:
            rows.append({"source": lic.source, "status": "INVALID", "error": lic.error})
        else:
            rows.append({"source": lic.source, **_describe(lic.payload, now, grace)})
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no licences (licences/*.lic, $WORKMILL_LICENCE, licence_url)")
    for r in rows:
        if r["status"] == "INVALID":
            click.echo(f"{r['source']}: INVALID: {r['error']}")
            continue
        tenants = r["tenant_ids"] if r["tenant_ids"] == "*" else ",".join(r["tenant_ids"])
        modules = r["module_ids"] if r["module_ids"] == "*" else ",".join(r["module_ids"])
        click.echo(
            f"{r['source']}: {r['licence_id']} {r['status']} licensee={r['licensee']!r} "
            f"tenants={tenants} modules={modules} expires_at={r['expires_at']}"
        )


COMMANDS = [keygen_cmd, licence_group]
