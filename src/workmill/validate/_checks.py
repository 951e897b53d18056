"""The platform checks: small functions ``(Snapshot) -> list[Problem]``.

Each looks at one rule and reports every breach it finds; ``PLATFORM_CHECKS``
runs them all. Checks skip what failed to load (that was reported already).
"""

from __future__ import annotations

from collections.abc import Callable

from workmill import ids
from workmill.errors import Problem, SpecError
from workmill.params import resolve_params
from workmill.repo import GLOBAL_REASONS, MAINTENANCE_DIR
from workmill.runner.injection import pasted_expressions
from workmill.validate._graph import find_cycles
from workmill.validate._snapshot import (
    CATEGORY_REGISTRY,
    MODULE_REGISTRY,
    ModuleInfo,
    Snapshot,
)
from workmill.yamlio import YamlDoc, problem

REQUIRED_GLOBAL_REASONS = (
    "INSUFFICIENT_CREDITS",
    "TENANT_SUSPENDED",
    "PROMO_INVALID",
    "PARAMS_INVALID",
    "MODULE_NOT_ORDERABLE",
    "MODULE_FAILED",
    "MODULE_TIMEOUT",
    "OUTPUT_CONTRACT_VIOLATION",
    "ARTIFACTS_NOT_ELIGIBLE",
    "ARTIFACT_PUBLISH_FAILED",
    "DEPENDENCY_FAILED",
    "STRICT_ABORTED",
    "RELEASE_NOT_FOUND",
    "RELEASE_ACCESS_DENIED",
    "RELEASE_ITEM_MISSING",
    "ASSETS_NOT_FOUND",
    "INTEGRITY_MISMATCH",
    "INTERRUPTED",
    "INTERNAL_ERROR",
)
LOCAL_SHELLS = ("bash", "sh", "python")
STATUSES = ("active", "retired")

Check = Callable[[Snapshot], list[Problem]]


def _p(doc: YamlDoc | None, path: str, loc: tuple[str | int, ...], message: str) -> Problem:
    if doc is None:
        return Problem(path, None, ".".join(map(str, loc)), message)
    return problem(doc, loc, message)


def check_names(snap: Snapshot) -> list[Problem]:
    """Folder names are valid IDs of their kind, unique ignoring case; no stray files."""
    out = []
    for m in snap.modules:
        msg = ids.check(ids.IdKind.MODULE, m)
        if msg:
            out.append(Problem(f"modules/{m}", None, "", f"folder name {msg}"))
    for t in snap.tenants:
        msg = ids.check(ids.IdKind.TENANT, t)
        if msg:
            out.append(Problem(f"tenants/{t}", None, "", f"folder name {msg}"))
    for kind, names in (("module", snap.modules), ("tenant", snap.tenants)):
        for group in ids.duplicates_ignoring_case(names):
            base = "modules" if kind == "module" else "tenants"
            out.append(
                Problem(
                    f"{base}/{group[0]}",
                    None,
                    "",
                    f"{kind} ids differ only in case: {', '.join(group)} (artifact names are lower-case)",
                )
            )
    for f in snap.stray_files:
        out.append(
            Problem(f, None, "", "only ID-named folders belong here; move or remove this file")
        )
    return out


def check_ids_match_paths(snap: Snapshot) -> list[Problem]:
    out = []
    for m, info in snap.modules.items():
        if info.spec and info.spec.module_id != m:
            out.append(
                _p(
                    info.doc,
                    f"modules/{m}/module.yml",
                    ("module_id",),
                    f"{info.spec.module_id!r} does not match its folder name {m!r}",
                )
            )
    for t, tinfo in snap.tenants.items():
        if tinfo.spec and tinfo.spec.tenant_id != t:
            out.append(
                _p(
                    tinfo.doc,
                    f"tenants/{t}/tenant.yml",
                    ("tenant_id",),
                    f"{tinfo.spec.tenant_id!r} does not match its folder name {t!r}",
                )
            )
    return out


