"""Writing the console: Jinja2 pages, pagination, and a directory swapped in whole.

The site is built in a fresh sibling directory and moved into place at the end,
so a reader never sees half a console and a failed build leaves the previous
one untouched. Only a directory this module wrote (it holds ``MARKER``) is ever
replaced (docs/reference.md "Operator console").
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from workmill.console import _charts as charts
from workmill.console import _model as m
from workmill.console._collect import SAFE_ID, ConsoleData, cache_summary
from workmill.errors import UsageError
from workmill.ledger.records import TxType

MARKER = ".workmill-console"
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """One page of a paginated listing (pages are numbered from 1)."""

    number: int
    count: int
    rows: Sequence[Any]
    first: int  # 1-based position of the first row in the whole listing


def paginate(rows: Sequence[T], size: int) -> Iterator[Page]:
    """The pages of ``rows``; an empty listing still has one (empty) page."""
    size = max(size, 1)
    count = max(1, -(-len(rows) // size))
    for n in range(count):
        yield Page(n + 1, count, rows[n * size : (n + 1) * size], n * size + 1)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("workmill.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["credits"] = lambda v: f"{int(v):,}" if str(v).lstrip("-").isdigit() else v
    env.filters["pct"] = lambda v: f"{v * 100:.1f} %"
    env.filters["ms"] = _ms
    return env


def _ms(value: float | int | str | None) -> str:
    if value is None or value == "":
        return ""
    v = float(value)
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


class SiteWriter:
    """Renders templates into ``root`` with the right relative prefix per page."""

    def __init__(self, root: Path, data: ConsoleData) -> None:
        self.root = root
        self.data = data
        self.env = _environment()
        # globals, so that imported macros see them too
        self.env.globals.update(
            data=data,
            reason=data.reason_name,
            tenant_page=tenant_page,
            detail=data.details.__contains__,
        )
        self.pages = 0

    def write(self, rel: str, template: str, section: str, title: str, **ctx: Any) -> None:
        depth = rel.count("/")
        html = self.env.get_template(template).render(
            root="../" * depth,
            section=section,
            title=title,
            **ctx,
        )
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
        self.pages += 1


def tenant_page(tenant_id: str, page: int = 1) -> str:
    """Relative path (from the site root) of a tenant's page, "" when the id is unsafe."""
    return f"tenants/{tenant_id}-{page}.html" if SAFE_ID.fullmatch(tenant_id) else ""


def _tenant_ids(data: ConsoleData) -> list[str]:
    return sorted(set(data.balances) | set(data.tenant_names) | set(data.ledger.tenants))


def write_overview(w: SiteWriter) -> None:
    d = w.data
    months = sorted(d.ledger.months)[-36:]
    credits_chart = charts.grouped_bars(
        "Credits per month",
        months,
        [
            ("spent", [d.ledger.months[k].spent for k in months]),
            ("refunded", [d.ledger.months[k].refunded for k in months]),
            ("topped up", [d.ledger.months[k].topup for k in months]),
        ],
    )
    statuses = m.status_counts(d.log.values()).most_common()
    wo_reasons = m.work_order_reasons(d.log.values())
    codes = sorted(
        set(wo_reasons) | set(d.runs.reasons), key=lambda c: (-wo_reasons[c], -d.runs.reasons[c], c)
    )
    reason_rows = [(c, d.reasons.get(c, ""), wo_reasons[c], d.runs.reasons[c]) for c in codes]
    w.write(
        "index.html",
        "overview.html.j2",
        "overview",
        "Overview",
        tenants=_tenant_ids(d),
        months=months,
        credits_chart=credits_chart,
        statuses=statuses,
        status_chart=charts.horizontal_bars("Work orders by status", statuses),
        reason_rows=reason_rows,
        reason_chart=charts.horizontal_bars(
            "Failure reasons (work orders)",
            [(d.reasons.get(c) or c, n) for c, _, n, _ in reason_rows if n][:12],
        ),
        cache=cache_summary(d.cache_rows, d.now),
    )


