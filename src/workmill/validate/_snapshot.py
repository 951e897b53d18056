"""One read of the platform repo: every spec that maintenance and validate look at.

Reading never stops at the first bad file: load problems are collected on the
snapshot and reported with the rule checks. Each input file is read once and
its sha256 kept, so maintenance can record what it compiled from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from workmill.errors import Problem, SpecError
from workmill.params import PARAMS_SCHEMA, load_params_schema
from workmill.repo import GLOBAL_REASONS, MAINTENANCE_DIR, PlatformRepo
from workmill.specs import (
    ActionSpec,
    GlobalReasonsSpec,
    ModuleSpec,
    TenantSpec,
    ValidationSpec,
    parse_model,
)
from workmill.tables import Row, parse_table
from workmill.validate._fastyaml import fast_model
from workmill.validate._parallel import fork_map
from workmill.yamlio import MAX_BYTES, YamlDoc, parse_yaml

CATEGORY_REGISTRY = "ids/category_registry.csv"
MODULE_REGISTRY = "ids/module_registry.csv"
REASON_REGISTRY = "ids/reason_registry.csv"
CATEGORY_COLUMNS = ("category_id", "name", "description")
MODULE_REGISTRY_COLUMNS = ("module_id", "category_id", "name", "status", "digest")
REASON_REGISTRY_COLUMNS = (
    "reason_code",
    "scope",
    "category_id",
    "module_id",
    "reason_key",
    "name",
    "status",
)
FOLDER = "folder"
MODULE_SPEC_FILES = ("module.yml", "validation.yml", "action.yml", PARAMS_SCHEMA)

M = TypeVar("M", bound=BaseModel)


@dataclass
class ModuleInfo:
    """A folder under modules/ and whatever of it could be loaded."""

    module_id: str
    spec: ModuleSpec | None = None
    doc: YamlDoc | None = None
    validation: ValidationSpec | None = None
    validation_doc: YamlDoc | None = None
    action: ActionSpec | None = None
    action_doc: YamlDoc | None = None
    schema: dict[str, Any] | None = None
    schema_ok: bool = True

    @property
    def ok(self) -> bool:
        """Every file of the module loaded (its rule checks can run)."""
        return bool(self.spec and self.validation and self.action and self.schema_ok)

    @property
    def path(self) -> str:
        return f"modules/{self.module_id}"


@dataclass
class TenantInfo:
    tenant_id: str
    spec: TenantSpec | None = None
    doc: YamlDoc | None = None


@dataclass
class Snapshot:
    """Modules, tenants, global reasons and registries as read from disk."""

    repo: PlatformRepo
    modules: dict[str, ModuleInfo] = field(default_factory=dict)
    tenants: dict[str, TenantInfo] = field(default_factory=dict)
    global_reasons: GlobalReasonsSpec | None = None
    global_reasons_doc: YamlDoc | None = None
    categories: list[Row] = field(default_factory=list)
    category_header: list[str] = field(default_factory=list)
    module_registry: list[Row] = field(default_factory=list)
    module_registry_header: list[str] = field(default_factory=list)
    registries_ok: bool = True
    bad_module_dirs: list[str] = field(default_factory=list)
    bad_tenant_dirs: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    input_hashes: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def registered(self) -> dict[str, Row]:
        return {r["module_id"]: r for r in self.module_registry}

    @property
    def category_ids(self) -> set[str]:
        return {r["category_id"] for r in self.categories}


def _children(path: Path) -> tuple[list[str], list[str]]:
    """(folders, files) directly under ``path``, sorted, hidden names skipped."""
    if not path.is_dir():
        return [], []
    dirs, files = [], []
    for p in path.iterdir():
        if p.name.startswith("."):
            continue
        (dirs if p.is_dir() else files).append(p.name)
    return sorted(dirs), sorted(files)


def discover_inputs(repo: PlatformRepo) -> list[str]:
    """Repo-relative paths of every file maintenance compiles from (sorted).

    Cheap by design (one listing per folder, no parsing): ``check_fresh`` runs
    it before every orchestrator run.
    """
    root = repo.root
    out = [GLOBAL_REASONS] if (root / GLOBAL_REASONS).is_file() else []
    for name in (CATEGORY_REGISTRY, MODULE_REGISTRY):
        rel = f"{MAINTENANCE_DIR}/{name}"
        if (root / rel).is_file():
            out.append(rel)
    module_dirs, module_files = _children(repo.modules_dir)
    tenant_dirs, tenant_files = _children(repo.tenants_dir)
    # folders and stray files count too: an empty new folder is a change to compile
    out += [f"modules/{m}/" for m in module_dirs] + [f"tenants/{t}/" for t in tenant_dirs]
    out += [f"modules/{f}" for f in module_files] + [f"tenants/{f}" for f in tenant_files]
    for m in module_dirs:
        for f in MODULE_SPEC_FILES:
            rel = f"modules/{m}/{f}"
            if (root / rel).is_file():
                out.append(rel)
    for t in tenant_dirs:
        rel = f"tenants/{t}/tenant.yml"
        if (root / rel).is_file():
            out.append(rel)
    return sorted(out)


def hash_inputs(repo: PlatformRepo, paths: list[str]) -> dict[str, str]:
    out = {}
    for rel in paths:
        if rel.endswith("/"):
            out[rel] = FOLDER
            continue
        try:
            out[rel] = hashlib.sha256((repo.root / rel).read_bytes()).hexdigest()
        except OSError:
            out[rel] = "unreadable"
    return out


class _Reader:
    """Reads files once, remembering their sha256 and collecting problems."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def raw(self, rel: str) -> bytes | None:
        path = self.snap.repo.root / rel
        try:
            data = path.read_bytes()
        except OSError as exc:
            self.snap.problems.append(Problem(rel, None, "", f"cannot read: {exc.strerror or exc}"))
            return None
        self.snap.input_hashes[rel] = hashlib.sha256(data).hexdigest()
        return data

    def yaml(self, rel: str) -> YamlDoc | None:
        data = self.raw(rel)
        if data is None:
            return None
        if len(data) > MAX_BYTES:
            self.snap.problems.append(
                Problem(rel, None, "", f"file is larger than {MAX_BYTES} bytes")
            )
            return None
        try:
            return parse_yaml(data.decode("utf-8-sig"), rel)
        except UnicodeDecodeError as exc:
            self.snap.problems.append(Problem(rel, None, "", f"not UTF-8 (byte {exc.start})"))
        except SpecError as exc:
            self.snap.problems.extend(exc.problems)
        return None

    def spec(self, rel: str, model: type[M]) -> tuple[M | None, YamlDoc | None]:
        # a plain file that validates cleanly skips the line-tracking parse (its
        # lines are worked out only if a rule check reports a problem in it)
        if (got := self._fast_spec(rel, model)) is not None:
            return got
        doc = self.yaml(rel)
        if doc is None:
            return None, None
        try:
            return parse_model(doc, model), doc
        except SpecError as exc:
            self.snap.problems.extend(exc.problems)
            return None, doc

    def _fast_spec(self, rel: str, model: type[M]) -> tuple[M, YamlDoc] | None:
        """The spec when the file is plain and valid; None sends it down the full path."""
        try:
            data = (self.snap.repo.root / rel).read_bytes()
        except OSError:
            return None
        got = fast_model(data, rel, model)
        if got is not None:
            self.snap.input_hashes[rel] = hashlib.sha256(data).hexdigest()
        return got

    def table(self, rel: str, columns: tuple[str, ...]) -> tuple[list[str], list[Row]] | None:
        data = self.raw(rel)
        if data is None:
            return None
        try:
            return parse_table(data, rel, columns)
        except SpecError as exc:
            self.snap.problems.extend(exc.problems)
            return None


