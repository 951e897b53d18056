"""Reading the compiled reason catalog and policy (docs/reference.md "Reason codes").

``workmill maintenance`` writes ``reason_catalog.csv`` and ``reason_policy.csv``;
this module is how the runner and the orchestrator turn a reason name, key or
code into a code and its policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workmill import ids
from workmill.errors import SpecError, WorkmillError
from workmill.tables import parse_bool, read_table

CATALOG_FILE = "reason_catalog.csv"
POLICY_FILE = "reason_policy.csv"
CATALOG_COLUMNS = (
    "reason_code",
    "scope",
    "category_id",
    "module_id",
    "reason_key",
    "name",
    "description",
    "default_fail",
    "default_refundable",
    "status",
)
POLICY_COLUMNS = ("reason_code", "fail", "refundable", "note")


@dataclass(frozen=True)
class Reason:
    code: str
    scope: str  # "global" | "module"
    module_id: str  # "000" for global
    key: str
    name: str
    description: str
    fail: bool
    refundable: bool
    status: str  # "active" | "retired"


@dataclass(frozen=True)
class ReasonCatalog:
    by_code: dict[str, Reason]

    @classmethod
    def load(cls, maintenance_dir: Path) -> ReasonCatalog:
        """Join the catalog with the admin-owned policy (policy wins over defaults)."""
        cat_path = maintenance_dir / CATALOG_FILE
        pol_path = maintenance_dir / POLICY_FILE
        catalog = read_table(cat_path, CATALOG_COLUMNS, "maintenance-state/" + CATALOG_FILE)
        policy_rows = (
            read_table(pol_path, POLICY_COLUMNS, "maintenance-state/" + POLICY_FILE)
            if pol_path.exists()
            else []
        )
        policy = {r["reason_code"]: r for r in policy_rows}
        out: dict[str, Reason] = {}
        for i, row in enumerate(catalog, start=2):
            code = row["reason_code"]
            name = "maintenance-state/" + CATALOG_FILE
            if not ids.is_reason_code(code):
                raise SpecError.at(
                    name, f"invalid reason code {code!r}", field="reason_code", line=i
                )
            fail = parse_bool(row["default_fail"], name, "default_fail", i)
            refundable = parse_bool(row["default_refundable"], name, "default_refundable", i)
            if code in policy:
                pname = "maintenance-state/" + POLICY_FILE
                fail = parse_bool(policy[code]["fail"], pname, "fail")
                refundable = parse_bool(policy[code]["refundable"], pname, "refundable")
            out[code] = Reason(
                code=code,
                scope=row["scope"],
                module_id=row["module_id"],
                key=row["reason_key"],
                name=row["name"],
                description=row["description"],
                fail=fail,
                refundable=refundable,
                status=row["status"] or "active",
            )
        return cls(out)

    def global_code(self, name: str) -> str:
        """Code of a platform reason by name (``MODULE_TIMEOUT``); KeyError when unknown."""
        for r in self.by_code.values():
            if r.scope == "global" and r.name == name and r.status != "retired":
                return r.code
        raise KeyError(f"global reason {name} is not in the reason catalog (run maintenance)")

    def resolve_module_reason(self, module_id: str, written: str) -> Reason | None:
        """What a module wrote to ``WM_REASON_FILE`` (a key of its own, or a full code).

        Retired codes (their key was deleted) are unknown: the catalog keeps them
        only so old log rows still resolve to a name.
        """
        written = written.strip()
        if written in self.by_code:
            r = self.by_code[written]
            if r.status == "retired":
                return None
            if r.scope == "global" or r.module_id == module_id:
                return r
            return None
        for r in self.by_code.values():
            if (
                r.scope == "module"
                and r.module_id == module_id
                and r.key == written
                and r.status != "retired"
            ):
                return r
        return None

    def get(self, code: str) -> Reason | None:
        return self.by_code.get(code)

    def label(self, code: str) -> str:
        """``103002001 BAD_INPUT``: how people read a code (docs/reference.md "Reason codes");
        the bare code when the catalog does not know it, empty for no code."""
        r = self.by_code.get(code)
        return f"{code} {r.name}" if r else code

    def annotate(self, text: str) -> str:
        """Every known nine-digit code in free text followed by its name (ledger notes)."""
        return _CODE_IN_TEXT.sub(lambda m: self.label(m.group(0)), text)


_CODE_IN_TEXT = re.compile(r"(?<!\d)\d{9}(?!\d)")


def catalog_for_display(maintenance_dir: Path) -> ReasonCatalog:
    """The catalog for showing names; an empty one when it is missing or unreadable, so a
    broken catalog never stops a read-only command (codes are then shown bare)."""
    try:
        return ReasonCatalog.load(maintenance_dir)
    except (WorkmillError, OSError):
        return ReasonCatalog({})


def name_of(catalog: ReasonCatalog) -> Callable[[str], str]:
    """``code -> name`` (``""`` for no code or an unknown one), for rows shown to people."""

    def name(code: str) -> str:
        r = catalog.by_code.get(code)
        return r.name if r else ""

    return name
