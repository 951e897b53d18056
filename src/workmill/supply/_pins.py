"""Module pins: the digest a module was reviewed at, in ``module_registry.csv``.

The digest is :func:`workmill.digest.module_digest`, the same one cache keys
use, so "what was pinned", "what was cached" and "what ran" are one hash.
``pin`` rewrites only the ``digest`` column (every other admin value and extra
column is kept) and then recompiles maintenance-state, because the registry is
one of maintenance's inputs (docs/supply-chain.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from workmill.digest import module_digest
from workmill.errors import NotFound, SpecError
from workmill.fsio import atomic_write_bytes
from workmill.repo import MAINTENANCE_DIR, PlatformRepo
from workmill.tables import Row, header_with_extras, parse_table, render_table
from workmill.validate import MODULE_REGISTRY, MODULE_REGISTRY_COLUMNS

REGISTRY_PATH = f"{MAINTENANCE_DIR}/{MODULE_REGISTRY}"


class PinState(StrEnum):
    PINNED = "pinned"  # files equal the pin
    CHANGED = "changed"  # files differ from the pin
    UNPINNED = "unpinned"  # no digest recorded (or no registry row)


@dataclass(frozen=True)
class PinStatus:
    """One module's pin against its files now."""

    module_id: str
    pinned: str  # "" when none
    current: str

    @property
    def state(self) -> PinState:
        if not self.pinned:
            return PinState.UNPINNED
        return PinState.PINNED if self.pinned == self.current else PinState.CHANGED

    def to_dict(self) -> dict[str, str]:
        return {
            "module_id": self.module_id,
            "pinned": self.pinned,
            "current": self.current,
            "state": str(self.state),
        }


def parse_registry(data: bytes | str, where: str = REGISTRY_PATH) -> tuple[list[str], list[Row]]:
    """(header, rows) of a module_registry.csv text (from a file or ``git show``)."""
    return parse_table(data, where, MODULE_REGISTRY_COLUMNS)


def pins_of(rows: Iterable[Row]) -> dict[str, str]:
    """``{module_id: digest}`` of the registry rows that have a digest."""
    return {r["module_id"]: r["digest"] for r in rows if r.get("digest")}


def read_registry(repo: PlatformRepo) -> tuple[list[str], list[Row]]:
    path = repo.maintenance_dir / MODULE_REGISTRY
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"{REGISTRY_PATH}: file not found (run `workmill init`?)") from exc
    return parse_registry(data)


def read_pins(repo: PlatformRepo) -> dict[str, str]:
    return pins_of(read_registry(repo)[1])


def current_digest(repo: PlatformRepo, module_id: str) -> str:
    """The digest of ``modules/<module_id>/`` as it is on disk now."""
    return module_digest(repo.module_dir(module_id))


def _selected(repo: PlatformRepo, module_ids: Sequence[str] | None) -> list[str]:
    present = repo.module_ids()
    if not module_ids:
        return present
    unknown = [m for m in module_ids if m not in present]
    if unknown:
        raise NotFound(f"no module folder for {', '.join(unknown)} under modules/")
    return sorted(dict.fromkeys(module_ids))


def pin_status(repo: PlatformRepo, module_ids: Sequence[str] | None = None) -> list[PinStatus]:
    """Pin against files for the named modules (default: every module folder)."""
    pins = read_pins(repo)
    return [
        PinStatus(m, pins.get(m, ""), current_digest(repo, m)) for m in _selected(repo, module_ids)
    ]


@dataclass(frozen=True)
class PinResult:
    statuses: list[PinStatus]  # before pinning
    written: bool

    @property
    def changed(self) -> list[PinStatus]:
        return [s for s in self.statuses if s.state is not PinState.PINNED]


def pin(repo: PlatformRepo, module_ids: Sequence[str] | None = None) -> PinResult:
    """Record each module's current digest; recompile maintenance-state when a pin moved.

    A module folder without a registry row is refused: registering (category,
    name) is the admin's decision, made by `workmill new module` or maintenance.
    """
    header, rows = read_registry(repo)
    statuses = pin_status(repo, module_ids)
    by_id = {r["module_id"]: r for r in rows}
    missing = [s.module_id for s in statuses if s.module_id not in by_id]
    if missing:
        raise SpecError.at(
            REGISTRY_PATH,
            f"module(s) {', '.join(missing)} have no registry row; run `workmill maintenance` "
            "to register them first",
            field="module_id",
        )
    moved = [s for s in statuses if s.state is not PinState.PINNED]
    if not moved:
        return PinResult(statuses, written=False)
    for s in moved:
        by_id[s.module_id]["digest"] = s.current
    data = render_table(header_with_extras(MODULE_REGISTRY_COLUMNS, [dict.fromkeys(header)]), rows)
    atomic_write_bytes(repo.maintenance_dir / MODULE_REGISTRY, data)
    from workmill.maintenance import run_maintenance  # the registry is a maintenance input

    run_maintenance(repo)
    return PinResult(statuses, written=True)


def unpinned_modules(repo: PlatformRepo, module_ids: Iterable[str]) -> list[PinStatus]:
    """The modules among ``module_ids`` whose files differ from (or lack) a pin."""
    pins = read_pins(repo)
    out = []
    for m in module_ids:
        status = PinStatus(m, pins.get(m, ""), current_digest(repo, m))
        if status.state is not PinState.PINNED:
            out.append(status)
    return out


def describe(status: PinStatus) -> str:
    """One line for a refusal: which module, pinned vs now."""
    if status.state is PinState.UNPINNED:
        return f"module {status.module_id} has no pinned digest"
    return (
        f"module {status.module_id} files (digest {status.current[:12]}) differ from its pin "
        f"{status.pinned[:12]}"
    )