def load_snapshot(repo: PlatformRepo) -> Snapshot:
    """Read every module, tenant, the global reasons and the registries (not work orders)."""
    snap = Snapshot(repo)
    rd = _Reader(snap)
    root = repo.root

    if (root / GLOBAL_REASONS).is_file():
        snap.global_reasons, snap.global_reasons_doc = rd.spec(GLOBAL_REASONS, GlobalReasonsSpec)
    else:
        snap.problems.append(
            Problem(GLOBAL_REASONS, None, "", "file not found (run `workmill init`?)")
        )

    for name, columns, attr, header_attr in (
        (CATEGORY_REGISTRY, CATEGORY_COLUMNS, "categories", "category_header"),
        (MODULE_REGISTRY, MODULE_REGISTRY_COLUMNS, "module_registry", "module_registry_header"),
    ):
        rel = f"{MAINTENANCE_DIR}/{name}"
        if not (root / rel).is_file():
            snap.problems.append(Problem(rel, None, "", "file not found (run `workmill init`?)"))
            snap.registries_ok = False
            continue
        got = rd.table(rel, columns)
        if got is None:
            snap.registries_ok = False
            continue
        header, rows = got
        setattr(snap, attr, rows)
        setattr(snap, header_attr, header)

    module_dirs, module_files = _children(repo.modules_dir)
    snap.stray_files += [f"modules/{f}" for f in module_files]
    tenant_dirs, tenant_files = _children(repo.tenants_dir)
    snap.stray_files += [f"tenants/{f}" for f in tenant_files]
    snap.input_hashes.update(hash_inputs(repo, snap.stray_files))
    snap.input_hashes.update({f"modules/{m}/": FOLDER for m in module_dirs})
    snap.input_hashes.update({f"tenants/{t}/": FOLDER for t in tenant_dirs})
    trusted = _trusted_schema_hashes(repo)
    # one pass over both kinds of folder, so a big repo starts one pool of workers, not two
    folders = [(True, m) for m in module_dirs] + [(False, t) for t in tenant_dirs]
    for part in fork_map(_load_folders, (repo, trusted), folders, threshold=PARALLEL_LOAD):
        _merge(snap, part)
    return snap


