"""Publish, search and install modules (docs/reference.md "Registry, tiers, licences,
quotas, usage").

``install`` checks, in this order and before anything touches ``modules/``: the
index signature (``registry_public_key``), the archive's size and sha256 against
the signed index, then every archive entry; the files are written to a temporary
folder beside ``modules/`` and renamed into place only when the unpacked tree has
the module digest the publisher recorded. The module is then registered in
``module_registry.csv`` with that digest as its pin.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workmill import clock, signing
from workmill.digest import module_digest
from workmill.errors import NotFound, SpecError, StateConflict, UsageError, WorkmillError
from workmill.fsio import atomic_write_bytes, sha256_bytes
from workmill.registry._archive import MAX_ARCHIVE_BYTES, check_members, pack, write_entries
from workmill.registry._index import (
    NAME,
    VERSION,
    Index,
    ModuleEntry,
    RegistryRefused,
    VersionEntry,
    sign_index,
    verify_index,
)
from workmill.registry._seen import IndexMemory
from workmill.registry._storage import DirectoryRegistry, RegistryStorage, ReleaseRegistry
from workmill.specs import ModuleSpec, load_spec
from workmill.tables import header_with_extras, parse_table, render_table


def open_registry(repo, directory: Path | None) -> RegistryStorage:
    """``--registry DIR``, else the ``registry_tag`` release of the configured store."""
    if directory is not None:
        return DirectoryRegistry(directory)
    from workmill.backends import open_release_store

    store = open_release_store(repo)
    if repo.config.store == "local":
        where = f"local store {repo.local_store_dir.resolve()}"
    else:
        where = f"github {repo.config.github.api_url} {getattr(store, 'repository', '')}"
    return ReleaseRegistry(store, repo.config.registry_tag, where)


def index_memory(repo, storage: RegistryStorage) -> IndexMemory:
    """This repo's record of the newest index it accepted from ``storage``."""
    return IndexMemory(repo.root, storage.identity, storage.reset_command)


def consumer_key(repo, override: Path | None = None) -> Any:
    path = override
    if path is None:
        if not repo.config.registry_public_key:
            raise RegistryRefused(
                "workmill.yml has no registry_public_key: an unverified registry is refused"
            )
        path = repo.resolve_dir(repo.config.registry_public_key)
    return signing.load_public_key(path)


def load_index(
    storage: RegistryStorage, public_key: Any, memory: IndexMemory | None = None
) -> Index:
    """The verified index; with ``memory``, refused when older than one accepted before."""
    data, sig = storage.read_index()
    if data is None:
        if sig is not None:
            raise RegistryRefused(f"{storage.where}: a signature without an index; refused")
        if memory is not None and (seen := memory.read()) is not None:
            raise RegistryRefused(
                f"{storage.where}: the registry is empty, but revision {seen.revision} was "
                f"accepted here; refused (if it was deliberately emptied: "
                f"{memory.reset_command})"
            )
        return Index()
    index = verify_index(data, sig, public_key, storage.where)
    if memory is not None:
        memory.accept(index, data, storage.where)
    return index


def registry_name(title: str) -> str:
    """A module's registry name from its title: lower-case words joined by '-'."""
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:64].strip("-")
    return name or "module"


# ------------------------------------------------------------------ reading


def search(index: Index, query: str) -> list[ModuleEntry]:
    """Modules whose name, title, description or keywords contain every word of ``query``."""
    words = query.lower().split()
    out = []
    for entry in index.modules.values():
        text = " ".join([entry.name, entry.title, entry.description, *entry.keywords]).lower()
        if all(w in text for w in words):
            out.append(entry)
    return sorted(out, key=lambda e: e.name)


def _version_key(v: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.+_-]", v))


def sorted_versions(entry: ModuleEntry) -> list[str]:
    return sorted(entry.versions, key=_version_key)


def parse_ref(ref: str, *, need_version: bool) -> tuple[str, str | None]:
    name, _, version = ref.partition("@")
    if not NAME.fullmatch(name) or (version and not VERSION.fullmatch(version)):
        raise UsageError(f"{ref!r} is not NAME[@VERSION] (name: a-z, 0-9, '-')")
    if need_version and not version:
        raise UsageError(f"{ref!r}: name the version to install, as NAME@VERSION")
    return name, version or None


