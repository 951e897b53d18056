"""Scaffolding: ``workmill init`` and ``workmill new module|tenant|work-order``.

Everything written here is a valid skeleton: after init + new module + new
tenant + new work-order + maintenance, ``workmill validate`` passes.
"""

from __future__ import annotations

import json
from pathlib import Path

from workmill import fsio, ids
from workmill.billing_tables import COLUMNS, TEMPLATE_ROWS
from workmill.digest import module_digest
from workmill.errors import NotFound, SpecError, WorkmillError
from workmill.repo import CONFIG_FILE, GLOBAL_REASONS, MAINTENANCE_DIR, TEMPLATES_DIR, PlatformRepo
from workmill.tables import header_with_extras, parse_table, render_table
from workmill.validate import (
    CATEGORY_COLUMNS,
    CATEGORY_REGISTRY,
    MODULE_REGISTRY,
    MODULE_REGISTRY_COLUMNS,
    REASON_REGISTRY,
    REASON_REGISTRY_COLUMNS,
    topological_order,
)
from workmill.yamlio import dump_yaml

PLATFORM_CATEGORY = "01"
DEFAULT_CATEGORIES = (
    ("01", "Platform", "workmill's own reasons"),
    ("02", "Ingest", "modules that fetch or import data"),
    ("03", "Transform", "modules that reshape or enrich data"),
    ("04", "Scripting", "general-purpose script modules"),
    ("05", "Media", "audio, image and video processing"),
    ("06", "Publishing", "modules that render or export results"),
)
# (key, name, description): every platform reason docs/reference.md "Reason codes" requires.
GLOBAL_REASONS_LIST = (
    ("P01", "INSUFFICIENT_CREDITS", "The balance is below the price of the work order"),
    ("P02", "TENANT_SUSPENDED", "The tenant is suspended; its work orders are rejected"),
    (
        "P03",
        "PROMO_INVALID",
        "A promo code is unknown, inactive, expired, exhausted or covers nothing",
    ),
    ("P04", "PARAMS_INVALID", "Params do not satisfy the module's inputs or params schema"),
    ("P05", "MODULE_NOT_ORDERABLE", "The module has no active pricing row"),
    ("P06", "MODULE_FAILED", "The module exited non-zero without giving a reason"),
    ("P07", "MODULE_TIMEOUT", "The module ran past timeout_minutes and was killed"),
    (
        "P08",
        "OUTPUT_CONTRACT_VIOLATION",
        "A declared output is missing, outside, or of the wrong format",
    ),
    (
        "P09",
        "ARTIFACTS_NOT_ELIGIBLE",
        "Artifacts were purchased but the module may not publish them",
    ),
    ("P10", "ARTIFACT_PUBLISH_FAILED", "Publishing the artifacts failed"),
    ("P11", "DEPENDENCY_FAILED", "Not run: a dependency failed or was skipped"),
    ("P12", "STRICT_ABORTED", "Not run: the STRICT work order had already failed"),
    ("P13", "RELEASE_NOT_FOUND", "The release to reuse does not exist or has no manifest"),
    ("P14", "RELEASE_ACCESS_DENIED", "The release's owner does not allow this tenant to reuse it"),
    ("P15", "RELEASE_ITEM_MISSING", "The release has no item for this module"),
    ("P16", "ASSETS_NOT_FOUND", "The assets folder or its manifest does not exist"),
    ("P17", "INTEGRITY_MISMATCH", "A reused file does not match its recorded sha256"),
    ("P18", "INTERRUPTED", "The run was interrupted before the module finished"),
    ("P19", "INTERNAL_ERROR", "workmill itself failed; the tenant is not charged for it"),
    ("P20", "WORK_ORDER_INVALID", "The work order file fails validation; it is rejected uncharged"),
    ("P21", "LICENCE_REQUIRED", "A premium module needs a valid licence covering the tenant"),
    ("P22", "QUOTA_EXCEEDED", "The work order would exceed one of the tenant's quotas"),
    ("P23", "MODULE_NOT_PINNED", "A module's files differ from its pinned digest"),
    ("P24", "MODULE_SECRET_MISSING", "A secret the module requires is not set"),
)

