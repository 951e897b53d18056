"""Everything the console shows, gathered from the billing state, the repo and the runtime dir.

This is the I/O edge of the console: it reads (never writes) the head revision
of the billing state, the compiled maintenance tables, ``tenant.yml`` and
``module.yml`` files, and the step logs of failed module runs.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from workmill import billing_tables as bt
from workmill import clock
from workmill.backends import open_billing_store
from workmill.console import _model as m
from workmill.console._tables import collector_paused, table_cells
from workmill.errors import StateError, WorkmillError
from workmill.history import module_logs_dir
from workmill.orchestrator.statuses import ModuleStatus
from workmill.reasons import catalog_for_display
from workmill.repo import PlatformRepo
from workmill.state import BillingState
from workmill.tables import Row, read_table_or_empty

SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
EXCERPT_LINES = 20
EXCERPT_CHARS = 4000


@dataclass(frozen=True)
class Options:
    """How much the console lists row by row (totals and charts always cover everything)."""

    page_size: int = 500
    recent_rows: int = 50_000
    work_order_pages: int = 500
    # From this many transactions on, a second process folds them while this one
    # reads the logs (below it, starting a process costs more than it saves).
    parallel_from: int = 200_000


@dataclass(frozen=True)
class ModuleInfo:
    module_id: str
    name: str
    tier: str
    version: str
    digest: str
    status: str


@dataclass(frozen=True)
class Artifact:
    tag: str
    name: str
    size_bytes: str
    sha256: str
    url: str  # "" when the store has no web address


@dataclass(frozen=True)
class LogExcerpt:
    module_id: str
    file: str
    text: str


@dataclass
class WorkOrderDetail:
    log: m.LogRow
    runs: list[m.RunRow]
    transactions: list[Row]
    spend_items: list[Row]
    redemptions: list[Row]
    artifacts: list[Artifact]
    excerpts: list[LogExcerpt]


@dataclass
class ConsoleData:
    platform: str
    revision: int
    generated_at: str
    now: str
    options: Options
    tenant_names: dict[str, str]
    tenant_status: dict[str, str]
    balances: dict[str, int]
    ledger: m.LedgerFold
    log: dict[str, m.LogRow]
    runs: m.RunFold
    reasons: dict[str, str]
    modules: dict[str, ModuleInfo]
    cache_rows: list[Row]
    redemptions: list[Row]
    details: dict[str, WorkOrderDetail] = field(default_factory=dict)

    def reason_name(self, code: str) -> str:
        """``103002001 BAD_INPUT``: the code with its catalog name (the code alone if unknown)."""
        if not code:
            return ""
        name = self.reasons.get(code)
        return f"{code} {name}" if name else code


def _tenants(repo: PlatformRepo) -> tuple[dict[str, str], dict[str, str]]:
    names: dict[str, str] = {}
    status: dict[str, str] = {}
    for t in repo.tenant_ids():
        try:
            spec = repo.tenant(t)
        except WorkmillError:
            continue  # `workmill validate` reports a broken tenant.yml; the console shows the id
        names[t], status[t] = spec.name, spec.status
    return names, status


def _modules(repo: PlatformRepo) -> dict[str, ModuleInfo]:
    registry = {
        r.get("module_id", ""): r
        for r in read_table_or_empty(repo.ids_dir / "module_registry.csv", ("module_id",))
    }
    out: dict[str, ModuleInfo] = {}
    for mid in sorted(set(repo.module_ids()) | set(registry)):
        reg = registry.get(mid, {})
        try:
            spec = repo.module(mid)
            name, tier, version = spec.name, spec.tier, spec.version
        except WorkmillError:
            name, tier, version = reg.get("name", ""), "", ""
        out[mid] = ModuleInfo(
            mid, name, tier, version, reg.get("digest", ""), reg.get("status", "")
        )
    return out


def _reasons(repo: PlatformRepo) -> dict[str, str]:
    """Code -> name; empty when the catalog is not compiled (codes are then shown bare)."""
    return {c: r.name for c, r in catalog_for_display(repo.maintenance_dir).by_code.items()}


def download_base(repo: PlatformRepo) -> str:
    """Web address of the GitHub repository holding the releases ("" for the local store)."""
    cfg = repo.config
    if cfg.store != "github":
        return ""
    repository = cfg.github.repository or os.environ.get("GITHUB_REPOSITORY", "")
    api = cfg.github.api_url.rstrip("/")
    if not repository:
        return ""
    if api == "https://api.github.com":
        return f"https://github.com/{repository}"
    if api.endswith("/api/v3"):
        return f"{api.removesuffix('/api/v3')}/{repository}"
    return ""


def _artifacts(state: BillingState, wanted: set[str], base: str) -> dict[str, list[Artifact]]:
    releases = {}
    for c in table_cells(state, bt.RELEASES_MAP, ("release_id", "tag", "work_order_id")):
        if c[2] in wanted:
            releases[c[0]] = (c[1], c[2])
    out: dict[str, list[Artifact]] = {}
    cols = ("release_id", "asset_name", "size_bytes", "sha256")
    for c in table_cells(state, bt.ASSETS_MAP, cols):
        if c[0] in releases:
            tag, wo = releases[c[0]]
            url = f"{base}/releases/download/{tag}/{c[1]}" if base else ""
            out.setdefault(wo, []).append(Artifact(tag, c[1], c[2], c[3], url))
    return out


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - EXCERPT_CHARS))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-EXCERPT_LINES:])


def log_excerpts(runtime_dir: Path, log: m.LogRow, runs: list[m.RunRow]) -> list[LogExcerpt]:
    """The tails of the runner and step logs of the work order's failed module runs."""
    out: list[LogExcerpt] = []
    for r in runs:
        if r.status != ModuleStatus.FAILED or not SAFE_ID.fullmatch(r.module_id):
            continue
        logs = module_logs_dir(runtime_dir, log.tenant_id, log.work_order_id, r.module_id)
        if not logs.is_dir():
            continue
        for path in sorted(logs.glob("*.log"), key=lambda p: (p.name != "runner.log", p.name)):
            text = _tail(path)
            if text.strip():
                out.append(LogExcerpt(r.module_id, path.name, text))
    return out


