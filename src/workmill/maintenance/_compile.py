"""Compile maintenance-state/ from a snapshot: file name -> exact bytes.

Deterministic by construction: every table is sorted, nothing reads the clock,
``render_table`` always writes ``\\n``. Admin-owned values are read from the
current files and carried over; only missing rows are added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from workmill.digest import module_digest
from workmill.errors import Problem, SpecError, ValidationFailed
from workmill.maintenance._allocator import (
    GLOBAL_MODULE,
    ReasonDef,
    allocate,
    registry_problems,
)
from workmill.reasons import CATALOG_COLUMNS, CATALOG_FILE, POLICY_COLUMNS, POLICY_FILE
from workmill.repo import MAINTENANCE_DIR, PlatformRepo
from workmill.tables import Row, header_with_extras, parse_bool, parse_table, render_table
from workmill.validate import (
    CATEGORY_COLUMNS,
    CATEGORY_REGISTRY,
    MODULE_REGISTRY,
    MODULE_REGISTRY_COLUMNS,
    REASON_REGISTRY,
    REASON_REGISTRY_COLUMNS,
    Snapshot,
    load_snapshot,
    sort_problems,
    transitive_deps,
    validate_platform,
)
from workmill.validate._graph import ranks

DEPENDENCY_INDEX = "module_dependency_index.csv"
REQUIREMENTS_INDEX = "module_requirements_index.csv"
ARTIFACTS_POLICY = "module_artifacts_policy.csv"
TENANT_RELATIONSHIPS = "tenant_relationships.csv"
MANIFEST = "maintenance_manifest.csv"

DEPENDENCY_COLUMNS = (
    "module_id",
    "direct_dependencies",
    "transitive_dependencies",
    "topological_rank",
)
REQUIREMENTS_COLUMNS = (
    "module_id",
    "kind",
    "name",
    "format",
    "producer_module_id",
    "required",
    "default",
)
ARTIFACTS_COLUMNS = ("module_id", "artifacts_enabled", "note")
RELATIONSHIP_COLUMNS = ("source_tenant_id", "target_tenant_id")
MANIFEST_COLUMNS = ("kind", "path", "sha256")

# Derived files: a hand edit makes the state stale. Admin-owned files are not
# here: editing reason_policy.csv is how an operator changes a policy.
DERIVED_FILES = (
    CATALOG_FILE,
    DEPENDENCY_INDEX,
    REQUIREMENTS_INDEX,
    TENANT_RELATIONSHIPS,
    REASON_REGISTRY,
)
# Admin-owned registries are inputs (categories decide codes) and outputs (retired rows).
REGISTRY_INPUTS = (CATEGORY_REGISTRY, MODULE_REGISTRY)
OUTPUT_FILES = (
    CATALOG_FILE,
    POLICY_FILE,
    DEPENDENCY_INDEX,
    REQUIREMENTS_INDEX,
    ARTIFACTS_POLICY,
    TENANT_RELATIONSHIPS,
    CATEGORY_REGISTRY,
    MODULE_REGISTRY,
    REASON_REGISTRY,
    MANIFEST,
)
_KIND_ORDER = {"param": 0, "input": 1, "output": 2}


def _existing(
    repo: PlatformRepo, name: str, columns: Sequence[str], problems: list[Problem]
) -> tuple[list[str], list[Row]]:
    path = repo.maintenance_dir / name
    if not path.is_file():
        return list(columns), []
    try:
        return parse_table(path.read_bytes(), f"{MAINTENANCE_DIR}/{name}", columns)
    except SpecError as exc:
        problems.extend(exc.problems)
        return list(columns), []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def reason_defs(snap: Snapshot) -> list[ReasonDef]:
    """Reasons in order of first appearance: global first, then modules by id."""
    out = []
    if snap.global_reasons:
        for r in snap.global_reasons.reasons:
            out.append(
                ReasonDef(
                    "global",
                    r.category_id,
                    GLOBAL_MODULE,
                    r.key,
                    r.name,
                    r.description,
                    r.fail,
                    r.refundable,
                )
            )
    registered = snap.registered
    for m in sorted(snap.modules):
        info = snap.modules[m]
        if not info.validation:
            continue
        cat = registered[m]["category_id"]
        for r in info.validation.reasons:
            out.append(
                ReasonDef("module", cat, m, r.key, r.name, r.description, r.fail, r.refundable)
            )
    return out


def _registry_rows(snap: Snapshot) -> list[Row]:
    """Module registry: admin values kept; folders active, vanished retired, digests filled."""
    rows = []
    for r in snap.module_registry:
        row = dict(r)
        m = row["module_id"]
        info = snap.modules.get(m)
        if info is None:
            row["status"] = "retired"
        else:
            row["status"] = "active"
            if not row["digest"]:
                row["digest"] = module_digest(snap.repo.module_dir(m))
            if not row["name"] and info.spec:
                row["name"] = info.spec.name
        rows.append(row)
    return sorted(rows, key=lambda r: r["module_id"])


def _requirements(snap: Snapshot) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for m, info in snap.modules.items():
        if not (info.spec and info.action):
            continue
        props = (info.schema or {}).get("properties") or {}
        schema_required = set((info.schema or {}).get("required") or [])
        names = dict.fromkeys([*info.action.inputs, *(k for k in props if isinstance(k, str))])
        for name in names:
            inp = info.action.inputs.get(name)
            prop = props.get(name) if isinstance(props.get(name), dict) else {}
            typ = prop.get("type", "")
            fmt = ";".join(map(str, typ)) if isinstance(typ, list) else str(typ)
            default = inp.default if inp and inp.default is not None else prop.get("default", "")
            rows.append(
                {
                    "module_id": m,
                    "kind": "param",
                    "name": name,
                    "format": fmt,
                    "producer_module_id": "",
                    "required": bool((inp and inp.required) or name in schema_required),
                    "default": default if isinstance(default, str | int | float | bool) else "",
                }
            )
        for i in info.spec.inputs:
            rows.append(
                {
                    "module_id": m,
                    "kind": "input",
                    "name": i.name,
                    "format": i.format,
                    "producer_module_id": i.module,
                    "required": True,
                    "default": "",
                }
            )
        for o in info.spec.outputs:
            rows.append(
                {
                    "module_id": m,
                    "kind": "output",
                    "name": o.name,
                    "format": o.format,
                    "producer_module_id": "",
                    "required": True,
                    "default": "",
                }
            )
    rows.sort(key=lambda r: (r["module_id"], _KIND_ORDER[str(r["kind"])], r["name"]))
    return rows


def _policy_rows(
    header: list[str],
    existing: list[Row],
    catalog: list[dict[str, object]],
    problems: list[Problem],
) -> list[Row | dict[str, object]]:
    rel = f"{MAINTENANCE_DIR}/{POLICY_FILE}"
    known = {str(r["reason_code"]) for r in catalog}
    by_code: dict[str, Row | dict[str, object]] = {}
    for line, r in enumerate(existing, start=2):
        code = r["reason_code"]
        if code not in known:
            problems.append(
                Problem(rel, line, "reason_code", f"{code!r} is not in the reason registry")
            )
            continue
        for col in ("fail", "refundable"):
            try:
                parse_bool(r[col], rel, col, line)
            except SpecError as exc:
                problems.extend(exc.problems)
        by_code[code] = r
    for c in catalog:
        code = str(c["reason_code"])
        if code not in by_code:
            by_code[code] = {
                "reason_code": code,
                "fail": c["default_fail"],
                "refundable": c["default_refundable"],
                "note": "",
            }
    return [by_code[k] for k in sorted(by_code)]


def _artifact_rows(
    existing: list[Row], registry: list[Row], snap: Snapshot, problems: list[Problem]
) -> list[Row | dict[str, object]]:
    rel = f"{MAINTENANCE_DIR}/{ARTIFACTS_POLICY}"
    registered = {r["module_id"] for r in registry}
    by_id: dict[str, Row | dict[str, object]] = {}
    for line, r in enumerate(existing, start=2):
        m = r["module_id"]
        if m not in registered:
            problems.append(
                Problem(rel, line, "module_id", f"module {m!r} is not in the module registry")
            )
            continue
        try:
            parse_bool(r["artifacts_enabled"], rel, "artifacts_enabled", line)
        except SpecError as exc:
            problems.extend(exc.problems)
        by_id[m] = r
    for m in snap.modules:
        by_id.setdefault(m, {"module_id": m, "artifacts_enabled": True, "note": ""})
    return [by_id[k] for k in sorted(by_id)]


def compile_snapshot(snap: Snapshot) -> dict[str, bytes]:
    """The bytes of every maintenance-state file; ValidationFailed lists every problem."""
    repo = snap.repo
    problems = validate_platform(snap)
    if problems:
        raise ValidationFailed(problems)
    reg_header, reg_rows = _existing(repo, REASON_REGISTRY, REASON_REGISTRY_COLUMNS, problems)
    pol_header, pol_rows = _existing(repo, POLICY_FILE, POLICY_COLUMNS, problems)
    art_header, art_rows = _existing(repo, ARTIFACTS_POLICY, ARTIFACTS_COLUMNS, problems)
    problems += registry_problems(reg_rows, f"{MAINTENANCE_DIR}/{REASON_REGISTRY}")
    if problems:
        raise ValidationFailed(sort_problems(problems))

    defs = reason_defs(snap)
    new_registry, codes, alloc_problems = allocate(
        reg_rows, defs, f"{MAINTENANCE_DIR}/{REASON_REGISTRY}"
    )
    problems += alloc_problems
    by_code = {code: d for d, code in codes.items()}
    catalog: list[dict[str, object]] = []
    for r in new_registry:
        d = by_code.get(r["reason_code"])
        catalog.append(
            {
                "reason_code": r["reason_code"],
                "scope": r["scope"],
                "category_id": r["category_id"],
                "module_id": r["module_id"],
                "reason_key": r["reason_key"],
                "name": r["name"],
                "description": d.description if d else "",
                "default_fail": d.fail if d else True,
                "default_refundable": d.refundable if d else True,
                "status": r["status"],
            }
        )
    registry = _registry_rows(snap)
    policy = _policy_rows(pol_header, pol_rows, catalog, problems)
    artifacts = _artifact_rows(art_rows, registry, snap, problems)
    if problems:
        raise ValidationFailed(sort_problems(problems))

    deps = {m: info.spec.deps for m, info in snap.modules.items() if info.spec}
    rank = ranks(deps)
    dependency_rows = [
        {
            "module_id": m,
            "direct_dependencies": ";".join(deps[m]),
            "transitive_dependencies": ";".join(sorted(transitive_deps(m, deps))),
            "topological_rank": rank[m],
        }
        for m in sorted(deps)
    ]
    relationships = sorted(
        {
            (c, t)
            for t, info in snap.tenants.items()
            if info.spec
            for c in info.spec.allow_release_consumers
        }
    )
    files: dict[str, bytes] = {
        CATALOG_FILE: render_table(CATALOG_COLUMNS, catalog),
        POLICY_FILE: render_table(
            header_with_extras(POLICY_COLUMNS, [dict.fromkeys(pol_header)]), policy
        ),
        DEPENDENCY_INDEX: render_table(DEPENDENCY_COLUMNS, dependency_rows),
        REQUIREMENTS_INDEX: render_table(REQUIREMENTS_COLUMNS, _requirements(snap)),
        ARTIFACTS_POLICY: render_table(
            header_with_extras(ARTIFACTS_COLUMNS, [dict.fromkeys(art_header)]), artifacts
        ),
        TENANT_RELATIONSHIPS: render_table(
            RELATIONSHIP_COLUMNS,
            [{"source_tenant_id": s, "target_tenant_id": t} for s, t in relationships],
        ),
        CATEGORY_REGISTRY: render_table(
            header_with_extras(CATEGORY_COLUMNS, [dict.fromkeys(snap.category_header)]),
            sorted(snap.categories, key=lambda r: r["category_id"]),
        ),
        MODULE_REGISTRY: render_table(
            header_with_extras(
                MODULE_REGISTRY_COLUMNS, [dict.fromkeys(snap.module_registry_header)]
            ),
            registry,
        ),
        REASON_REGISTRY: render_table(
            header_with_extras(REASON_REGISTRY_COLUMNS, [dict.fromkeys(reg_header)]),
            new_registry,
        ),
    }
    inputs = dict(snap.input_hashes)
    for name in REGISTRY_INPUTS:
        # these are rewritten here: record what the next run will read
        inputs[f"{MAINTENANCE_DIR}/{name}"] = _sha(files[name])
    manifest = [{"kind": "input", "path": p, "sha256": h} for p, h in sorted(inputs.items())]
    manifest += [
        {"kind": "output", "path": f"{MAINTENANCE_DIR}/{n}", "sha256": _sha(files[n])}
        for n in sorted(files)
    ]
    files[MANIFEST] = render_table(MANIFEST_COLUMNS, manifest)
    return files


def compile_maintenance(repo: PlatformRepo) -> dict[str, bytes]:
    """File name (relative to maintenance-state/) -> exact bytes it should hold."""
    return compile_snapshot(load_snapshot(repo))
