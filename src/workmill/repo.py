"""A platform repo on disk (docs/reference.md "Files of a platform repo"): where everything lives, and typed loading of it.

Loading one file raises SpecError; walking the whole repo and collecting
every problem is the job of ``workmill.validate``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from workmill.errors import NotFound, SpecError
from workmill.specs import (
    ActionSpec,
    GlobalReasonsSpec,
    ModuleSpec,
    PlatformConfig,
    TenantSpec,
    ValidationSpec,
    WorkOrderSpec,
    load_spec,
)

CONFIG_FILE = "workmill.yml"
GLOBAL_REASONS = "config/global_reasons.yml"
MAINTENANCE_DIR = "maintenance-state"
IDS_DIR = "maintenance-state/ids"
TEMPLATES_DIR = "releases"
ENV_REPO = "WORKMILL_REPO"


@dataclass
class PlatformRepo:
    """Paths and cached spec loading for one platform repo rooted at ``root``."""

    root: Path
    _cache: dict[tuple[str, str], object] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, root: Path | str | None = None) -> PlatformRepo:
        """Open the repo at ``root`` (default: ``$WORKMILL_REPO`` or the current directory)."""
        path = Path(root or os.environ.get(ENV_REPO) or ".").resolve()
        if not path.is_dir():
            raise NotFound(f"{path}: not a directory")
        return cls(path)

    @classmethod
    def discover(cls, start: Path | str | None = None) -> PlatformRepo:
        """The repo holding ``start`` (default: ``$WORKMILL_REPO`` or the current directory).

        Walks up like git until a directory has ``workmill.yml``, so commands work
        from any sub-folder, and refuses anywhere else: a command run in the wrong
        directory must not create state there (docs/reference.md "Commands").
        """
        path = Path(start or os.environ.get(ENV_REPO) or ".").expanduser().resolve()
        if not path.is_dir():
            raise NotFound(f"{path}: not a directory")
        root = find_root(path)
        if root is None:
            raise NotFound(
                f"not a workmill platform repo: no {CONFIG_FILE} in {path} or any parent "
                "(cd into one, pass --repo DIR, or create one with `workmill init DIR`)"
            )
        return cls(root)

    # ------------------------------------------------------------ paths
    def rel(self, path: Path) -> str:
        """Repo-relative POSIX path for messages."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def modules_dir(self) -> Path:
        return self.root / "modules"

    @property
    def tenants_dir(self) -> Path:
        return self.root / "tenants"

    @property
    def maintenance_dir(self) -> Path:
        return self.root / MAINTENANCE_DIR

    @property
    def ids_dir(self) -> Path:
        return self.root / IDS_DIR

    @property
    def global_reasons_path(self) -> Path:
        return self.root / GLOBAL_REASONS

    @property
    def templates_dir(self) -> Path:
        """``releases/<billing_state_tag>/``: the tables that bootstrap the billing state."""
        return self.root / TEMPLATES_DIR / self.config.billing_state_tag

    def module_dir(self, module_id: str) -> Path:
        return self.modules_dir / module_id

    def tenant_dir(self, tenant_id: str) -> Path:
        return self.tenants_dir / tenant_id

    def work_order_path(self, tenant_id: str, work_order_id: str) -> Path:
        return self.tenant_dir(tenant_id) / "workorders" / f"{work_order_id}.yml"

    def assets_dir(self, tenant_id: str) -> Path:
        return self.tenant_dir(tenant_id) / "assets" / "outputs"

    def resolve_dir(self, value: str) -> Path:
        """A directory from workmill.yml, relative to the repo root unless absolute."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def local_store_dir(self) -> Path:
        return self.resolve_dir(self.config.local_store_dir)

    @property
    def local_cache_dir(self) -> Path:
        return self.resolve_dir(self.config.local_cache_dir)

    # ------------------------------------------------------------ specs
    @cached_property
    def config(self) -> PlatformConfig:
        if not self.config_path.exists():
            return PlatformConfig()
        return load_spec(self.config_path, PlatformConfig, CONFIG_FILE)

    @property
    def max_parallel(self) -> int:
        return self.config.max_parallel or os.cpu_count() or 1

    def _load(self, kind: str, path: Path, model: type) -> object:
        key = (kind, str(path))
        if key not in self._cache:
            if not path.is_file():
                raise NotFound(f"{self.rel(path)}: file not found")
            self._cache[key] = load_spec(path, model, self.rel(path))
        return self._cache[key]

    def remember(self, kind: str, path: Path, spec: object) -> None:
        """Keep a spec parsed elsewhere (validation reads the same file) so it is not read twice."""
        self._cache.setdefault((kind, str(path)), spec)

    def module(self, module_id: str) -> ModuleSpec:
        spec = self._load("module", self.module_dir(module_id) / "module.yml", ModuleSpec)
        assert isinstance(spec, ModuleSpec)
        return spec

    def module_validation(self, module_id: str) -> ValidationSpec:
        path = self.module_dir(module_id) / "validation.yml"
        if not path.exists():
            return ValidationSpec()
        spec = self._load("validation", path, ValidationSpec)
        assert isinstance(spec, ValidationSpec)
        return spec

    def action(self, module_id: str) -> ActionSpec:
        spec = self._load("action", self.module_dir(module_id) / "action.yml", ActionSpec)
        assert isinstance(spec, ActionSpec)
        return spec

    def tenant(self, tenant_id: str) -> TenantSpec:
        spec = self._load("tenant", self.tenant_dir(tenant_id) / "tenant.yml", TenantSpec)
        assert isinstance(spec, TenantSpec)
        return spec

    def work_order(self, tenant_id: str, work_order_id: str) -> WorkOrderSpec:
        spec = self._load(
            "work-order", self.work_order_path(tenant_id, work_order_id), WorkOrderSpec
        )
        assert isinstance(spec, WorkOrderSpec)
        return spec

    def global_reasons(self) -> GlobalReasonsSpec:
        if not self.global_reasons_path.exists():
            raise SpecError.at(GLOBAL_REASONS, "file not found (run `workmill init`?)")
        spec = self._load("global-reasons", self.global_reasons_path, GlobalReasonsSpec)
        assert isinstance(spec, GlobalReasonsSpec)
        return spec

    # ------------------------------------------------------------ discovery
    def module_ids(self) -> list[str]:
        """Names of folders under modules/ (validity is checked by validate)."""
        return _sorted_children(self.modules_dir, dirs=True)

    def tenant_ids(self) -> list[str]:
        return _sorted_children(self.tenants_dir, dirs=True)

    def work_order_files(self, tenant_id: str) -> list[Path]:
        d = self.tenant_dir(tenant_id) / "workorders"
        if not d.is_dir():
            return []
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))

    def find_work_order(self, work_order_id: str) -> tuple[str, WorkOrderSpec]:
        """(tenant_id, spec) of a work order by id alone."""
        for tenant_id in self.tenant_ids():
            if self.work_order_path(tenant_id, work_order_id).is_file():
                return tenant_id, self.work_order(tenant_id, work_order_id)
        raise NotFound(f"work order {work_order_id!r} not found under tenants/*/workorders/")


def find_root(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that holds ``workmill.yml``."""
    for candidate in (path, *path.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return None


def _sorted_children(path: Path, *, dirs: bool) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(
        p.name for p in path.iterdir() if not p.name.startswith(".") and p.is_dir() == dirs
    )
