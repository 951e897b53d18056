"""The reason-code allocator (docs/reference.md "Reason codes"): codes ``GCCMMMRRR``, never reused.

Pure: given the registry rows and the reasons defined now (in order of first
appearance), return the new registry rows. Invariants:

- a (scope, module, key, category) that has a code keeps it forever;
- ``RRR`` for a module scope only grows (max used + 1), so a deleted key's
  number is never handed to another key, even after the row is retired;
- rows are never removed: a reason that disappeared is marked ``retired`` and
  gets its old code back if it reappears unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workmill import ids
from workmill.errors import Problem

GLOBAL_MODULE = "000"


@dataclass(frozen=True)
class ReasonDef:
    """One reason as the YAML defines it now."""

    scope: str  # "global" | "module"
    category_id: str
    module_id: str  # GLOBAL_MODULE for global reasons
    key: str
    name: str
    description: str
    fail: bool
    refundable: bool


def make_code(d: ReasonDef, number: int) -> str:
    g = "0" if d.scope == "global" else "1"
    return f"{g}{d.category_id}{d.module_id}{number:03d}"


def registry_problems(rows: Sequence[dict[str, str]], rel: str) -> list[Problem]:
    out = []
    seen: set[str] = set()
    for line, r in enumerate(rows, start=2):
        code = r.get("reason_code", "")
        if not ids.is_reason_code(code):
            out.append(Problem(rel, line, "reason_code", f"invalid reason code {code!r}"))
            continue
        if code in seen:
            out.append(Problem(rel, line, "reason_code", f"{code} is listed twice"))
        seen.add(code)
        if r.get("scope") not in ("global", "module"):
            out.append(
                Problem(rel, line, "scope", f"expected global or module, got {r.get('scope')!r}")
            )
        if r.get("status") not in ("active", "retired"):
            out.append(
                Problem(rel, line, "status", f"expected active or retired, got {r.get('status')!r}")
            )
    return out


def allocate(
    registry: Sequence[dict[str, str]], wanted: Sequence[ReasonDef], rel: str
) -> tuple[list[dict[str, str]], dict[ReasonDef, str], list[Problem]]:
    """(new registry rows sorted by code, code of each wanted reason, problems)."""
    rows = [dict(r) for r in registry]
    by_identity: dict[tuple[str, str, str, str], dict[str, str]] = {}
    highest: dict[tuple[str, str], int] = {}
    for r in rows:
        code = r["reason_code"]
        by_identity[(r["scope"], r["module_id"], r["reason_key"], r["category_id"])] = r
        scope_key = (code[0], code[3:6])
        highest[scope_key] = max(highest.get(scope_key, 0), int(code[6:9]))
    codes: dict[ReasonDef, str] = {}
    problems: list[Problem] = []
    matched: set[int] = set()
    for d in wanted:
        row = by_identity.get((d.scope, d.module_id, d.key, d.category_id))
        if row is None:
            scope_key = ("0" if d.scope == "global" else "1", d.module_id)
            n = highest.get(scope_key, 0) + 1
            if n > 999:
                problems.append(
                    Problem(
                        rel,
                        None,
                        "reason_code",
                        f"no reason numbers left for {d.scope} {d.module_id} (999 used)",
                    )
                )
                continue
            highest[scope_key] = n
            row = {c: "" for c in rows[0]} if rows else {}
            row.update(
                reason_code=make_code(d, n),
                scope=d.scope,
                category_id=d.category_id,
                module_id=d.module_id,
                reason_key=d.key,
            )
            rows.append(row)
            by_identity[(d.scope, d.module_id, d.key, d.category_id)] = row
        row["name"] = d.name
        row["status"] = "active"
        matched.add(id(row))
        codes[d] = row["reason_code"]
    for r in rows:
        if id(r) not in matched:
            r["status"] = "retired"
    rows.sort(key=lambda r: r["reason_code"])
    return rows, codes, problems