WORKMILL_YML = """\
# workmill platform config. Every key is optional; the defaults are shown.
#
# billing_state_tag: billing-state-v1    # release tag holding the billing state
# store: local                           # local | github (GitHub Releases)
# local_store_dir: .workmill/releases
# cache_backend: local                   # local | github (Actions cache)
# local_cache_dir: .workmill/cache
# github:
#   repository: owner/name              # default: $GITHUB_REPOSITORY
# max_parallel: 4                        # default: number of CPUs
# artifact_name_max_length: 128
# orphan_cache_hold_days: 365
"""

GITIGNORE = """\
# workmill: ephemeral and local stores
runtime/
.billing-state/
.workmill/
"""

README = """\
# Platform repo (workmill)

This repository is a workmill platform: tenants' work orders run a DAG of
modules, billed in integer credits.

## Layout

- `workmill.yml` - platform config (all keys optional)
- `config/global_reasons.yml` - the platform's own reasons
- `modules/<module_id>/` - `module.yml`, `validation.yml`, `action.yml`, `src/`, `schemas/`
- `tenants/<tenant_id>/tenant.yml` and `tenants/<tenant_id>/workorders/<id>.yml`
- `maintenance-state/` - compiled by `workmill maintenance`; commit it
- `releases/billing-state-v1/` - templates that bootstrap the billing state

## Everyday commands

    MODULE=$(workmill new module --name "My module" --category-id 04)
    TENANT=$(workmill new tenant --name "Acme Media")
    workmill maintenance          # after any change to modules, tenants or reasons
    WORK_ORDER=$(workmill new work-order --tenant-id "$TENANT" --module-id "$MODULE")
    workmill validate             # every problem, with file and line
    workmill inspect work-order "$WORK_ORDER"
    workmill run && workmill history

Edit `maintenance-state/reason_policy.csv` (fail / refundable) and
`maintenance-state/module_artifacts_policy.csv` (artifacts_enabled) by hand;
maintenance keeps your values. Register categories in
`maintenance-state/ids/category_registry.csv`.
"""


# Schemas editors validate against (docs/reference.md "Files of a platform repo"):
# config/schemas/<kind>.schema.json, named by a first-line comment in each file.
SCHEMAS_DIR = "config/schemas"
EDITOR_SCHEMA_KINDS = ("workmill", "global-reasons", "module", "validation", "tenant", "work-order")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Scaffolded files are ordinary repo files: mode 0644, not mkstemp's 0600."""
    fsio.atomic_write_bytes(path, data, mode=fsio.REPO_FILE_MODE)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def schema_line(kind: str, depth: int) -> str:
    """The ``# yaml-language-server`` comment for a file ``depth`` folders below the root."""
    return f"# yaml-language-server: $schema={'../' * depth}{SCHEMAS_DIR}/{kind}.schema.json\n"


def write_schemas(root: Path) -> None:
    """Write (or refresh) the editor schemas; unchanged files are not rewritten."""
    from workmill.specs import json_schema

    for kind in EDITOR_SCHEMA_KINDS:
        path = root / SCHEMAS_DIR / f"{kind}.schema.json"
        data = (json.dumps(json_schema(kind), indent=2) + "\n").encode()
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise SpecError.at(what, "name must be 1-200 printable characters", field="name")
    return name


def global_reasons_yaml() -> str:
    reasons = [
        {
            "key": key,
            "name": name,
            "description": desc,
            "category_id": PLATFORM_CATEGORY,
            "fail": True,
            "refundable": True,
        }
        for key, name, desc in GLOBAL_REASONS_LIST
    ]
    return (
        schema_line("global-reasons", 1)
        + "# The platform's own reasons. Codes are allocated by `workmill maintenance`;\n"
        "# change fail/refundable per code in maintenance-state/reason_policy.csv.\n"
        + dump_yaml({"reasons": reasons})
    )


