"""An orchestrator run, shown on the dashboard and in ``$GITHUB_STEP_SUMMARY``.

docs/reference.md "Status dashboard". Input is the run's summary rows (what
``workmill run --json`` prints), so the orchestrator needs no knowledge of
dashboards: the CLI hands its result here after settle.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from workmill.dashboard._model import RunLine, RunSection, State, check_link, now_stamp
from workmill.dashboard._render import fit, render_run
from workmill.dashboard._stores import mask_env
from workmill.errors import WorkmillError
from workmill.repo import PlatformRepo

SHA_ENV = "WORKMILL_DASHBOARD_SHA"
PR_ENV = "WORKMILL_DASHBOARD_PR"
STEP_SUMMARY_LIMIT = 1024 * 1024  # GitHub's cap on one step's summary


def reason_namer(repo: PlatformRepo) -> Callable[[str], str]:
    """``code → "code NAME"`` from the compiled catalog (the bare code when it is unknown)."""
    from workmill.reasons import catalog_for_display, name_of

    name_of_code = name_of(catalog_for_display(repo.maintenance_dir))

    def label(code: str) -> str:
        name = name_of_code(code)
        return f"{code} {name}" if name else code

    return label


def _reasons(row: Mapping[str, Any], name: Callable[[str], str], ok: str) -> list[str]:
    out: list[str] = []
    for m in row.get("modules") or []:
        if not isinstance(m, Mapping) or not m.get("reason_code"):
            continue
        if m.get("status") == ok:
            continue
        out.append(f"{name(str(m['reason_code']))} (module {m.get('module_id', '?')})")
    code = row.get("reason_code")
    if code and not any(r.startswith(f"{code} ") or r == code for r in out):
        out.insert(0, name(str(code)))
    return list(dict.fromkeys(out))


def run_section(
    rows: Iterable[Mapping[str, Any]],
    name: Callable[[str], str] = str,
    link: str | None = None,
    title: str = "workmill run",
) -> RunSection:
    """The dashboard's view of a run: one line per work order it touched, failures with
    reason names; work orders not run (already processed, disabled) are only counted."""
    # here, not at the top: `workmill dashboard update` should not load the orchestrator
    from workmill.orchestrator.progress import NOT_TOUCHED
    from workmill.orchestrator.statuses import ModuleStatus

    rows = list(rows)
    touched = [r for r in rows if r.get("status") not in NOT_TOUCHED]
    lines = [
        RunLine(
            work_order_id=str(r["work_order_id"]),
            tenant_id=str(r["tenant_id"]),
            status=str(r["status"]),
            spend=r.get("spend_credits"),
            refund=r.get("refund_credits"),
            reasons=_reasons(r, name, ModuleStatus.COMPLETED),
        )
        for r in touched
    ]
    return RunSection(
        title=title,
        link=link,
        at=now_stamp(),
        lines=lines,
        total_spend=sum(ln.spend or 0 for ln in lines),
        total_refund=sum(ln.refund or 0 for ln in lines),
        counts=dict(Counter(ln.status for ln in lines)),
        not_run=len(rows) - len(touched),
    )


def run_link(env: Mapping[str, str]) -> str | None:
    """The Actions run this process belongs to, when it runs in one."""
    server, repo, run_id = (
        env.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if not (server and repo and run_id.isdigit()):
        return None
    try:
        return check_link(f"{server}/{repo}/actions/runs/{run_id}")
    except WorkmillError:
        return None


def step_summary(section: RunSection) -> str:
    """The run as Markdown for ``$GITHUB_STEP_SUMMARY`` (cut like the comment is)."""
    state = fit(State(sha="0" * 40, run=section), STEP_SUMMARY_LIMIT // 2)
    assert state.run is not None
    return mask_env("\n".join(render_run(state.run)) + "\n")


def publish_run(
    repo: PlatformRepo,
    rows: list[dict[str, Any]],
    env: Mapping[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> list[str]:
    """Write the run to ``$GITHUB_STEP_SUMMARY`` and to this commit's dashboard, where set.

    The dashboard's commit is ``$WORKMILL_DASHBOARD_SHA``, else ``$GITHUB_SHA``
    in GitHub Actions; outside both nothing is written. A run that touched no
    work order leaves the dashboard's last run as it was (a scheduled run with
    nothing to do is not news). Returns what was written, for the caller to say so.
    """
    from workmill.dashboard._dashboard import open_dashboard

    env = dict(os.environ) if env is None else dict(env)
    summary = env.get("GITHUB_STEP_SUMMARY")
    sha = env.get(SHA_ENV) or (env.get("GITHUB_SHA") if env.get("GITHUB_ACTIONS") else None)
    if not summary and not sha:
        return []  # a run on one machine: nothing to write, not even the catalog to read
    title = "workmill plan (dry run: nothing charged)" if dry_run else "workmill run"
    section = run_section(rows, reason_namer(repo), run_link(env), title)
    done = []
    if summary:
        with Path(summary).open("a", encoding="utf-8") as fh:
            fh.write(step_summary(section))
        done.append("step summary")
    if sha and section.lines:
        pr_text = env.get(PR_ENV, "")
        pr = int(pr_text) if pr_text.isdigit() else None
        with open_dashboard(repo, sha, pr, env) as board:
            board.set_run(section)
            board.save()
        done.append(f"dashboard on {board.where}")
    return done