def _load_folders(
    state: tuple[PlatformRepo, set[str]], folders: Sequence[tuple[bool, str]]
) -> Snapshot:
    """Module folders (``True``) and tenant folders (``False``), in one snapshot part."""
    part = _load_modules(state, [name for is_module, name in folders if is_module])
    _merge(part, _load_tenants(state[0], [name for is_module, name in folders if not is_module]))
    return part


def work_order_snapshot(repo: PlatformRepo) -> Snapshot:
    """A snapshot whose modules and tenants are read when a work order names them.

    Checking one work order needs only the modules it lists; reading every
    module of a large platform first would make a run of one work order cost as
    much as validating the whole repo.
    """
    snap = Snapshot(repo)
    snap.modules = _LazyModules(repo, _trusted_schema_hashes(repo))
    snap.tenants = _TenantFolders(repo)
    return snap


class _LazyModules(dict[str, ModuleInfo]):
    """``get`` loads a module folder on first use (as ``load_snapshot`` would)."""

    def __init__(self, repo: PlatformRepo, trusted: set[str]) -> None:
        super().__init__()
        self._repo = repo
        self._trusted = trusted

    def get(self, module_id: str, default: Any = None) -> Any:  # type: ignore[override]
        if not dict.__contains__(self, module_id):
            if not _is_folder(self._repo.modules_dir, module_id):
                return default
            part = _load_modules((self._repo, self._trusted), [module_id])
            info = part.modules[module_id]
            self[module_id] = info
            folder = self._repo.module_dir(module_id)
            for kind, name, spec in (
                ("module", "module.yml", info.spec),
                ("action", "action.yml", info.action),
                ("validation", "validation.yml", info.validation_doc and info.validation),
            ):
                if spec is not None:
                    self._repo.remember(kind, folder / name, spec)
        return dict.get(self, module_id, default)