def init_repo(directory: Path | str) -> PlatformRepo:
    """Scaffold a platform repo in ``directory`` (created if missing) and compile it."""
    root = Path(directory)
    if (root / CONFIG_FILE).exists():
        raise WorkmillError(f"{root / CONFIG_FILE} already exists; not overwriting a platform repo")
    if root.exists() and not root.is_dir():
        raise WorkmillError(f"{root}: not a directory")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / CONFIG_FILE, schema_line("workmill", 0) + WORKMILL_YML)
    write_schemas(root)
    atomic_write_text(root / GLOBAL_REASONS, global_reasons_yaml())
    ids_dir = root / MAINTENANCE_DIR
    atomic_write_bytes(
        ids_dir / CATEGORY_REGISTRY,
        render_table(
            CATEGORY_COLUMNS,
            [{"category_id": c, "name": n, "description": d} for c, n, d in DEFAULT_CATEGORIES],
        ),
    )
    atomic_write_bytes(ids_dir / MODULE_REGISTRY, render_table(MODULE_REGISTRY_COLUMNS, []))
    atomic_write_bytes(ids_dir / REASON_REGISTRY, render_table(REASON_REGISTRY_COLUMNS, []))
    templates = root / TEMPLATES_DIR / "billing-state-v1"
    for table, columns in COLUMNS.items():
        atomic_write_bytes(templates / table, render_table(columns, TEMPLATE_ROWS.get(table, [])))
    for folder in ("modules", "tenants"):
        (root / folder).mkdir(exist_ok=True)
        keep = root / folder / ".gitkeep"
        if not keep.exists():
            keep.write_bytes(b"")
    atomic_write_text(root / ".gitignore", GITIGNORE)
    if not (root / "README.md").exists():
        atomic_write_text(root / "README.md", README)
    from workmill.github import write_workflows  # .github/workflows/, kept if present

    write_workflows(root)
    for path in (root / ".github").rglob("*"):
        if path.is_file():
            path.chmod(fsio.REPO_FILE_MODE)
    repo = PlatformRepo.open(root)
    from workmill.maintenance import run_maintenance

    run_maintenance(repo)
    return repo


# ------------------------------------------------------------------ new module


def _module_files(module_id: str, name: str) -> dict[str, str]:
    module_yml = (
        schema_line("module", 2)
        + f"""\
module_id: "{module_id}"
name: {_q(name)}
version: "0.1.0"
description: {_q("What " + name + " does, in one sentence.")}
depends_on: []                 # module ids this module needs, e.g. ["002"]
capabilities:
  supports_downloadable_artifacts: true
cache:
  enabled: false
  retention_days: 30
inputs: []                     # e.g. [{{module: "002", name: report.json, format: json}}]
outputs:
  - {{name: result.json, format: json}}
timeout_minutes: 10
smoke:
  params: {{greeting: hello}}
tier: core
"""
    )
    validation_yml = (
        schema_line("validation", 2)
        + """\
# The module's own reasons: write the key (E01) to $WM_REASON_FILE.
reasons:
  - key: E01
    name: GREETING_EMPTY
    description: The greeting param is empty
    fail: true
    refundable: true
"""
    )
    action_yml = f"""\
name: {_q(name)}
description: {_q("workmill module " + module_id)}
inputs:
  greeting:
    description: Text written into result.json
    required: false
    default: hello
runs:
  using: composite
  steps:
    - name: Produce result.json
      shell: bash
      # params reach the script through env, never pasted into it
      env:
        GREETING: ${{{{ inputs.greeting }}}}
      run: python3 "$GITHUB_ACTION_PATH/src/main.py"
"""
    main_py = '''\
"""Module entry point: read params from the environment, write declared outputs."""

import json
import os
from pathlib import Path

greeting = os.environ.get("GREETING", "")
if not greeting:
    Path(os.environ["WM_REASON_FILE"]).write_text("E01")
    raise SystemExit(1)
out = Path(os.environ["WM_OUTPUTS_DIR"]) / "result.json"
out.write_text(json.dumps({"greeting": greeting}) + "\\n")
print(f"wrote {out.name} with greeting {greeting!r}")
'''
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"greeting": {"type": "string", "maxLength": 200}},
        "additionalProperties": False,
    }
    readme = (
        f"# {name} (module {module_id})\n\nParams: `greeting` (string).\nOutputs: `result.json`.\n"
    )
    return {
        "module.yml": module_yml,
        "validation.yml": validation_yml,
        "action.yml": action_yml,
        "src/main.py": main_py,
        "schemas/params.schema.json": json.dumps(schema, indent=2) + "\n",
        "README.md": readme,
    }


def _read_registry(repo: PlatformRepo, name: str, columns: tuple[str, ...]):
    path = repo.maintenance_dir / name
    if not path.is_file():
        raise SpecError.at(f"{MAINTENANCE_DIR}/{name}", "file not found (run `workmill init`?)")
    return parse_table(path.read_bytes(), f"{MAINTENANCE_DIR}/{name}", columns)