def write_tenants(w: SiteWriter) -> None:
    d = w.data
    tenants = [t for t in _tenant_ids(d) if tenant_page(t)]
    w.write("tenants.html", "tenants.html.j2", "tenants", "Tenants", tenants=tenants)
    by_tenant: dict[str, list[m.Tx]] = {}
    for tx in reversed(d.ledger.recent):
        by_tenant.setdefault(tx.tenant_id, []).append(tx)
    promos_of: dict[str, list[dict[str, str]]] = {}
    for r in d.redemptions:
        promos_of.setdefault(r.get("tenant_id", ""), []).append(r)
    for t in tenants:
        rows = by_tenant.get(t, [])
        promos = promos_of.get(t, [])
        topups = [tx for tx in rows if tx.type == TxType.TOPUP]
        for page in paginate(rows, d.options.page_size):
            w.write(
                tenant_page(t, page.number),
                "tenant.html.j2",
                "tenants",
                f"Tenant {t}" + (f" — ledger page {page.number}" if page.number > 1 else ""),
                tenant=t,
                page=page,
                shown=len(rows),
                topups=topups,
                promos=promos,
            )


def write_work_orders(w: SiteWriter) -> None:
    d = w.data
    recent = list(reversed(d.log.values()))[: d.options.recent_rows]
    for page in paginate(recent, d.options.page_size):
        w.write(
            f"workorders-{page.number}.html",
            "workorders.html.j2",
            "workorders",
            "Work orders" + (f" — page {page.number}" if page.number > 1 else ""),
            page=page,
            shown=len(recent),
        )
    for wo, detail in d.details.items():
        names = {k: v.name for k, v in d.modules.items()}
        bars, span = m.gantt_bars(detail.runs, names)
        w.write(
            f"workorders/{wo}.html",
            "workorder.html.j2",
            "workorders",
            f"Work order {wo}",
            wo=wo,
            detail=detail,
            bars=bars,
            span_ms=span,
            module_names=names,
        )


def write_modules(w: SiteWriter) -> None:
    d = w.data
    ids = sorted(set(d.modules) | set(d.runs.modules))
    stats = {mid: d.runs.modules.get(mid, m.ModuleStats()) for mid in ids}
    chart = charts.grouped_bars(
        "Module runs by outcome",
        ids,
        [
            ("failed", [stats[i].failed for i in ids]),
            ("succeeded", [stats[i].runs - stats[i].failed - stats[i].skipped for i in ids]),
            ("skipped", [stats[i].skipped for i in ids]),
        ],
    )
    off_pin = sum(s.off_pin(d.modules[mid].digest) for mid, s in stats.items() if mid in d.modules)
    w.write(
        "modules.html",
        "modules.html.j2",
        "modules",
        "Modules",
        ids=ids,
        stats=stats,
        outcomes_chart=chart,
        off_pin=off_pin,
    )


def write_reuse(w: SiteWriter) -> None:
    d = w.data
    rows = sorted(d.cache_rows, key=lambda r: (r.get("expires_at", ""), r.get("cache_key", "")))
    summary = cache_summary(rows, d.now)
    for page in paginate(rows, d.options.page_size):
        w.write(
            f"reuse-{page.number}.html",
            "reuse.html.j2",
            "reuse",
            "Reuse" + (f" — page {page.number}" if page.number > 1 else ""),
            page=page,
            summary=summary,
            size_bytes=sum(int(r.get("size_bytes") or 0) for r in rows),
        )


WRITERS: tuple[Callable[[SiteWriter], None], ...] = (
    write_overview,
    write_tenants,
    write_work_orders,
    write_modules,
    write_reuse,
)


def _copy_static(root: Path) -> None:
    assets = root / "assets"
    assets.mkdir()
    static = resources.files("workmill.console") / "static"
    for item in static.iterdir():
        if item.name.endswith(".css"):
            (assets / item.name).write_bytes(item.read_bytes())


def check_target(out: Path) -> None:
    """Refuse to replace anything but an earlier console (or an empty directory)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(
            f"--out {out}: directory is not empty and was not written by `workmill console "
            "build`; choose a new or empty directory"
        )


def write_site(data: ConsoleData, out: Path) -> int:
    """Render every page into ``out`` (replacing a console built there before); page count."""
    out = out.resolve()
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    charts.reset_ids()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writer = SiteWriter(tmp, data)
        for write in WRITERS:
            write(writer)
        _copy_static(tmp)
        (tmp / MARKER).write_text(
            "Built by `workmill console build`; rebuilt in place by the next build.\n",
            encoding="utf-8",
        )
        tmp.chmod(0o755)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name[-8:]}")
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return writer.pages
