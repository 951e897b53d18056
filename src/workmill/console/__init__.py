"""The operator console: a static, self-contained web view of one platform repo.

Typical use (``workmill console build --out site``)::

    report = build_console(PlatformRepo.open("."), Path("site"))
    print(report.pages, report.seconds)

It reads the head revision of the billing state, the compiled maintenance
tables and the step logs of failed module runs, and writes HTML pages with
inline SVG charts; nothing is fetched when they are viewed
(docs/reference.md "Operator console").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from workmill.console._collect import ConsoleData, Options, collect
from workmill.console._site import MARKER, check_target, paginate, write_site
from workmill.repo import PlatformRepo


@dataclass(frozen=True)
class BuildReport:
    out: Path
    pages: int
    transactions: int
    work_orders: int
    seconds: float


def build_console(
    repo: PlatformRepo,
    out: Path,
    options: Options | None = None,
    runtime_dir: Path | None = None,
) -> BuildReport:
    """Build the console for ``repo`` into ``out`` (replacing a console built there before)."""
    t0 = time.perf_counter()
    check_target(out)  # before any work: a refusal should be instant
    data = collect(repo, options or Options(), runtime_dir)
    pages = write_site(data, out)
    return BuildReport(
        out.resolve(), pages, data.ledger.total, len(data.log), time.perf_counter() - t0
    )


__all__ = [
    "MARKER",
    "BuildReport",
    "ConsoleData",
    "Options",
    "build_console",
    "collect",
    "paginate",
    "write_site",
]