def check_depends_on(snap: Snapshot) -> list[Problem]:
    """Dependencies name existing modules, not the module itself, and form no cycle."""
    out = []
    graph: dict[str, list[str]] = {}
    for m, info in snap.modules.items():
        if not info.spec:
            continue
        graph[m] = info.spec.deps
        for i, d in enumerate(info.spec.deps):
            if d == m:
                out.append(_p(info.doc, "", ("depends_on", i), "a module cannot depend on itself"))
            elif d not in snap.modules:
                out.append(_p(info.doc, "", ("depends_on", i), f"unknown module {d!r}"))
    for cycle in find_cycles({m: [d for d in ds if d != m] for m, ds in graph.items()}):
        info = snap.modules[cycle[0]]
        out.append(
            _p(
                info.doc,
                "",
                ("depends_on",),
                "dependency cycle: " + " -> ".join([*cycle, cycle[0]]),
            )
        )
    return out


def check_module_inputs(snap: Snapshot) -> list[Problem]:
    """Each input comes from a declared dependency that declares that output."""
    out = []
    for info in snap.modules.values():
        if not info.spec:
            continue
        deps = set(info.spec.deps)
        for i, inp in enumerate(info.spec.inputs):
            loc = ("inputs", i, "module")
            if inp.module not in deps:
                out.append(
                    _p(info.doc, "", loc, f"input producer {inp.module!r} is not in depends_on")
                )
                continue
            producer = snap.modules.get(inp.module)
            if producer is None or producer.spec is None:
                continue  # unknown or broken producer is reported elsewhere
            declared = {o.name for o in producer.spec.outputs}
            if inp.name not in declared:
                out.append(
                    _p(
                        info.doc,
                        "",
                        ("inputs", i, "name"),
                        f"module {inp.module} does not declare output {inp.name!r}"
                        + (f" (it declares {', '.join(sorted(declared))})" if declared else ""),
                    )
                )
    return out


def check_categories(snap: Snapshot) -> list[Problem]:
    """Category registry rows are valid and unique; global reasons use registered ones."""
    out = []
    rel = f"{MAINTENANCE_DIR}/{CATEGORY_REGISTRY}"
    seen: set[str] = set()
    for line, row in enumerate(snap.categories, start=2):
        msg = ids.check(ids.IdKind.CATEGORY, row["category_id"])
        if msg:
            out.append(Problem(rel, line, "category_id", msg))
        elif row["category_id"] in seen:
            out.append(Problem(rel, line, "category_id", f"{row['category_id']} is listed twice"))
        seen.add(row["category_id"])
    if snap.global_reasons and snap.registries_ok:
        for i, r in enumerate(snap.global_reasons.reasons):
            if r.category_id not in seen:
                out.append(
                    _p(
                        snap.global_reasons_doc,
                        GLOBAL_REASONS,
                        ("reasons", i, "category_id"),
                        f"category {r.category_id} is not registered in {rel}",
                    )
                )
    return out


def check_module_registry(snap: Snapshot) -> list[Problem]:
    """Every module folder has a registry row whose category is registered."""
    if not snap.registries_ok:
        return []
    out = []
    rel = f"{MAINTENANCE_DIR}/{MODULE_REGISTRY}"
    cats = snap.category_ids
    seen: dict[str, str] = {}
    for line, row in enumerate(snap.module_registry, start=2):
        mid = row["module_id"]
        msg = ids.check(ids.IdKind.MODULE, mid)
        if msg:
            out.append(Problem(rel, line, "module_id", msg))
            continue
        if ids.fold(mid) in seen:
            out.append(
                Problem(rel, line, "module_id", f"{mid} is registered twice (ignoring case)")
            )
        seen[ids.fold(mid)] = mid
        if row["category_id"] not in cats:
            out.append(
                Problem(
                    rel,
                    line,
                    "category_id",
                    f"category {row['category_id']!r} is not registered in "
                    f"{MAINTENANCE_DIR}/{CATEGORY_REGISTRY}",
                )
            )
        if row["status"] not in STATUSES:
            out.append(
                Problem(rel, line, "status", f"expected active or retired, got {row['status']!r}")
            )
    registered = set(seen.values())
    for m in snap.modules:
        if ids.is_valid(ids.IdKind.MODULE, m) and m not in registered:
            out.append(
                Problem(
                    f"modules/{m}",
                    None,
                    "",
                    f"module {m} is not registered in {rel}; run `workmill new module` "
                    "or add a row with its category_id",
                )
            )
    return out


def check_global_reasons(snap: Snapshot) -> list[Problem]:
    """The platform reasons the orchestrator records are all defined."""
    if snap.global_reasons is None:
        return []
    names = {r.name for r in snap.global_reasons.reasons}
    missing = [n for n in REQUIRED_GLOBAL_REASONS if n not in names]
    if not missing:
        return []
    return [
        _p(
            snap.global_reasons_doc,
            GLOBAL_REASONS,
            ("reasons",),
            "missing platform reason(s) " + ", ".join(missing),
        )
    ]


