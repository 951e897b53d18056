"""The dashboard as Markdown (the comment body, the local file) and back.

docs/reference.md "Status dashboard". The body starts with the hidden marker
that finds it and ends with the state as JSON in a second HTML comment, so a
reader never has to parse the table. Everything user-supplied is escaped so a
note cannot break the table, close the hidden comment or mention anyone.
GitHub's limit is 65,536 characters; we count UTF-16 code units (the stricter
measure) and cut the work-order table, never a stage, to stay under it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from workmill.dashboard._model import (
    ICONS,
    RunLine,
    RunSection,
    Stage,
    State,
    parse_stamp,
    parse_state,
)
from workmill.errors import WorkmillError

MAX_BODY = 65_536
MARKER = "<!-- workmill-dashboard:{sha} -->"
_STATE_OPEN = "<!-- workmill-dashboard-state "
_STATE = re.compile(r"<!-- workmill-dashboard-state (\{.*?\}) -->\s*\Z", re.S)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#+!|~])")


def marker(sha: str) -> str:
    return MARKER.format(sha=sha)


def body_length(body: str) -> int:
    """Length as GitHub may count it (UTF-16 code units: an emoji counts twice)."""
    return len(body.encode("utf-16-le")) // 2


def text(value: str) -> str:
    """Plain text safe inside a Markdown table cell: no pipes, tags, mentions or newlines."""
    value = " ".join(value.split())
    value = _MD_SPECIAL.sub(r"\\\1", value)
    return value.replace("<", "&lt;").replace(">", "&gt;").replace("@", "&#64;")


def _time(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return parse_stamp(stamp).strftime("%m-%d %H:%M UTC")


def status_label(stage: Stage) -> str:
    """Icon and status; GitHub's own word when it differs (``❌ failure (cancelled)``)."""
    label = f"{ICONS[stage.status]} {stage.status.value}"
    return f"{label} ({stage.word})" if stage.word else label


def stage_rows(state: State) -> list[list[str]]:
    """``[stage, status, link, time, note]`` per stage, plain text (for the terminal)."""
    return [
        [
            s.key,
            status_label(s),
            s.link or "-",
            _time(s.at),
            s.note or "",
        ]
        for s in state.stages
    ]


def _stage_table(state: State) -> list[str]:
    out = ["| Stage | Status | Link | Time | Note |", "|---|---|---|---|---|"]
    for s in state.stages:
        link = f"[view]({s.link})" if s.link else "-"
        note = text(s.note) if s.note else ""
        out.append(f"| `{s.key}` | {status_label(s)} | {link} | {_time(s.at)} | {note} |")
    return out


def _money(value: int | None) -> str:
    return "-" if value is None else str(value)


def render_run(run: RunSection) -> list[str]:
    shown = len(run.lines) + run.more
    counts = ", ".join(f"{n} {text(k)}" for k, n in sorted(run.counts.items()))
    head = f"### {text(run.title)}"
    if run.link:
        head += f" · [run]({run.link})"
    out = [
        head,
        "",
        f"{shown} work order(s){': ' + counts if counts else ''} · "
        f"spend {run.total_spend} · refund {run.total_refund} · {_time(run.at)}"
        + (f" · {run.not_run} not run (already processed or disabled)" if run.not_run else ""),
        "",
    ]
    if not run.lines and not run.more:
        return out
    out += [
        "| Work order | Tenant | Status | Spend | Refund | Reasons |",
        "|---|---|---|---:|---:|---|",
    ]
    for line in run.lines:
        reasons = "<br>".join(text(r) for r in line.reasons) or "-"
        out.append(
            f"| `{text(line.work_order_id)}` | `{text(line.tenant_id)}` | {text(line.status)} "
            f"| {_money(line.spend)} | {_money(line.refund)} | {reasons} |"
        )
    if run.more:
        more = f"… {run.more} more work order(s)"
        out += ["", more + (f" — [full list in the run]({run.link})" if run.link else "")]
    return out


def _state_json(state: State) -> str:
    raw = state.model_dump_json(exclude_none=True)
    # inside an HTML comment: '<', '>' and '&' never appear literally, so '-->' cannot;
    for ch in "<>&@":  # and no '@': a mention in a hidden comment should not notify anyone
        raw = raw.replace(ch, f"\\u{ord(ch):04x}")
    return raw


def render_unchecked(state: State) -> str:
    lines = [
        marker(state.sha),
        f"## ⚙️ workmill · commit `{state.sha[:12]}`",
        "",
        *_stage_table(state),
        "",
    ]
    if state.run is not None:
        lines += [*render_run(state.run), ""]
    lines.append(f"{_STATE_OPEN}{_state_json(state)} -->")
    return "\n".join(lines) + "\n"


def fit(state: State, limit: int = MAX_BODY) -> State:
    """``state`` with as many work-order lines as fit in a body under ``limit``.

    Stages are bounded (count, link and note length) so they always fit; the
    run's lines are cut from the end and counted in ``more`` (binary search:
    the body length grows with every line kept).
    """
    if body_length(render_unchecked(state)) < limit:
        return state
    run = state.run
    if run is None or not run.lines:
        raise WorkmillError("dashboard body too long even without the run table")
    total = len(run.lines) + run.more

    def cut(k: int) -> State:
        kept = RunSection(**{**run.model_dump(), "lines": run.lines[:k], "more": total - k})
        return state.model_copy(update={"run": kept})

    lo, hi = 0, len(run.lines)  # lo always fits (checked below), hi does not
    if body_length(render_unchecked(cut(0))) >= limit:
        raise WorkmillError("dashboard body too long even without the run table")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if body_length(render_unchecked(cut(mid))) < limit:
            lo = mid
        else:
            hi = mid
    return cut(lo)


def render(state: State, mask: Callable[[str], str] = lambda s: s) -> str:
    """The full body (fitted under GitHub's limit), with secrets masked."""
    body = mask(render_unchecked(fit(state)))
    if body_length(body) >= MAX_BODY:  # masking only shortens, but hold the invariant here
        raise WorkmillError("dashboard body over GitHub's 65,536-character limit")
    return body


def read_body(body: str, sha: str) -> State | None:
    """The state of a body that starts with our marker, or None (not ours, or unreadable)."""
    if not body.startswith(marker(sha)):
        return None
    m = _STATE.search(body)
    state = parse_state(m.group(1)) if m else None
    if state is None or state.sha != sha:
        return State(sha=sha)  # ours by its marker, but edited past reading: start it afresh
    return state


def run_line_texts(lines: list[RunLine]) -> list[list[str]]:
    return [
        [
            ln.work_order_id,
            ln.tenant_id,
            ln.status,
            _money(ln.spend),
            _money(ln.refund),
            "; ".join(ln.reasons),
        ]
        for ln in lines
    ]


def dumps(state: State) -> str:
    return json.dumps(state.model_dump(mode="json"), indent=2)