class _TenantFolders(dict[str, TenantInfo]):
    """Membership is a tenant folder's existence (the work-order checks need no more)."""

    def __init__(self, repo: PlatformRepo) -> None:
        super().__init__()
        self._repo = repo

    def __contains__(self, tenant_id: object) -> bool:
        return isinstance(tenant_id, str) and _is_folder(self._repo.tenants_dir, tenant_id)


def _is_folder(parent: Path, name: str) -> bool:
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        return False
    return (parent / name).is_dir()


PARALLEL_LOAD = 1000
# params schemas (by sha256) already checked against their metaschema in this process
_VERIFIED_SCHEMAS: set[str] = set()


def _trusted_schema_hashes(repo: PlatformRepo) -> set[str]:
    """Schemas the last successful compile accepted (checking a schema is slow)."""
    path = repo.maintenance_dir / "maintenance_manifest.csv"
    try:
        rows = parse_table(path.read_bytes(), "manifest", ("kind", "path", "sha256"))[1]
    except (OSError, SpecError):
        return set()
    return {r["sha256"] for r in rows if r["path"].endswith(PARAMS_SCHEMA)}


def _merge(snap: Snapshot, part: Snapshot) -> None:
    snap.modules.update(part.modules)
    snap.tenants.update(part.tenants)
    snap.input_hashes.update(part.input_hashes)
    snap.problems += part.problems


def _load_modules(state: tuple[PlatformRepo, set[str]], module_ids: Sequence[str]) -> Snapshot:
    repo, trusted = state
    snap = Snapshot(repo)
    rd = _Reader(snap)
    root = repo.root
    for m in module_ids:
        info = ModuleInfo(m)
        snap.modules[m] = info
        base = f"modules/{m}"
        if not (root / base / "module.yml").is_file():
            snap.problems.append(Problem(f"{base}/module.yml", None, "", "file not found"))
        else:
            info.spec, info.doc = rd.spec(f"{base}/module.yml", ModuleSpec)
        if (root / base / "validation.yml").is_file():
            info.validation, info.validation_doc = rd.spec(f"{base}/validation.yml", ValidationSpec)
        else:
            info.validation = ValidationSpec()
        if not (root / base / "action.yml").is_file():
            snap.problems.append(
                Problem(f"{base}/action.yml", None, "", "file not found (a composite action)")
            )
        else:
            info.action, info.action_doc = rd.spec(f"{base}/action.yml", ActionSpec)
        if (root / base / PARAMS_SCHEMA).is_file():
            _load_schema(rd, info, f"{base}/{PARAMS_SCHEMA}", trusted)
    return snap


def _load_schema(rd: _Reader, info: ModuleInfo, rel: str, trusted: set[str]) -> None:
    data = rd.raw(rel)
    if data is None:
        info.schema_ok = False
        return
    sha = rd.snap.input_hashes[rel]
    if sha in trusted or sha in _VERIFIED_SCHEMAS:
        try:
            loaded = json.loads(data)
            if isinstance(loaded, dict):
                info.schema = loaded
                return
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass  # fall through to the full check, which names the problem
    try:
        info.schema = load_params_schema(rd.snap.repo.module_dir(info.module_id))
        _VERIFIED_SCHEMAS.add(sha)
    except SpecError as exc:
        info.schema_ok = False
        rd.snap.problems.extend(exc.problems)


def _load_tenants(repo: PlatformRepo, tenant_ids: Sequence[str]) -> Snapshot:
    snap = Snapshot(repo)
    rd = _Reader(snap)
    for t in tenant_ids:
        info = TenantInfo(t)
        snap.tenants[t] = info
        rel = f"tenants/{t}/tenant.yml"
        if not (repo.root / rel).is_file():
            snap.problems.append(Problem(rel, None, "", "file not found"))
            continue
        info.spec, info.doc = rd.spec(rel, TenantSpec)
    return snap


def canonical_json(value: Any) -> str | None:
    """A stable text of ``value`` for memo keys, or None when it has no such text."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError):
        return None