def action_problems(info: ModuleInfo) -> list[Problem]:
    """Why this action.yml cannot run locally, or is unsafe to run on GitHub."""
    action, doc = info.action, info.action_doc
    if action is None or doc is None:
        return []
    out = []
    if action.runs.using != "composite":
        out.append(
            problem(
                doc,
                ("runs", "using"),
                f"{action.runs.using!r} is not supported; workmill runs composite actions "
                "(runs.using: composite)",
            )
        )
    if not action.runs.steps:
        out.append(problem(doc, ("runs", "steps"), "a composite action needs at least one step"))
    for i, step in enumerate(action.runs.steps):
        loc: tuple[str | int, ...] = ("runs", "steps", i)
        if step.uses is not None:
            out.append(
                problem(
                    doc,
                    (*loc, "uses"),
                    f"'uses: {step.uses}' steps cannot run locally; "
                    "use a 'run' step with shell bash, sh or python",
                )
            )
        if step.run is not None and step.shell not in LOCAL_SHELLS:
            out.append(
                problem(
                    doc,
                    (*loc, "shell"),
                    f"shell {step.shell!r} is not supported locally; use bash, sh or python",
                )
            )
        pasted = pasted_expressions(step.run) if step.run is not None else []
        if pasted:
            out.append(
                problem(
                    doc,
                    (*loc, "run"),
                    f"the script pastes {pasted[0]} into the code (script injection); "
                    "pass it through 'env:' and read \"$VAR\" instead",
                )
            )
    return out


def check_actions(snap: Snapshot) -> list[Problem]:
    out = []
    for info in snap.modules.values():
        out += action_problems(info)
    return out


def params_messages(info: ModuleInfo, params: dict) -> list[tuple[str, str]]:
    """(field, message) for each way ``params`` fail this module's inputs and schema."""
    assert info.action is not None
    try:
        resolve_params(info.action, params, info.schema)
    except SpecError as exc:
        return [(p.field, p.message) for p in exc.problems]
    return []


def check_smoke_params(snap: Snapshot) -> list[Problem]:
    """Given ``smoke.params`` must be valid params, or `workmill smoke` fails for no reason."""
    out = []
    for info in snap.modules.values():
        if not info.ok or info.spec is None or not info.spec.smoke.params:
            continue
        for field, msg in params_messages(info, dict(info.spec.smoke.params)):
            out.append(_p(info.doc, "", ("smoke", "params"), f"{field}: {msg}"))
    return out


def warn_missing_smoke_params(snap: Snapshot) -> list[Problem]:
    """A module with required params and no ``smoke.params`` cannot pass `workmill smoke`.

    A warning, not an error: maintenance must not refuse a repo over a missing smoke test.
    """
    out = []
    for info in snap.modules.values():
        if not info.ok or info.spec is None or info.spec.smoke.params:
            continue
        for field, msg in params_messages(info, {}):
            out.append(
                _p(
                    info.doc,
                    "",
                    ("smoke", "params"),
                    f"{field}: {msg} (no smoke.params: `workmill smoke` will fail on this module)",
                )
            )
    return out


WARNING_CHECKS: tuple[Check, ...] = (warn_missing_smoke_params,)


def check_tenants(snap: Snapshot) -> list[Problem]:
    """allow_release_consumers names existing tenants other than the owner."""
    out = []
    for t, info in snap.tenants.items():
        if not info.spec:
            continue
        for i, c in enumerate(info.spec.allow_release_consumers):
            loc = ("allow_release_consumers", i)
            if c == t:
                out.append(
                    _p(info.doc, "", loc, "a tenant may always reuse its own releases; remove it")
                )
            elif c not in snap.tenants:
                out.append(_p(info.doc, "", loc, f"unknown tenant {c!r}"))
        if len(set(info.spec.allow_release_consumers)) != len(info.spec.allow_release_consumers):
            out.append(_p(info.doc, "", ("allow_release_consumers",), "a tenant is listed twice"))
    return out


PLATFORM_CHECKS: tuple[Check, ...] = (
    check_names,
    check_ids_match_paths,
    check_depends_on,
    check_module_inputs,
    check_categories,
    check_module_registry,
    check_global_reasons,
    check_actions,
    check_smoke_params,
    check_tenants,
)
