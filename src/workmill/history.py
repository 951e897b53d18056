"""What happened, after the fact: processed work orders and their modules' step logs.

The library behind ``workmill history`` and ``workmill logs`` (docs/reference.md
"Commands"). History is read from the billing state's ``workorders_log`` and
``module_runs_log``; step logs live in the runtime dir of the machine that ran the
module (``<runtime>/<tenant>/<work_order>/<module>/logs/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workmill.errors import NotFound, UsageError

Row = dict[str, str]
NameOf = Callable[[str], str]


@dataclass(frozen=True)
class ModuleRun:
    """One row of ``module_runs_log``, with its reason's name."""

    module_id: str
    status: str
    reason_code: str
    reason_name: str
    started_at: str
    finished_at: str
    duration_ms: int
    cache_hit: bool
    reuse_output_type: str
    module_digest: str = ""  # the module folder's digest that ran (docs/supply-chain.md)


@dataclass(frozen=True)
class HistoryEntry:
    """The latest ``workorders_log`` row of one work order (a REJECTED work order that is
    planned again, or a RUNNING one that finished, has several rows; the last one counts)."""

    work_order_id: str
    tenant_id: str
    status: str
    mode: str
    reason_code: str
    reason_name: str
    spend_credits: int | None
    refund_credits: int | None
    started_at: str
    finished_at: str
    modules: list[ModuleRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def _module_run(row: Row, name_of: NameOf) -> ModuleRun:
    code = row.get("reason_code", "")
    return ModuleRun(
        module_id=row.get("module_id", ""),
        status=row.get("status", ""),
        reason_code=code,
        reason_name=name_of(code),
        started_at=row.get("started_at", ""),
        finished_at=row.get("finished_at", ""),
        duration_ms=_int_or_none(row.get("duration_ms")) or 0,
        cache_hit=row.get("cache_hit", "").lower() == "true",
        reuse_output_type=row.get("reuse_output_type", ""),
        module_digest=row.get("module_digest", ""),
    )


def history(
    work_orders_log: Iterable[Row],
    module_runs_log: Iterable[Row],
    name_of: NameOf,
    *,
    tenant_id: str | None = None,
    work_order_id: str | None = None,
    limit: int | None = None,
) -> list[HistoryEntry]:
    """Processed work orders, newest first; ``name_of(code)`` names reason codes."""
    latest: dict[tuple[str, str], tuple[int, Row]] = {}
    for i, row in enumerate(work_orders_log):
        key = (row.get("tenant_id", ""), row.get("work_order_id", ""))
        if tenant_id is not None and key[0] != tenant_id:
            continue
        if work_order_id is not None and key[1] != work_order_id:
            continue
        latest[key] = (i, row)
    modules: dict[tuple[str, str], list[ModuleRun]] = {}
    for row in module_runs_log:
        key = (row.get("tenant_id", ""), row.get("work_order_id", ""))
        if key in latest:
            modules.setdefault(key, []).append(_module_run(row, name_of))
    # newest first: by the time it finished (or started), then by position in the log
    ordered = sorted(
        latest.items(),
        key=lambda kv: (kv[1][1].get("finished_at") or kv[1][1].get("started_at", ""), kv[1][0]),
        reverse=True,
    )
    out = [_entry(row, modules.get(key, []), name_of) for key, (_, row) in ordered]
    return out if limit is None else out[:limit]


def _entry(row: Row, modules: list[ModuleRun], name_of: NameOf) -> HistoryEntry:
    code = row.get("reason_code", "")
    return HistoryEntry(
        work_order_id=row.get("work_order_id", ""),
        tenant_id=row.get("tenant_id", ""),
        status=row.get("status", ""),
        mode=row.get("mode", ""),
        reason_code=code,
        reason_name=name_of(code),
        spend_credits=_int_or_none(row.get("spend_credits")),
        refund_credits=_int_or_none(row.get("refund_credits")),
        started_at=row.get("started_at", ""),
        finished_at=row.get("finished_at", ""),
        modules=sorted(modules, key=lambda m: (m.started_at, m.module_id)),
    )


# ---------------------------------------------------------------- step logs


@dataclass(frozen=True)
class ModuleLogs:
    """The log files of one module run: step logs in step order, then workmill's own."""

    tenant_id: str
    work_order_id: str
    module_id: str
    logs_dir: Path
    step_logs: list[Path]
    runner_log: Path | None


def module_logs_dir(runtime_dir: Path, tenant_id: str, work_order_id: str, module_id: str) -> Path:
    """Where a module run's logs are written (the runner's workspace layout)."""
    return runtime_dir / tenant_id / work_order_id / module_id / "logs"


def _read_logs(logs_dir: Path, tenant_id: str, work_order_id: str, module_id: str) -> ModuleLogs:
    steps = sorted(p for p in logs_dir.glob("step-*.log") if p.is_file())
    runner = logs_dir / "runner.log"
    return ModuleLogs(
        tenant_id,
        work_order_id,
        module_id,
        logs_dir,
        steps,
        runner if runner.is_file() else None,
    )


def find_logs(
    runtime_dir: Path,
    work_order_id: str,
    *,
    module_id: str | None = None,
    tenant_id: str | None = None,
) -> list[ModuleLogs]:
    """Every module run of a work order that left logs in ``runtime_dir`` (one module with
    ``module_id``); NotFound with a hint when there are none."""
    tenants = [tenant_id] if tenant_id else _tenants_with(runtime_dir, work_order_id)
    if len(tenants) > 1:
        raise UsageError(
            f"work order {work_order_id!r} exists for tenants {', '.join(tenants)}; "
            "pass --tenant-id"
        )
    found: list[ModuleLogs] = []
    for t in tenants:
        wo_dir = runtime_dir / t / work_order_id
        names = [module_id] if module_id else sorted(p.name for p in _dirs(wo_dir))
        for m in names:
            d = module_logs_dir(runtime_dir, t, work_order_id, m)
            if d.is_dir():
                found.append(_read_logs(d, t, work_order_id, m))
    if not found:
        what = f"module {module_id} of work order {work_order_id}" if module_id else work_order_id
        raise NotFound(
            f"no logs for {what} under {runtime_dir} (logs stay in the runtime dir of the "
            "machine that ran it; pass --runtime-dir if it was elsewhere)"
        )
    return found


def _dirs(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]


def _tenants_with(runtime_dir: Path, work_order_id: str) -> list[str]:
    return sorted(p.name for p in _dirs(runtime_dir) if (p / work_order_id).is_dir())
