"""Staleness: is maintenance-state/ compiled from the inputs the repo holds now?

Only hashes files (no parsing), because the orchestrator asks before every run.
"""

from __future__ import annotations

from workmill.errors import SpecError, StaleMaintenance
from workmill.maintenance._compile import DERIVED_FILES, MANIFEST, MANIFEST_COLUMNS, OUTPUT_FILES
from workmill.repo import MAINTENANCE_DIR, PlatformRepo
from workmill.tables import read_table
from workmill.validate import discover_inputs, hash_inputs

_RUN = "run `workmill maintenance`"


def stale_reasons(repo: PlatformRepo) -> list[str]:
    """What changed since the last compile ('modules/003/module.yml changed', ...)."""
    path = repo.maintenance_dir / MANIFEST
    if not path.is_file():
        return [f"{MAINTENANCE_DIR}/{MANIFEST} is missing"]
    try:
        rows = read_table(path, MANIFEST_COLUMNS, f"{MAINTENANCE_DIR}/{MANIFEST}")
    except SpecError as exc:
        return [str(exc.problems[0])]
    recorded = {r["path"]: r["sha256"] for r in rows if r["kind"] == "input"}
    outputs = {r["path"]: r["sha256"] for r in rows if r["kind"] == "output"}
    current = hash_inputs(repo, discover_inputs(repo))
    out = []
    for p in sorted(set(recorded) | set(current)):
        if p not in current:
            out.append(f"{p} removed")
        elif p not in recorded:
            out.append(f"{p} added")
        elif recorded[p] != current[p]:
            out.append(f"{p} changed")
    derived = [f"{MAINTENANCE_DIR}/{n}" for n in DERIVED_FILES]
    for p, h in sorted(hash_inputs(repo, derived).items()):
        if outputs.get(p) != h:
            out.append(f"{p} differs from what maintenance wrote")
    return out


def nothing_to_compile(repo: PlatformRepo) -> bool:
    """True when inputs and every output are byte-for-byte what the last compile wrote.

    Compiling is deterministic and idempotent, so recompiling would then change
    nothing: maintenance can skip the (much slower) parse of every spec.
    """
    if stale_reasons(repo):
        return False
    rows = read_table(repo.maintenance_dir / MANIFEST, MANIFEST_COLUMNS)
    outputs = {r["path"]: r["sha256"] for r in rows if r["kind"] == "output"}
    expected = {f"{MAINTENANCE_DIR}/{n}" for n in OUTPUT_FILES if n != MANIFEST}
    if set(outputs) != expected:
        return False
    return hash_inputs(repo, sorted(outputs)) == outputs


def check_fresh(repo: PlatformRepo) -> None:
    """Raise StaleMaintenance naming what changed, or return when the state is current."""
    reasons = stale_reasons(repo)
    if not reasons:
        return
    shown = ", ".join(reasons[:3])
    if len(reasons) > 3:
        shown += f", and {len(reasons) - 3} more"
    raise StaleMaintenance(f"maintenance-state is stale ({shown}); {_RUN}")
