"""Everything the three phases share: the repo, the stores, the catalog, the knobs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from workmill import billing_tables as bt
from workmill.backends import open_billing_store, open_cache_backend
from workmill.digest import module_digest
from workmill.errors import NotFound
from workmill.maintenance import ARTIFACTS_POLICY, TENANT_RELATIONSHIPS
from workmill.orchestrator.leases import Leases
from workmill.orchestrator.progress import Reporter
from workmill.reasons import ReasonCatalog
from workmill.repo import PlatformRepo
from workmill.state import BillingStore, ReleaseStore
from workmill.tables import read_table

if TYPE_CHECKING:
    from workmill.cache.backend import CacheBackend


@dataclass
class RunOptions:
    tenant_id: str | None = None
    work_order_id: str | None = None
    dry_run: bool = False
    max_parallel: int | None = None
    runtime_dir: Path | None = None


@dataclass
class RunContext:
    repo: PlatformRepo
    options: RunOptions = field(default_factory=RunOptions)
    reporter: Reporter = field(default_factory=Reporter)
    cancel: threading.Event = field(default_factory=threading.Event)
    _digests: dict[str, str] = field(default_factory=dict, repr=False)

    @cached_property
    def runtime_dir(self) -> Path:
        d = self.options.runtime_dir or self.repo.root / "runtime"
        return d if d.is_absolute() else Path.cwd() / d

    @property
    def max_parallel(self) -> int:
        return self.options.max_parallel or self.repo.max_parallel

    @cached_property
    def store(self) -> BillingStore:
        return open_billing_store(self.repo)

    @property
    def releases(self) -> ReleaseStore:
        return self.store.releases

    @cached_property
    def cache(self) -> CacheBackend:
        return open_cache_backend(self.repo)

    @cached_property
    def cache_index_rows(self) -> list[dict[str, str]]:
        """cache_index.csv as of the start of execution: an operator's shortened expiry holds."""
        return self.store.load().rows(bt.CACHE_INDEX)

    @cached_property
    def catalog(self) -> ReasonCatalog:
        return ReasonCatalog.load(self.repo.maintenance_dir)

    @cached_property
    def leases(self) -> Leases:
        return Leases(self.repo.root / ".workmill" / "leases")

    @cached_property
    def allowed_pairs(self) -> set[tuple[str, str]]:
        """(consumer, owner) pairs from tenant_relationships.csv."""
        path = self.repo.maintenance_dir / TENANT_RELATIONSHIPS
        rows = read_table(path, ("source_tenant_id", "target_tenant_id"))
        return {(r["source_tenant_id"], r["target_tenant_id"]) for r in rows}

    @cached_property
    def artifacts_enabled(self) -> dict[str, bool]:
        path = self.repo.maintenance_dir / ARTIFACTS_POLICY
        rows = read_table(path, ("module_id", "artifacts_enabled"))
        return {r["module_id"]: r["artifacts_enabled"].strip().lower() == "true" for r in rows}

    @cached_property
    def module_pins(self) -> dict[str, str]:
        """``module_registry.csv`` digests as of the start of the run (docs/supply-chain.md)."""
        from workmill.supply import read_pins

        return read_pins(self.repo)

    def module_digest(self, module_id: str) -> str:
        """The module folder's content hash (once per run: what a work order is charged for)."""
        if module_id not in self._digests:
            self._digests[module_id] = module_digest(self.repo.module_dir(module_id))
        return self._digests[module_id]

    def code(self, name: str) -> str:
        """Code of a platform reason by name; a catalog without it is a maintenance problem."""
        try:
            return self.catalog.global_code(name)
        except KeyError as exc:
            raise NotFound(
                f"config/global_reasons.yml lacks {name}; add it and run `workmill maintenance`"
            ) from exc

    def refundable(self, code: str) -> bool:
        reason = self.catalog.get(code)
        return bool(reason and reason.refundable)