def new_module(repo: PlatformRepo, name: str, category_id: str, random: bool = False) -> str:
    """Create modules/<id>/ and register it; returns the new module id."""
    name = _check_name(name, "new module")
    msg = ids.check(ids.IdKind.CATEGORY, category_id)
    if msg:
        raise SpecError.at("--category-id", msg, field="category_id")
    _, categories = _read_registry(repo, CATEGORY_REGISTRY, CATEGORY_COLUMNS)
    if category_id not in {r["category_id"] for r in categories}:
        raise SpecError.at(
            f"{MAINTENANCE_DIR}/{CATEGORY_REGISTRY}",
            f"category {category_id} is not registered; add a row for it first",
            field="category_id",
        )
    header, rows = _read_registry(repo, MODULE_REGISTRY, MODULE_REGISTRY_COLUMNS)
    # retired ids stay taken: their reason codes must never be handed to a new module
    taken = [*repo.module_ids(), *(r["module_id"] for r in rows)]
    module_id = ids.generate(ids.IdKind.MODULE, taken) if random else ids.next_module_number(taken)
    write_schemas(repo.root)
    folder = repo.module_dir(module_id)
    for rel, text in _module_files(module_id, name).items():
        atomic_write_text(folder / rel, text)
    rows.append(
        {
            "module_id": module_id,
            "category_id": category_id,
            "name": name,
            "status": "active",
            "digest": module_digest(folder),
        }
    )
    rows.sort(key=lambda r: r["module_id"])
    atomic_write_bytes(
        repo.maintenance_dir / MODULE_REGISTRY,
        render_table(header_with_extras(MODULE_REGISTRY_COLUMNS, [dict.fromkeys(header)]), rows),
    )
    return module_id


# ------------------------------------------------------------------ tenants, work orders


def new_tenant(repo: PlatformRepo, name: str) -> str:
    name = _check_name(name, "new tenant")
    tenant_id = ids.generate(ids.IdKind.TENANT, repo.tenant_ids())
    write_schemas(repo.root)
    text = (
        schema_line("tenant", 2) + f'tenant_id: "{tenant_id}"\n'
        f"name: {_q(name)}\n"
        "status: active                 # active | suspended\n"
        "allow_release_consumers: []    # tenant ids that may reuse this tenant's releases\n"
    )
    atomic_write_text(repo.tenant_dir(tenant_id) / "tenant.yml", text)
    (repo.tenant_dir(tenant_id) / "workorders").mkdir(exist_ok=True)
    return tenant_id


def new_work_order(
    repo: PlatformRepo, tenant_id: str, module_ids: list[str], *, purchase_artifacts: bool = False
) -> str:
    """A work order for ``module_ids`` (their missing dependencies are added first)."""
    if not (repo.tenant_dir(tenant_id) / "tenant.yml").is_file():
        raise NotFound(f"tenant {tenant_id!r} not found under tenants/")
    if not module_ids:
        raise SpecError.at("new work-order", "name at least one module", field="module_id")
    wanted = list(dict.fromkeys(module_ids))
    deps: dict[str, list[str]] = {}
    i = 0
    while i < len(wanted):  # the listed modules, then any dependency they miss
        deps[wanted[i]] = repo.module(wanted[i]).deps
        wanted += [d for d in deps[wanted[i]] if d not in wanted]
        i += 1
    try:
        order = topological_order(wanted, deps)
    except ValueError as exc:
        raise SpecError.at("modules", str(exc), field="depends_on") from exc
    taken = [p.name[:-4] for t in repo.tenant_ids() for p in repo.work_order_files(t)]
    wo_id = ids.generate(ids.IdKind.WORK_ORDER, taken)
    modules = []
    for m in order:
        params = dict(repo.module(m).smoke.params)
        modules.append(
            {
                "module_id": m,
                "params": params,
                "reuse_output_type": "new",
                "purchase_release_artifacts": purchase_artifacts,
            }
        )
    body = {
        "work_order_id": wo_id,
        "enabled": True,
        "mode": "STRICT",
        "promo_codes": [],
        "modules": modules,
    }
    write_schemas(repo.root)
    text = (
        schema_line("work-order", 3)
        + "# mode: STRICT | PARTIAL_ALLOWED; reuse_output_type: new | cache | release | assets\n"
        + dump_yaml(body)
    )
    atomic_write_text(repo.work_order_path(tenant_id, wo_id), text)
    return wo_id
