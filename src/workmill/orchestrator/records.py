"""What the phases hand each other: the plan file and the per-work-order journal.

The plan is written by ``plan`` and read by ``execute``/``settle``; the journal
(``runtime/<tenant>/<work_order>/journal.jsonl``) gets one line per finished
module, so a run killed half-way can be finished without re-running what is
already known complete. A line is one O_APPEND write, so a killed process
never loses it; it is fsync'd only before the work order's release manifest
is published (``sync_journal``): a power loss can then cost a re-run of the
last modules, never money (SPEND/REFUND live in the billing store) and never
a manifest whose modules the journal has forgotten.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workmill.errors import SpecError
from workmill.fsio import atomic_write_text


class _Rec(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ModulePlan(_Rec):
    module_id: str
    module_run_id: str
    module_version: str
    reuse_output_type: Literal["new", "cache", "release", "assets"]
    params: dict[str, Any] = Field(default_factory=dict)
    purchase_release_artifacts: bool = False
    cache_retention_override: int | None = None
    release_tag: str | None = None
    assets_folder_name: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    # sha256 of the module folder when it was charged: a module changed since is not run
    module_digest: str = ""
    unrunnable: str = ""  # set when a resumed work order can no longer be run (why)


class WorkOrderPlan(_Rec):
    tenant_id: str
    work_order_id: str
    mode: Literal["STRICT", "PARTIAL_ALLOWED"]
    spend_transaction_id: str
    spend_credits: int
    started_at: str
    modules: list[ModulePlan]
    content_sha256: str = ""  # of the work-order file that was charged
    # how a resumed work order's file differs from what was paid for (reported, not run)
    note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.tenant_id, self.work_order_id)

    def recorded_json(self) -> str:
        """The plan as the billing state records it with the SPEND (no run-local note)."""
        return self.model_copy(update={"note": ""}).model_dump_json()


class Decision(_Rec):
    """A work order the plan did not start: rejected, skipped (processed), or busy elsewhere.

    A REJECTED one carries its reason (code and name) and message every time it is
    planned again; ``logged`` tells whether this run wrote a new REJECTED row (only when
    the reason or the file changed).
    """

    tenant_id: str
    work_order_id: str
    status: str
    reason_code: str = ""
    reason_name: str = ""
    message: str = ""
    logged: bool = False


class Plan(_Rec):
    schema_version: int = 1
    created_at: str
    lease_token: str = ""
    work_orders: list[WorkOrderPlan] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)

    def write(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> Plan:
        try:
            return cls.model_validate_json(path.read_bytes())
        except OSError as exc:
            raise SpecError.at(str(path), f"cannot read plan: {exc.strerror or exc}") from exc
        except ValidationError as exc:
            raise SpecError.at(str(path), f"not a workmill plan: {exc.errors()[0]['msg']}") from exc


class PublishedItem(_Rec):
    filename: str
    item_id: str
    asset_id: str
    source_name: str
    sha256: str
    size_bytes: int
    content_type: str


class ModuleOutcome(_Rec):
    module_id: str
    module_run_id: str
    module_version: str
    status: str
    reason_code: str = ""
    message: str = ""
    reuse_output_type: str
    cache_hit: bool = False
    cache_key: str = ""
    cache_saved_bytes: int = 0
    cache_retention_days: int = 0
    cache_created_at: str = ""
    cache_expires_at: str = ""
    published: list[PublishedItem] = Field(default_factory=list)
    started_at: str
    finished_at: str
    duration_ms: int = 0
    outputs_sha256: str = ""
    module_digest: str = ""  # the module folder's digest when it ran (empty when reused)


def journal_path(runtime_dir: Path, tenant_id: str, work_order_id: str) -> Path:
    return runtime_dir / tenant_id / work_order_id / "journal.jsonl"


def append_outcome(path: Path, outcome: ModuleOutcome) -> None:
    """Append one line in one write: the journal is how a crashed run is resumed."""
    line = (outcome.model_dump_json() + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def sync_journal(path: Path) -> None:
    """Make the journal durable (before anything outside the runtime dir relies on it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path) -> dict[str, ModuleOutcome]:
    """Last outcome per module; a torn last line (crash mid-write) is ignored."""
    out: dict[str, ModuleOutcome] = {}
    if not path.exists():
        return out
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = ModuleOutcome.model_validate(json.loads(raw))
        except (ValueError, ValidationError):
            continue
        out[rec.module_id] = rec
    return out
