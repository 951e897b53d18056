"""Shared builders for the foundation tests: a small valid platform repo on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workmill.maintenance import run_maintenance
from workmill.repo import PlatformRepo
from workmill.scaffold import init_repo, new_module, new_tenant, new_work_order


@dataclass
class Platform:
    repo: PlatformRepo
    root: Path
    tenant: str
    work_order: str

    def path(self, rel: str) -> Path:
        return self.root / rel

    def read(self, rel: str) -> str:
        return self.path(rel).read_text()

    def write(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def edit(self, rel: str, old: str, new: str) -> None:
        text = self.read(rel)
        assert old in text, f"{old!r} not in {rel}"
        self.write(rel, text.replace(old, new, 1))

    def fresh(self) -> PlatformRepo:
        """A new PlatformRepo (no cached specs) over the same files."""
        self.repo = PlatformRepo.open(self.root)
        return self.repo

    def wo(self) -> str:
        return f"tenants/{self.tenant}/workorders/{self.work_order}.yml"


def make_platform(root: Path) -> Platform:
    """init + modules 001 (02) and 002 (04, needs 001's result.json) + a tenant + a work order."""
    repo = init_repo(root)
    assert new_module(repo, "Ingest", "02") == "001"
    assert new_module(repo, "Report", "04") == "002"
    m2 = root / "modules/002/module.yml"
    m2.write_text(
        m2.read_text()
        .replace("depends_on: []", 'depends_on: ["001"]')
        .replace("inputs: []", 'inputs: [{module: "001", name: result.json, format: json}]')
    )
    tenant = new_tenant(repo, "Acme Media")
    repo = PlatformRepo.open(root)
    wo = new_work_order(repo, tenant, ["002"])
    run_maintenance(repo)
    return Platform(PlatformRepo.open(root), root, tenant, wo)
