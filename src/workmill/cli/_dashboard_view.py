"""The dashboard in a terminal (rich tables), for ``workmill dashboard show``."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from workmill.dashboard import State, stage_rows
from workmill.dashboard._render import run_line_texts

_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "success": "green",
    "failure": "red",
    "skipped": "dim",
}


def dashboard_tables(state: State, where: str) -> list[Table]:
    """The stage table, and the last run's work orders when there was a run."""
    stages = Table(title=f"workmill · commit {state.sha[:12]} · {where}", title_justify="left")
    for col in ("stage", "status", "link", "time", "note"):
        stages.add_column(col)
    for s, row in zip(state.stages, stage_rows(state), strict=True):
        stages.add_row(row[0], Text(row[1], style=_STYLE[s.status.value]), *map(Text, row[2:]))
    out = [stages]
    run = state.run
    if run is None:
        return out
    title = f"{run.title}: spend {run.total_spend} · refund {run.total_refund}"
    table = Table(title=title, title_justify="left")
    for col in ("work order", "tenant", "status", "spend", "refund", "reasons"):
        table.add_column(col, justify="right" if col in {"spend", "refund"} else "left")
    for row in run_line_texts(run.lines):
        table.add_row(*map(Text, row))
    if run.more:
        table.caption = f"… {run.more} more work order(s)" + (f": {run.link}" if run.link else "")
    out.append(table)
    return out
