"""``workmill promote --to ENV``: the checkout of ENV carries exactly the source's pins.

Pins are made once, on the first environment (``environments[0]``, e.g. dev);
every later environment gets them by merging, never by pinning again. So a
promotion check reads the source branch's ``module_registry.csv`` with
``git show`` and refuses when any pin differs, when a module has no pin, or
when a module's files differ from its pin; then it runs smoke
(docs/supply-chain.md "Promotion").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workmill.errors import NotFound, SpecError, UsageError
from workmill.repo import PlatformRepo
from workmill.supply._git import repo_prefix, show
from workmill.supply._pins import (
    REGISTRY_PATH,
    PinState,
    parse_registry,
    pin_status,
    pins_of,
    read_registry,
)


@dataclass(frozen=True)
class PinCheck:
    module_id: str
    source: str  # the source environment's pin ("" when none)
    target: str  # this checkout's pin
    current: str  # the files now

    @property
    def problem(self) -> str:
        if not self.current:
            return "no module folder here"
        if not self.target:
            return "no pin here"
        if self.source != self.target:
            return "pin differs from the source's" if self.source else "not pinned in the source"
        if self.current != self.target:
            return "files differ from the pin"
        return ""

    def to_dict(self) -> dict[str, str]:
        return {**self.__dict__, "problem": self.problem}


@dataclass
class PromotionCheck:
    source: str
    target: str
    checks: list[PinCheck] = field(default_factory=list)
    retired_in_source: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[PinCheck]:
        return [c for c in self.checks if c.problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "modules": [c.to_dict() for c in self.checks],
        }


def source_environment(repo: PlatformRepo, target: str, source: str | None = None) -> str:
    """The environment ``target`` is promoted from: ``source``, or the one before it."""
    envs = list(repo.config.environments)
    if not envs:
        raise SpecError.at(
            "workmill.yml",
            "no environments configured; add e.g. `environments: [dev, staging, main]`",
            field="environments",
        )
    if target not in envs:
        raise UsageError(f"--to {target}: not one of workmill.yml environments {envs}")
    if source is not None:
        if source not in envs:
            raise UsageError(f"--from {source}: not one of workmill.yml environments {envs}")
        return source
    i = envs.index(target)
    if i == 0:
        raise UsageError(f"--to {target}: the first environment is pinned, not promoted to")
    return envs[i - 1]


def source_pins(repo: PlatformRepo, source: str) -> dict[str, str]:
    """The source branch's pins (``<source>`` or else ``origin/<source>``) via ``git show``."""
    path = repo_prefix(repo) + REGISTRY_PATH
    for rev in (source, f"origin/{source}"):
        data = show(repo, rev, path)
        if data is not None:
            return pins_of(parse_registry(data, f"{rev}:{path}")[1])
    raise NotFound(
        f"cannot read {path} on branch {source} (nor origin/{source}); "
        f"fetch it first (`git fetch origin {source}`)"
    )


def check_promotion(repo: PlatformRepo, target: str, source: str | None = None) -> PromotionCheck:
    """Compare this checkout's pins and files with the source environment's pins."""
    src = source_environment(repo, target, source)
    theirs = source_pins(repo, src)
    _, rows = read_registry(repo)
    active = {r["module_id"] for r in rows if r.get("status") != "retired"}
    statuses = {s.module_id: s for s in pin_status(repo)}
    out = PromotionCheck(src, target)
    for m in sorted(set(statuses) | (active & set(theirs))):
        s = statuses.get(m)
        target_pin = s.pinned if s else ""
        current = s.current if s else ""
        if s is not None and s.state is PinState.UNPINNED:
            target_pin = ""
        out.checks.append(PinCheck(m, theirs.get(m, ""), target_pin, current))
    return out
