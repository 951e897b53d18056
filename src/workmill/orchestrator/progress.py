"""What people watching a run see: live progress (rich) and the summary table."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported where a bar or table is drawn: a piped run need not load it
    from rich.console import Console
    from rich.table import Table


class Reporter:
    """Receives run events; the base class ignores them (library use, --json, no tty)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def start(self, work_orders: int, modules: int) -> None: ...

    def module_started(self, tenant_id: str, work_order_id: str, module_id: str) -> None: ...

    def module_finished(
        self, tenant_id: str, work_order_id: str, module_id: str, status: str
    ) -> None: ...

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def stop(self) -> None: ...


class LiveReporter(Reporter):
    """A rich progress bar on stderr: modules done / running / failed."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        super().__init__()
        self.console = console or Console(stderr=True)
        self.counts: Counter[str] = Counter()
        self.running = 0
        self._lock = threading.Lock()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: Any = None

    def start(self, work_orders: int, modules: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(
            f"{work_orders} work order(s)", total=modules, detail=""
        )

    def _detail(self) -> str:
        c = self.counts
        ok = c["COMPLETED"] + c["COMPLETED_WITH_EXCEPTION"]
        return f"running {self.running} · ok {ok} · failed {c['FAILED']} · skipped {c['SKIPPED']}"

    def module_started(self, tenant_id: str, work_order_id: str, module_id: str) -> None:
        with self._lock:
            self.running += 1
            self._progress.update(self._task, detail=self._detail())

    def module_finished(
        self, tenant_id: str, work_order_id: str, module_id: str, status: str
    ) -> None:
        with self._lock:
            if status != "SKIPPED":
                self.running -= 1
            self.counts[status] += 1
            self._progress.update(self._task, advance=1, detail=self._detail())

    def stop(self) -> None:
        self._progress.stop()


# Decisions that touched nothing: counted under the table, not listed in it.
NOT_TOUCHED = ("SKIPPED", "DISABLED")


def reason_label(row: dict[str, Any]) -> str:
    """``103002001 BAD_INPUT`` when the row carries a name, else the bare code."""
    code = row.get("reason_code") or ""
    name = row.get("reason_name") or ""
    return f"{code} {name}" if code and name else code


def with_reason_names(rows: list[dict[str, Any]], name_of: Any) -> list[dict[str, Any]]:
    """Rows (and their modules) with ``reason_name`` beside every ``reason_code``;
    ``name_of(code)`` returns the name or ``""``."""
    out = []
    for r in rows:
        r = {**r, "reason_name": name_of(r.get("reason_code") or "")}
        if r.get("modules") and isinstance(r["modules"][0], dict):
            r["modules"] = [
                {**m, "reason_name": name_of(m.get("reason_code") or "")} for m in r["modules"]
            ]
        out.append(r)
    return out


def touched(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] not in NOT_TOUCHED]


def skipped_line(rows: list[dict[str, Any]]) -> str:
    """``9 work order(s) not run: 8 already processed, 1 disabled`` (empty when none)."""
    counts = Counter(r["status"] for r in rows if r["status"] in NOT_TOUCHED)
    if not counts:
        return ""
    parts = []
    if counts["SKIPPED"]:
        parts.append(f"{counts['SKIPPED']} already processed")
    if counts["DISABLED"]:
        parts.append(f"{counts['DISABLED']} disabled")
    return f"{sum(counts.values())} work order(s) not run: {', '.join(parts)}"


SUMMARY_COLUMNS = ("work order", "tenant", "status", "reason", "spend", "refund", "module time")
_RIGHT = {"spend", "refund", "module time"}
_STYLE = {
    "COMPLETED": "green",
    "PARTIALLY_COMPLETED": "yellow",
    "FAILED": "red",
    "REJECTED": "magenta",
    "SKIPPED": "dim",
}


def summary_cells(r: dict[str, Any]) -> tuple[str, ...]:
    """One summary row's cells, in ``SUMMARY_COLUMNS`` order."""
    dur = r.get("duration_ms")
    return (
        r["work_order_id"],
        r["tenant_id"],
        r["status"],
        reason_label(r),
        "" if r.get("spend_credits") is None else str(r["spend_credits"]),
        "" if r.get("refund_credits") is None else str(r["refund_credits"]),
        "" if dur is None else f"{dur / 1000:.2f}s",
    )


def summary_table(rows: list[dict[str, Any]]) -> Table:
    """The summary as a rich table, for a terminal."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="workmill run", show_lines=False)
    for col in SUMMARY_COLUMNS:
        table.add_column(col, justify="right" if col in _RIGHT else "left", no_wrap=col != "reason")
    for r in rows:
        cells = list(summary_cells(r))
        table.add_row(
            *cells[:2], Text(cells[2], style=_STYLE.get(r["status"], "white")), *cells[3:]
        )
    return table


def summary_text(rows: list[dict[str, Any]]) -> str:
    """The summary as plain aligned columns, for a pipe or a CI log (no rich needed)."""
    grid = [SUMMARY_COLUMNS, *(summary_cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in grid) for i in range(len(SUMMARY_COLUMNS))]
    lines = [
        "  ".join(
            c.rjust(w) if col in _RIGHT else c.ljust(w)
            for c, w, col in zip(row, widths, SUMMARY_COLUMNS, strict=True)
        ).rstrip()
        for row in grid
    ]
    return "\n".join(lines)
