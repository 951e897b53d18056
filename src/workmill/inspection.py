"""The resolved view of a module or a work order, as a person wants to read it.

Plain dicts (JSON-ready): the CLI prints them as tables or with ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workmill.errors import NotFound, SpecError
from workmill.params import load_params_schema, resolve_params
from workmill.reasons import CATALOG_FILE, ReasonCatalog
from workmill.repo import MAINTENANCE_DIR, PlatformRepo
from workmill.tables import read_table
from workmill.validate import (
    MODULE_REGISTRY,
    topological_order,
    transitive_deps,
    validate_work_order,
)

ARTIFACTS_POLICY = "module_artifacts_policy.csv"


def _table(repo: PlatformRepo, name: str) -> dict[str, dict[str, str]] | None:
    path = repo.maintenance_dir / name
    if not path.is_file():
        return None
    rows = read_table(path, (), f"{MAINTENANCE_DIR}/{name}")
    key = next(iter(rows[0])) if rows else ""
    return {r[key]: r for r in rows}


def deps_closure(repo: PlatformRepo, roots: Sequence[str]) -> dict[str, list[str]]:
    """Every module ``roots`` need, with its direct dependencies (a missing one: NotFound)."""
    deps: dict[str, list[str]] = {}
    work = list(roots)
    while work:
        m = work.pop()
        if m in deps:
            continue
        if not (repo.module_dir(m) / "module.yml").is_file():
            raise NotFound(f"modules/{m}/module.yml: module not found")
        deps[m] = list(repo.module(m).deps)
        work += deps[m]
    return deps


def _resolved_params(repo: PlatformRepo, module_id: str, params: dict[str, Any]) -> dict[str, Any]:
    action = repo.action(module_id)
    schema = load_params_schema(repo.module_dir(module_id))
    try:
        return {"ok": True, "values": resolve_params(action, params, schema), "problems": []}
    except SpecError as exc:
        merged = {n: i.default for n, i in action.inputs.items() if i.default is not None}
        merged.update(params)
        return {
            "ok": False,
            "values": merged,
            "problems": [f"{p.field}: {p.message}" for p in exc.problems],
        }


def _artifact_gates(repo: PlatformRepo, module_id: str, policy: dict | None) -> dict[str, Any]:
    capable = repo.module(module_id).capabilities.supports_downloadable_artifacts
    if policy is None:
        enabled, source = True, "maintenance-state not compiled (default: enabled)"
    elif module_id in policy:
        enabled = policy[module_id].get("artifacts_enabled", "true").strip().lower() == "true"
        source = f"{MAINTENANCE_DIR}/{ARTIFACTS_POLICY}"
    else:
        enabled, source = True, "no policy row (default: enabled; run `workmill maintenance`)"
    return {
        "module_supports": capable,
        "policy_enabled": enabled,
        "policy_source": source,
        "eligible": capable and enabled,
    }


def _reason_codes(repo: PlatformRepo, module_id: str) -> list[dict[str, Any]]:
    if (repo.maintenance_dir / CATALOG_FILE).is_file():
        catalog = ReasonCatalog.load(repo.maintenance_dir)
        return [
            {
                "code": r.code,
                "key": r.key,
                "name": r.name,
                "fail": r.fail,
                "refundable": r.refundable,
                "status": r.status,
            }
            for r in sorted(catalog.by_code.values(), key=lambda r: r.code)
            if r.scope == "module" and r.module_id == module_id
        ]
    return [
        {
            "code": None,
            "key": r.key,
            "name": r.name,
            "fail": r.fail,
            "refundable": r.refundable,
            "status": "not compiled",
        }
        for r in repo.module_validation(module_id).reasons
    ]


def inspect_module(repo: PlatformRepo, module_id: str) -> dict[str, Any]:
    spec = repo.module(module_id)
    deps = deps_closure(repo, [module_id])
    needed = transitive_deps(module_id, deps)
    try:
        order = topological_order([*needed, module_id], deps)
    except ValueError as exc:
        raise SpecError.at(f"modules/{module_id}/module.yml", str(exc), field="depends_on") from exc
    registry = _table(repo, MODULE_REGISTRY) or {}
    reg = registry.get(module_id, {})
    return {
        "module_id": module_id,
        "name": spec.name,
        "version": spec.version,
        "tier": spec.tier,
        "category_id": reg.get("category_id"),
        "registry_status": reg.get("status", "not registered"),
        "depends_on": spec.deps,
        "run_order": order,
        "inputs": [i.model_dump() for i in spec.inputs],
        "outputs": [o.model_dump() for o in spec.outputs],
        "params": _resolved_params(repo, module_id, {}),
        "reason_codes": _reason_codes(repo, module_id),
        "artifacts": _artifact_gates(repo, module_id, _table(repo, ARTIFACTS_POLICY)),
        "cache": spec.cache.model_dump(),
        "timeout_minutes": spec.timeout_minutes,
        "pin": _pin(repo, module_id, reg.get("digest", "")),
        "secrets": spec.secrets.model_dump(),
    }


def _pin(repo: PlatformRepo, module_id: str, pinned: str) -> dict[str, str]:
    """The registry's pin against the files now (docs/supply-chain.md)."""
    from workmill.supply import PinStatus, current_digest

    status = PinStatus(module_id, pinned, current_digest(repo, module_id))
    return {"pinned": pinned, "current": status.current, "state": str(status.state)}


def inspect_work_order(repo: PlatformRepo, work_order_id: str) -> dict[str, Any]:
    tenant_id, spec = repo.find_work_order(work_order_id)
    problems = validate_work_order(repo, tenant_id, repo.work_order_path(tenant_id, work_order_id))
    known = {m for m in spec.module_ids if (repo.module_dir(m) / "module.yml").is_file()}
    deps = {m: repo.module(m).deps for m in known}
    try:
        order = topological_order([m for m in spec.module_ids if m in known], deps)
    except ValueError:
        order = [m for m in spec.module_ids if m in known]
    policy = _table(repo, ARTIFACTS_POLICY)
    entries = {e.module_id: e for e in spec.modules}
    modules = []
    for m in order:
        e = entries[m]
        mod = repo.module(m)
        gates = _artifact_gates(repo, m, policy)
        gates["purchased"] = e.purchase_release_artifacts
        gates["published"] = gates["eligible"] and e.purchase_release_artifacts
        if e.purchase_release_artifacts and not gates["eligible"]:
            gates["outcome"] = "FAILED ARTIFACTS_NOT_ELIGIBLE before it runs"
        modules.append(
            {
                "module_id": m,
                "name": mod.name,
                "version": mod.version,
                "depends_on": mod.deps,
                "reuse_output_type": e.reuse_output_type,
                "release_tag": e.release_tag,
                "assets_folder_name": e.assets_folder_name,
                "params": _resolved_params(repo, m, dict(e.params)),
                "artifacts": gates,
                "cache": {
                    "enabled": mod.cache.enabled,
                    "used": e.reuse_output_type == "cache",
                    "retention_days": e.cache_retention_override or mod.cache.retention_days,
                },
            }
        )
    return {
        "work_order_id": work_order_id,
        "tenant_id": tenant_id,
        "enabled": spec.enabled,
        "mode": spec.mode,
        "promo_codes": spec.promo_codes,
        "run_order": order,
        "modules": modules,
        "problems": [str(p) for p in problems],
    }
