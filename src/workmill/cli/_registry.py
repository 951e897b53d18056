"""``workmill registry search|versions|show|install|publish``: thin shells over
workmill.registry (docs/reference.md "Registry, tiers, licences, quotas, usage")."""

from __future__ import annotations

from pathlib import Path

import click

from workmill.cli._common import CONTEXT_SETTINGS, AppContext, echo_json, json_option, pass_app


def _registry_option(f):
    return click.option(
        "--registry",
        "registry_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="A registry directory (default: the registry_tag release of the configured store).",
    )(f)


def _public_key_option(f):
    return click.option(
        "--public-key",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Publisher's public key (default: registry_public_key of workmill.yml).",
    )(f)


def _index(app: AppContext, registry_dir: Path | None, public_key: Path | None):
    from workmill import registry

    storage = registry.open_registry(app.repo, registry_dir)
    key = registry.consumer_key(app.repo, public_key)
    return storage, registry.load_index(storage, key, registry.index_memory(app.repo, storage))


@click.group("registry", context_settings=CONTEXT_SETTINGS)
def registry_group() -> None:
    """Search, show, install and publish signed module archives.

    Example:

        workmill registry search forecast
    """


@registry_group.command("search", context_settings=CONTEXT_SETTINGS)
@click.argument("query", default="")
@_registry_option
@_public_key_option
@json_option
@pass_app
def search_cmd(app, query, registry_dir, public_key, as_json) -> None:
    """Modules whose name, title, description or keywords contain every word of QUERY.

    Example:

        workmill registry search "sales forecast" --registry /srv/registry
    """
    from workmill import registry

    _s, index = _index(app, registry_dir, public_key)
    found = registry.search(index, query)
    if as_json:
        echo_json(
            [
                e.model_dump(mode="json", exclude={"versions"})
                | {"latest": registry.sorted_versions(e)[-1] if e.versions else None}
                for e in found
            ]
        )
        return
    if not found:
        click.echo("no modules match")
    for e in found:
        latest = registry.sorted_versions(e)[-1] if e.versions else "-"
        click.echo(f"{e.name}  {latest}  [{e.tier}]  {e.title}: {e.description[:80]}")


@registry_group.command("versions", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@_registry_option
@_public_key_option
@json_option
@pass_app
def versions_cmd(app, name, registry_dir, public_key, as_json) -> None:
    """Every published version of NAME, oldest first, with digest, size and time.

    Example:

        workmill registry versions demand-forecast
    """
    from workmill import registry

    registry.parse_ref(name, need_version=False)
    _s, index = _index(app, registry_dir, public_key)
    entry = index.entry(name)
    rows = [
        {"version": v, **entry.versions[v].model_dump(mode="json")}
        for v in registry.sorted_versions(entry)
    ]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['version']}  {r['published_at']}  {r['size_bytes']} B  sha256 {r['sha256']}"
        )


@registry_group.command("show", context_settings=CONTEXT_SETTINGS)
@click.argument("ref", metavar="NAME[@VERSION]")
@_registry_option
@_public_key_option
@json_option
@pass_app
def show_cmd(app, ref, registry_dir, public_key, as_json) -> None:
    """A module's entry (and one version's archive details with @VERSION).

    Example:

        workmill registry show demand-forecast@1.0.0
    """
    from workmill import registry

    name, version = registry.parse_ref(ref, need_version=False)
    _s, index = _index(app, registry_dir, public_key)
    entry = index.entry(name)
    data = entry.model_dump(mode="json")
    if version is not None:
        data["versions"] = {version: index.version(name, version).model_dump(mode="json")}
    if as_json:
        echo_json(data)
        return
    click.echo(f"{entry.name}: {entry.title} [{entry.tier}]")
    click.echo(f"  {entry.description}")
    if entry.keywords:
        click.echo(f"  keywords: {', '.join(entry.keywords)}")
    for v, info in data["versions"].items():
        click.echo(
            f"  {v}: module {info['module_id']}, {info['size_bytes']} B, "
            f"published {info['published_at']}, sha256 {info['sha256']}"
        )


@registry_group.command("install", context_settings=CONTEXT_SETTINGS)
@click.argument("ref", metavar="NAME@VERSION")
@click.option(
    "--category-id", default=None, help="Category to register it under (default: the publisher's)."
)
@_registry_option
@_public_key_option
@pass_app
def install_cmd(app, ref, category_id, registry_dir, public_key) -> None:
    """Download, verify (signature, size, sha256, every entry) and unpack into modules/,
    then register and pin it in module_registry.csv.

    Example:

        workmill registry install demand-forecast@1.0.0 && workmill maintenance
    """
    from workmill import registry

    name, version = registry.parse_ref(ref, need_version=True)
    storage = registry.open_registry(app.repo, registry_dir)
    key = registry.consumer_key(app.repo, public_key)
    memory = registry.index_memory(app.repo, storage)
    done = registry.install(app.repo, storage, key, name, version or "", category_id, memory)
    click.echo(
        f"installed {done.name}@{done.version} as modules/{done.module_id} "
        f"(pinned {done.digest[:12]}…); next: workmill maintenance"
    )


@registry_group.command("publish", context_settings=CONTEXT_SETTINGS)
@click.argument("module_id")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Publisher's private key (from `workmill keygen`).",
)
@click.option("--name", default=None, help="Registry name (default: from the module's name).")
@click.option("--keyword", "keywords", multiple=True, help="Search keyword (repeat).")
@_registry_option
@pass_app
def publish_cmd(app, module_id, key_path, name, keywords, registry_dir) -> None:
    """Validate MODULE_ID, pack it reproducibly, upload it and sign a new index.

    Example:

        workmill registry publish 008 --key publisher.key --keyword forecast --registry /srv/registry
    """
    from workmill import registry, signing

    key = signing.load_private_key(key_path)
    storage = registry.open_registry(app.repo, registry_dir)
    memory = registry.index_memory(app.repo, storage)
    out = registry.publish(
        app.repo, storage, module_id, key, name=name, keywords=keywords, memory=memory
    )
    what = "already published" if out.already else "published"
    click.echo(
        f"{what} {out.name}@{out.version} ({out.entry.size_bytes} B, sha256 {out.entry.sha256}) "
        f"to {storage.where}"
    )


@registry_group.command("forget", context_settings=CONTEXT_SETTINGS)
@_registry_option
@pass_app
def forget_cmd(app, registry_dir) -> None:
    """Forget the newest index revision accepted from the registry, so that the next
    index read is trusted as new (after a registry was deliberately rebuilt or moved).

    Every read remembers the revision of the signed index it accepted, in
    .workmill/registry/, and refuses an older one afterwards (a rollback could hide
    newer versions). Forget only a registry you know was reset on purpose.

    Example:

        workmill registry forget --registry /srv/registry
    """
    from workmill import registry

    storage = registry.open_registry(app.repo, registry_dir)
    existed, seen = registry.index_memory(app.repo, storage).forget()
    if not existed:
        click.echo(f"nothing remembered for {storage.where}")
    elif seen is None:
        click.echo(f"cleared the unreadable record of {storage.where}")
    else:
        click.echo(
            f"forgot revision {seen.revision} (signed {seen.updated_at}) of {storage.where}; "
            "the next index read is accepted as new"
        )


COMMANDS = [registry_group]