# ------------------------------------------------------------------ publishing


@dataclass(frozen=True)
class Published:
    name: str
    version: str
    entry: VersionEntry
    already: bool


def _module_row(repo, module_id: str) -> dict[str, str]:
    from workmill.validate import MODULE_REGISTRY, MODULE_REGISTRY_COLUMNS

    path = repo.maintenance_dir / MODULE_REGISTRY
    if not path.is_file():
        return {}
    _h, rows = parse_table(path.read_bytes(), repo.rel(path), MODULE_REGISTRY_COLUMNS)
    return next((r for r in rows if r["module_id"] == module_id), {})


def publish(
    repo,
    storage: RegistryStorage,
    module_id: str,
    private_key: Any,
    *,
    name: str | None = None,
    keywords: tuple[str, ...] = (),
    memory: IndexMemory | None = None,
) -> Published:
    """Validate, pack, upload the archive, then sign and publish a new index revision."""
    from workmill.validate import validate_repo

    problems = [p for p in validate_repo(repo) if p.path.startswith(f"modules/{module_id}/")]
    if problems:
        raise SpecError(problems)
    spec = repo.module(module_id)
    name = name or registry_name(spec.name)
    if not NAME.fullmatch(name) or not VERSION.fullmatch(spec.version):
        raise UsageError(f"registry name {name!r} or version {spec.version!r} is not valid")
    data = pack(repo.module_dir(module_id))
    if len(data) > MAX_ARCHIVE_BYTES:
        raise UsageError(f"module {module_id} packs to {len(data)} bytes, over {MAX_ARCHIVE_BYTES}")
    entry = VersionEntry(
        archive=f"{name}-{spec.version}.tar.gz",
        sha256=sha256_bytes(data),
        size_bytes=len(data),
        published_at=clock.now_iso(),
        module_id=module_id,
        module_digest=module_digest(repo.module_dir(module_id)),
        category_id=_module_row(repo, module_id).get("category_id", ""),
    )
    own_key = private_key.public_key()
    with storage.lock():
        for _attempt in range(5):
            index = load_index(storage, own_key, memory)
            old = index.modules.get(name)
            have = old.versions.get(spec.version) if old else None
            if have is not None:
                if have.sha256 != entry.sha256:
                    raise RegistryRefused(
                        f"{name}@{spec.version} is already published with other content; "
                        "versions are immutable: bump version in module.yml"
                    )
                return Published(name, spec.version, have, True)
            storage.write_archive(entry.archive, data)
            module = ModuleEntry(
                name=name,
                title=spec.name,
                tier=spec.tier,
                description=spec.description,
                keywords=sorted(set(keywords) | set(old.keywords if old else [])),
                versions={**(old.versions if old else {}), spec.version: entry},
            )
            new = Index(
                revision=index.revision + 1,
                updated_at=entry.published_at,
                modules={**index.modules, name: module},
            )
            body = new.to_bytes()
            try:
                storage.write_index(body, sign_index(body, private_key), new.revision)
            except StateConflict:
                continue
            return Published(name, spec.version, entry, False)
    raise StateConflict(f"registry {storage.where} keeps changing; try again")


# ------------------------------------------------------------------ installing


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    module_id: str
    digest: str
    path: Path


def fetch_verified(storage: RegistryStorage, index: Index, name: str, version: str) -> bytes:
    """The archive bytes, checked against the signed index (size first, then sha256)."""
    v = index.version(name, version)
    if v.size_bytes > MAX_ARCHIVE_BYTES:
        raise RegistryRefused(f"{name}@{version}: archive of {v.size_bytes} bytes is over the cap")
    data = storage.read_archive(v.archive)
    if len(data) != v.size_bytes or sha256_bytes(data) != v.sha256:
        raise RegistryRefused(
            f"{name}@{version}: archive {v.archive} does not match the signed index "
            f"(sha256 {sha256_bytes(data)[:12]}…, expected {v.sha256[:12]}…); refused"
        )
    return data