def fold_transactions(root: str, revision: int, window: int) -> m.LedgerFold | str:
    """The transactions of one revision, folded (run in a second process for big ledgers).

    An error comes back as its message: workmill's exceptions do not all survive pickling.
    """
    try:
        state = open_billing_store(PlatformRepo.open(root)).load(revision)
        with collector_paused():
            return m.fold_ledger(table_cells(state, bt.TRANSACTIONS, m.TX_COLUMNS), window)
    except WorkmillError as exc:
        return str(exc)


class _LedgerJob:
    """Folds the transactions in a spawned process when the ledger is big, else inline."""

    def __init__(self, repo: PlatformRepo, state: BillingState, options: Options) -> None:
        ref = state.manifest.tables.get(bt.TRANSACTIONS)
        rows = sum(p.rows for p in ref.partitions) if ref else 0
        self._args = (str(repo.root.resolve()), state.revision, options.recent_rows)
        self._state, self._pool, self._future = state, None, None
        if rows >= options.parallel_from and (os.cpu_count() or 1) > 1:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._future = self._pool.submit(fold_transactions, *self._args)

    def result(self) -> m.LedgerFold:
        if self._future is None:
            cells = table_cells(self._state, bt.TRANSACTIONS, m.TX_COLUMNS)
            return m.fold_ledger(cells, self._args[2])
        out = self._future.result()
        if isinstance(out, str):
            raise StateError(out)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def collect(repo: PlatformRepo, options: Options, runtime_dir: Path | None = None) -> ConsoleData:
    """Read everything the console shows from the head revision of the billing state."""
    state = open_billing_store(repo).load()
    names, status = _tenants(repo)
    job = _LedgerJob(repo, state, options)
    try:
        with collector_paused():
            log = m.latest_log_rows(table_cells(state, bt.WORKORDERS_LOG, m.LOG_COLUMNS))
            detailed = [wo for wo in reversed(log) if SAFE_ID.fullmatch(wo)]
            keep = set(detailed[: options.work_order_pages])
            runs = m.fold_runs(table_cells(state, bt.MODULE_RUNS_LOG, m.RUN_COLUMNS), keep)
            redemptions = [
                dict(zip(bt.COLUMNS[bt.PROMOTION_REDEMPTIONS], c, strict=True))
                for c in table_cells(
                    state, bt.PROMOTION_REDEMPTIONS, bt.COLUMNS[bt.PROMOTION_REDEMPTIONS]
                )
            ]
            ledger = job.result()
    finally:
        job.close()
    now = clock.now_iso()
    data = ConsoleData(
        platform=repo.root.name,
        revision=state.revision,
        generated_at=now,
        now=now,
        options=options,
        tenant_names=names,
        tenant_status=status,
        balances=state.balances(),
        ledger=ledger,
        log=log,
        runs=runs,
        reasons=_reasons(repo),
        modules=_modules(repo),
        cache_rows=list(state.rows(bt.CACHE_INDEX)),
        redemptions=redemptions,
    )
    artifacts = _artifacts(state, keep, download_base(repo))
    rt = runtime_dir or repo.root / "runtime"
    for wo in detailed[: options.work_order_pages]:
        record = state.work_order_record(wo)
        wo_runs = runs.by_work_order.get(wo, [])
        data.details[wo] = WorkOrderDetail(
            log=log[wo],
            runs=wo_runs,
            transactions=list(record.transactions),
            spend_items=list(record.spend_items),
            redemptions=list(record.redemptions),
            artifacts=artifacts.get(wo, []),
            excerpts=log_excerpts(rt, log[wo], wo_runs),
        )
    return data


def cache_summary(rows: list[Row], now: str) -> Counter[str]:
    """Entries by state: live, expired (past ``expires_at``), orphan (found by prune, not indexed)."""
    out: Counter[str] = Counter()
    for r in rows:
        out["orphan" if r.get("origin") == "orphan" else "indexed"] += 1
        out["expired" if r.get("expires_at") and r["expires_at"] <= now else "live"] += 1
    return out
