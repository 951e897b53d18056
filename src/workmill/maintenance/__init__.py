"""``workmill maintenance``: compile maintenance-state/ (docs/reference.md "Files of a platform repo").

``compile_maintenance`` is pure apart from reading the repo; ``run_maintenance``
writes only the files whose bytes differ (atomically) or, with ``check``,
writes nothing and names the drifted files. ``check_fresh`` is the cheap
staleness test the orchestrator runs first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workmill.fsio import REPO_FILE_MODE, atomic_write_bytes
from workmill.maintenance._allocator import GLOBAL_MODULE, ReasonDef, allocate
from workmill.maintenance._compile import (
    ARTIFACTS_COLUMNS,
    ARTIFACTS_POLICY,
    DEPENDENCY_COLUMNS,
    DEPENDENCY_INDEX,
    MANIFEST,
    MANIFEST_COLUMNS,
    OUTPUT_FILES,
    RELATIONSHIP_COLUMNS,
    REQUIREMENTS_COLUMNS,
    REQUIREMENTS_INDEX,
    TENANT_RELATIONSHIPS,
    compile_maintenance,
    compile_snapshot,
)
from workmill.maintenance._fresh import check_fresh, nothing_to_compile, stale_reasons
from workmill.repo import PlatformRepo

__all__ = [
    "ARTIFACTS_COLUMNS",
    "ARTIFACTS_POLICY",
    "DEPENDENCY_COLUMNS",
    "DEPENDENCY_INDEX",
    "GLOBAL_MODULE",
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "OUTPUT_FILES",
    "RELATIONSHIP_COLUMNS",
    "REQUIREMENTS_COLUMNS",
    "REQUIREMENTS_INDEX",
    "TENANT_RELATIONSHIPS",
    "MaintenanceResult",
    "ReasonDef",
    "allocate",
    "check_fresh",
    "compile_maintenance",
    "compile_snapshot",
    "nothing_to_compile",
    "run_maintenance",
    "stale_reasons",
    "write_compiled",
]


@dataclass
class MaintenanceResult:
    """Files (relative to maintenance-state/) by what happened to them."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    check: bool = False

    @property
    def drifted(self) -> list[str]:
        """With ``check``: the files that differ from what would be compiled."""
        return self.changed if self.check else []


def write_compiled(
    repo: PlatformRepo, files: dict[str, bytes], *, check: bool
) -> MaintenanceResult:
    result = MaintenanceResult(check=check)
    for name in sorted(files):
        path = repo.maintenance_dir / name
        try:
            current = path.read_bytes()
        except OSError:
            current = None
        if current == files[name]:
            result.unchanged.append(name)
            continue
        result.changed.append(name)
    if not check:
        # the manifest goes last: an interrupted run then looks stale, never fresh
        for name in sorted(result.changed, key=lambda n: n == MANIFEST):
            atomic_write_bytes(repo.maintenance_dir / name, files[name], mode=REPO_FILE_MODE)
    return result


def run_maintenance(repo: PlatformRepo, check: bool = False) -> MaintenanceResult:
    """Compile and write maintenance-state/ (or only compare, with ``check``).

    When nothing changed since the last compile (hashes only) the parse is skipped.
    """
    if nothing_to_compile(repo):
        return MaintenanceResult(unchanged=sorted(OUTPUT_FILES), check=check)
    return write_compiled(repo, compile_maintenance(repo), check=check)