def _check_category(repo, category_id: str) -> None:
    from workmill.validate import CATEGORY_REGISTRY

    cats = repo.maintenance_dir / CATEGORY_REGISTRY
    if not cats.is_file():
        raise NotFound(f"{repo.rel(cats)}: not found (is this a platform repo?)")
    _h, categories = parse_table(cats.read_bytes(), repo.rel(cats), ("category_id",))
    if category_id not in {r["category_id"] for r in categories}:
        raise UsageError(
            f"category {category_id or '(none)'} is not in {repo.rel(cats)}; "
            "pass --category-id with one of yours"
        )


def _register(repo, module_id: str, title: str, category_id: str, digest: str) -> None:
    """Add or replace the module's row in module_registry.csv, pinned to ``digest``."""
    from workmill.validate import MODULE_REGISTRY, MODULE_REGISTRY_COLUMNS

    path = repo.maintenance_dir / MODULE_REGISTRY
    header, rows = parse_table(path.read_bytes(), repo.rel(path), MODULE_REGISTRY_COLUMNS)
    rows = [r for r in rows if r["module_id"] != module_id]
    row = {"module_id": module_id, "category_id": category_id, "name": title, "status": "active"}
    rows.append({**row, "digest": digest})
    rows.sort(key=lambda r: r["module_id"])
    header = header_with_extras(MODULE_REGISTRY_COLUMNS, [dict.fromkeys(header)])
    atomic_write_bytes(path, render_table(header, rows))


def _check_target(repo, v: VersionEntry, ref: str) -> bool:
    """True when this very module is already installed; refuses an id taken by another.

    The published module id is kept as it is (ids are never reused), so a local module,
    or a registry row, under that id with other content means a different module."""
    mid = v.module_id
    target = repo.module_dir(mid)
    taken = f"{ref} is published as module {mid}, but"
    if target.exists():
        if target.is_dir() and module_digest(target) == v.module_digest:
            return True
        raise WorkmillError(  # exit 1: the repo's state, not the command line
            f"{taken} modules/{mid} already holds a different module{_title_of(target)}; "
            "refused, nothing was changed"
        )
    row = _module_row(repo, mid)
    if row and row.get("digest", "") != v.module_digest:
        raise WorkmillError(
            f"{taken} maintenance-state/ids/module_registry.csv already registers {mid} "
            f"({row.get('name', '')!r}, status {row.get('status', '')}) with another digest; "
            "refused, nothing was changed"
        )
    return False


def _title_of(folder: Path) -> str:
    try:
        return f" ({load_spec(folder / 'module.yml', ModuleSpec, 'module.yml').name!r})"
    except (WorkmillError, OSError):
        return ""


def install(
    repo,
    storage: RegistryStorage,
    public_key: Any,
    name: str,
    version: str,
    category_id: str | None = None,
    memory: IndexMemory | None = None,
) -> Installed:
    index = load_index(storage, public_key, memory)
    v = index.version(name, version)
    entry = index.entry(name)
    data = fetch_verified(storage, index, name, version)
    members = check_members(data, f"{name}@{version}")
    category = category_id or v.category_id
    _check_category(repo, category)
    title = entry.title or name
    if not _check_target(repo, v, f"{name}@{version}"):
        repo.modules_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".install-", dir=repo.modules_dir))
        try:
            write_entries(members, tmp)
            _check_unpacked(tmp, v, name, version)
            tmp.rename(repo.module_dir(v.module_id))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _register(repo, v.module_id, title, category, v.module_digest)
    return Installed(name, version, v.module_id, v.module_digest, repo.module_dir(v.module_id))


def _check_unpacked(tmp: Path, v: VersionEntry, name: str, version: str) -> None:
    try:
        spec = load_spec(tmp / "module.yml", ModuleSpec, f"{name}@{version}:module.yml")
    except (WorkmillError, OSError) as exc:
        raise RegistryRefused(f"{name}@{version}: archive has no valid module.yml") from exc
    if spec.module_id != v.module_id or module_digest(tmp) != v.module_digest:
        raise RegistryRefused(
            f"{name}@{version}: unpacked module differs from the signed index "
            "(module id or digest); refused"
        )
