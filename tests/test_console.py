"""The operator console (docs/reference.md "Operator console").

End to end: ``workmill demo``, ``workmill console build``, then every page is
opened in a real headless Chromium over the DevTools protocol: no console
error, no request outside ``file://``, every link resolves, and the figures on
the pages equal the ones recomputed here from the CSVs ``workmill state pull``
exports. The rest are unit tests of the folds, the fast table reader and the
output directory rules.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from browser import Chromium, find_chromium
from workmill.backends import open_billing_store
from workmill.billing_tables import CACHE_INDEX, COLUMNS, PROMOTION_REDEMPTIONS
from workmill.console import paginate
from workmill.console._model import RunRow, fold_ledger, fold_runs, gantt_bars, latest_log_rows
from workmill.console._tables import _chunk_rows
from workmill.errors import StateError
from workmill.tables import parse_table, render_table

PAGE_FACTS = """(() => {
  const all = (sel) => [...document.querySelectorAll(sel)];
  const text = (e) => e ? e.textContent.trim() : null;
  return {
    title: document.title,
    links: all('a[href]').map(a => a.href),
    balances: all('[data-balance]').map(e => [e.dataset.balance, text(e)]),
    statusCounts: all('[data-status-count]').map(e => [e.dataset.statusCount, text(e)]),
    ledger: all('table.ledger tbody tr').filter(r => r.querySelector('[data-amount]')).map(
      r => [text(r.querySelector('th code')), text(r.querySelector('[data-amount]')),
            text(r.querySelector('[data-balance-after]'))]),
    woStatus: text(document.querySelector('[data-wo-status]')),
    woSpend: text(document.querySelector('[data-wo-spend]')),
    woRefund: text(document.querySelector('[data-wo-refund]')),
    cacheHitRate: text(document.querySelector('[data-cache-hit-rate]')),
    thWithoutScope: all('th:not([scope])').length,
    tablesWithoutHeaders: all('table').filter(t => !t.querySelector('th[scope]')).length,
    chartsWithoutSvg: all('figure.chart').filter(f => !f.querySelector('svg')).length,
    unlabelledSvgs: all('svg').filter(s => s.getAttribute('role') !== 'img' ||
      !(s.getAttribute('aria-label') || s.getAttribute('aria-labelledby'))).length,
    h1: text(document.querySelector('h1')),
    scrollers: all('.scroll, pre.log').map(e => [e.tabIndex, e.getAttribute('role'),
      e.getAttribute('aria-label'), text(e.querySelector('caption'))]),
    pinned: all('[data-pinned]').map(e => [e.dataset.pinned,
      e.querySelector('code') ? e.querySelector('code').title : '']),
    ranDigests: all('[data-ran-digests]').map(e => [e.dataset.ranDigests,
      all(`[data-ran-digests="${e.dataset.ranDigests}"] .ran`).map(
        r => [r.dataset.digest, Number(r.dataset.runs), !!r.querySelector('.off-pin')])]),
    offPinRuns: all('[data-off-pin-runs]').map(e => [e.dataset.offPinRuns, text(e)]),
    runDigests: all('[data-run-digest]').map(e => [e.dataset.runDigest,
      e.querySelector('.ran') ? e.querySelector('.ran').dataset.digest : '',
      !!e.querySelector('.off-pin')]),
  };
})()"""


def _num(text: str) -> int:
    return int(text.replace(",", ""))


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _crawl(browser: Chromium, site: Path) -> dict[str, dict]:
    """Visit every page reachable from index.html; page path -> facts, errors, requests."""
    seen: dict[str, dict] = {}
    todo = [(site / "index.html").as_uri()]
    while todo:
        url = todo.pop()
        path = unquote(urlparse(url).path)
        if path in seen:
            continue
        visit = browser.visit(url)
        facts = browser.evaluate(PAGE_FACTS)
        seen[path] = {"errors": visit.errors, "requests": visit.requests, **facts}
        for link in facts["links"]:
            parts = urlparse(link)
            if parts.scheme == "file":
                target = unquote(parts.path)
                assert Path(target).is_file(), f"{path}: link to missing {target}"
                if target.endswith(".html") and target not in seen:
                    todo.append(Path(target).as_uri())
    return seen


def _page(pages: dict[str, dict], path: Path) -> dict:
    return pages[path.as_posix()]


def _assert_clean(pages: dict[str, dict], site: Path) -> None:
    """Every page loads without errors, fetches nothing outside file://, is accessible."""
    assert set(pages) == {p.as_posix() for p in site.rglob("*.html")}, "all reachable"
    for path, page in pages.items():
        assert page["errors"] == [], (path, page["errors"])
        assert page["requests"] and all(u.startswith("file://") for u in page["requests"]), path
        assert page["thWithoutScope"] == 0 and page["tablesWithoutHeaders"] == 0, path
        assert page["unlabelledSvgs"] == 0 and page["chartsWithoutSvg"] == 0, path
        assert page["h1"] and page["title"].startswith(page["h1"]), path
        for tabindex, role, label, caption in page["scrollers"]:  # keyboard-scrollable regions
            assert (tabindex, role) == (0, "region") and label, (path, label)
            assert caption is None or label == caption, (path, label, caption)
    html = "".join(p.read_text(encoding="utf-8") for p in site.rglob("*.html"))
    assert "<script" not in html and "&lt;Macro" not in html
    assert (site / "modules.html").read_text(encoding="utf-8").count("<svg") == 1


def _assert_overview(overview: dict, pulled: Path, balance: Counter[str]) -> None:
    shown = {t: _num(v) for t, v in overview["balances"]}
    assert {t: shown[t] for t in balance} == dict(balance)
    assert all(v == 0 for t, v in shown.items() if t not in balance)
    latest = {r["work_order_id"]: r for r in _csv(pulled / "workorders_log.csv")}
    assert {s: _num(n) for s, n in overview["statusCounts"]} == Counter(
        r["status"] for r in latest.values()
    )
    runs = _csv(pulled / "module_runs_log.csv")
    lookups = [
        r for r in runs if r["reuse_output_type"] in ("new", "cache") and r["status"] != "SKIPPED"
    ]
    hits = sum(r["cache_hit"] == "true" for r in lookups)
    assert overview["cacheHitRate"] == f"{hits / len(lookups) * 100:.1f} %"


def _assert_ledgers(pages: dict, site: Path, txs: list[dict], balance: Counter[str]) -> None:
    """Each tenant's pages list its transactions newest first with a true running balance."""
    by_tenant = defaultdict(list)
    for t in txs:
        by_tenant[t["tenant_id"]].append(t)
    for tenant, rows in by_tenant.items():
        listed = []
        n = 1
        while (site / "tenants" / f"{tenant}-{n}.html").exists():
            page = _page(pages, site / "tenants" / f"{tenant}-{n}.html")
            assert {t: _num(v) for t, v in page["balances"]} == {tenant: balance[tenant]}
            listed += page["ledger"]
            n += 1
        assert [x[0] for x in listed] == [t["transaction_id"] for t in reversed(rows)]
        amounts = [_num(a) for _, a, _ in reversed(listed)]
        after = [_num(b) for _, _, b in reversed(listed)]
        running = [sum(amounts[: i + 1]) for i in range(len(amounts))]
        assert after == running and after[-1] == balance[tenant], tenant


def _assert_work_orders(pages: dict, site: Path, pulled: Path, txs: list[dict]) -> None:
    def total(wo: str, kind: str) -> int:
        return sum(
            int(t["amount_credits"]) for t in txs if (t["work_order_id"], t["type"]) == (wo, kind)
        )

    latest = {r["work_order_id"]: r for r in _csv(pulled / "workorders_log.csv")}
    for wo, row in latest.items():
        page = _page(pages, site / "workorders" / f"{wo}.html")
        shown = (page["woStatus"], _num(page["woSpend"]), _num(page["woRefund"]))
        assert shown == (row["status"], -total(wo, "SPEND"), total(wo, "REFUND")), wo
    a4 = (site / "workorders" / "A4Strct1.html").read_text(encoding="utf-8")
    assert "SCORING_SERVICE_UNAVAILABLE" in a4 and "scoring service unavailable" in a4


def _assert_digests(pages: dict, site: Path, pulled: Path, pins: dict[str, str]) -> None:
    """Per module the pin and the digests that ran (runs off the pin flagged), per run too."""
    runs = _csv(pulled / "module_runs_log.csv")
    page = _page(pages, site / "modules.html")
    assert {m: d for m, d in page["pinned"] if d} == {m: d for m, d in pins.items() if d}
    ran: dict[str, Counter[str]] = defaultdict(Counter)
    for r in runs:
        if r["module_digest"]:
            ran[r["module_id"]][r["module_digest"]] += 1
    shown = {m: {d: n for d, n, _ in listed} for m, listed in page["ranDigests"] if listed}
    assert shown == {m: dict(c) for m, c in ran.items()}
    for m, listed in page["ranDigests"]:
        assert all(flag == bool(pins.get(m) and d != pins[m]) for d, _, flag in listed), m
    off = {m: _num(n) for m, n in page["offPinRuns"]}
    assert off == {m: sum(n for d, n in ran[m].items() if d != pins.get(m, d)) for m in off}
    assert {m for m, n in off.items() if n} == {"002"}  # the one re-pinned after it ran
    for wo in {r["work_order_id"] for r in runs}:
        listed = _page(pages, site / "workorders" / f"{wo}.html")["runDigests"]
        expected = [(r["module_id"], r["module_digest"]) for r in runs if r["work_order_id"] == wo]
        assert sorted((m, d) for m, d, _ in listed) == sorted(expected), wo
        assert all(flag == bool(d and d != pins.get(m, d)) for m, d, flag in listed), wo


FOCUSED = """(() => {
  const e = document.activeElement, s = getComputedStyle(e);
  return {scroll: e.classList.contains('scroll'), visible: e.matches(':focus-visible'),
          outline: s.outlineStyle, width: s.outlineWidth, label: e.getAttribute('aria-label'),
          wider: e.scrollWidth > e.clientWidth, left: e.scrollLeft};
})()"""


def _assert_wide_table_scrolls_with_the_keyboard(browser: Chromium, page: Path) -> None:
    """On a narrow screen, Tab reaches the wide table's region, shows focus, and arrows scroll it."""
    browser.viewport(420, 900)
    browser.visit(page.as_uri())
    for _ in range(60):
        browser.press("Tab")
        focused = browser.evaluate(FOCUSED)
        if focused["scroll"]:
            break
    assert focused["scroll"] and focused["label"], focused
    assert focused["visible"] and focused["outline"] == "solid" and focused["width"] == "3px"
    assert focused["wider"] and focused["left"] == 0, focused
    browser.press("ArrowRight")
    for _ in range(50):  # scrolling may be animated
        if browser.evaluate("document.activeElement.scrollLeft") > 0:
            break
        time.sleep(0.05)
    assert browser.evaluate("document.activeElement.scrollLeft") > 0


def test_console__demo_site_in_headless_chromium(cli, tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found (install Debian's `chromium`) to open the console in")
    demo = tmp_path / "demo"
    r = cli("demo", "--dir", str(demo), "--json", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    pulled = tmp_path / "pulled"
    r = cli("state", "pull", "--billing-state-dir", str(pulled), cwd=demo)
    assert r.returncode == 0, r.stderr
    # module 002 edited and re-pinned after its runs: they ran a digest that is not the pin
    ids = demo / "maintenance-state" / "ids" / "module_registry.csv"
    pins = {r["module_id"]: r["digest"] for r in _csv(ids)}
    pins["002"] = hashlib.sha256(b"002 as edited since").hexdigest()
    ids.write_text(
        "module_id,category_id,name,status,digest\n"
        + "".join(
            f"{r['module_id']},{r['category_id']},{r['name']},{r['status']},{pins[r['module_id']]}\n"
            for r in _csv(ids)
        )
    )
    site = tmp_path / "site"
    r = cli("console", "build", "--out", str(site), "--page-size", "4", cwd=demo)
    assert r.returncode == 0, r.stdout + r.stderr

    with Chromium(exe, tmp_path / "profile") as browser:
        pages = _crawl(browser, site)
        _assert_wide_table_scrolls_with_the_keyboard(browser, site / "modules.html")

    _assert_clean(pages, site)
    assert (site / "workorders-3.html").exists() and (site / "tenants" / "Ag3ncy-3.html").exists()
    # the figures, recomputed from the exported tables
    txs = _csv(pulled / "transactions.csv")
    balance = Counter[str]()
    for t in txs:
        balance[t["tenant_id"]] += int(t["amount_credits"])
    assert dict(balance) == {
        r["tenant_id"]: int(r["balance_credits"]) for r in _csv(pulled / "tenants_credits.csv")
    }
    _assert_overview(_page(pages, site / "index.html"), pulled, balance)
    _assert_ledgers(pages, site, txs, balance)
    _assert_work_orders(pages, site, pulled, txs)
    _assert_digests(pages, site, pulled, pins)


# ---------------------------------------------------------------- units


def test_console__refuses_a_foreign_non_empty_directory(cli, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    repo = tmp_path / "repo"
    assert cli("init", str(repo), cwd=tmp_path).returncode == 0
    r = cli("console", "build", "--out", str(out), cwd=repo)
    assert r.returncode != 0
    assert (out / "notes.txt").read_text() == "keep me"
    assert len(r.stderr.strip().splitlines()) == 1 and "--out" in r.stderr


def test_console__paginate_covers_every_row_once():
    rows = list(range(23))
    pages = list(paginate(rows, 10))
    assert [p.number for p in pages] == [1, 2, 3] and {p.count for p in pages} == {3}
    assert [x for p in pages for x in p.rows] == rows
    assert [p.first for p in pages] == [1, 11, 21]
    assert [(p.number, p.count, list(p.rows)) for p in paginate([], 10)] == [(1, 1, [])]


def test_console__fold_ledger_sums_by_month_and_keeps_the_recent_window():
    cells = [
        ("t1", "A", "", "TOPUP", "100", "100", "2026-01-05T00:00:00Z", "r1", "AD", ""),
        ("t2", "A", "W1", "SPEND", "-30", "70", "2026-01-06T00:00:00Z", "", "", ""),
        ("t3", "A", "W1", "REFUND", "10", "80", "2026-02-01T00:00:00Z", "", "", ""),
        ("t4", "B", "", "TOPUP", "5", "5", "2026-02-02T00:00:00Z", "r2", "AD", ""),
    ]
    fold = fold_ledger(cells, window=2)
    assert fold.total == 4
    assert [t.transaction_id for t in fold.recent] == ["t3", "t4"]
    jan, feb = fold.months["2026-01"], fold.months["2026-02"]
    assert (jan.topup, jan.spent, jan.refunded) == (100, 30, 0)
    assert (feb.topup, feb.spent, feb.refunded) == (5, 0, 10)
    a = fold.tenants["A"]
    assert (a.topup, a.spent, a.refunded, a.transactions) == (100, 30, 10, 3)


def test_console__records_follow_the_columns_read():
    from workmill.console import _model as m

    assert m.LogRow._fields == m.LOG_COLUMNS and m.RunRow._fields == m.RUN_COLUMNS
    renamed = {"amount_credits": "amount"}
    assert m.Tx._fields == tuple(renamed.get(c, c) for c in m.TX_COLUMNS)


def test_console__a_chunk_written_before_a_column_was_added_reads_it_empty():
    cols = ("a", "module_digest")
    old = frozenset({"module_digest"})
    assert _chunk_rows("a,b\nx,y\n", cols, "w", old) == [("x", "")]
    assert _chunk_rows('a,b\n"x,1",y\n', cols, "w", old) == [("x,1", "")]  # the csv path
    assert _chunk_rows("a,module_digest\nx,d\n", cols, "w", old) == [("x", "d")]
    with pytest.raises(StateError, match="missing column"):
        _chunk_rows("a,b\nx,y\n", cols, "w")


def test_console__latest_log_row_wins_and_orders_by_last_write():
    rows = [
        ("W1", "A", "RUNNING", "STRICT", "", "10", "", "t", ""),
        ("W2", "A", "REJECTED", "STRICT", "001000001", "", "", "t", "t"),
        ("W1", "A", "FAILED", "STRICT", "X", "10", "10", "t", "t"),
    ]
    log = latest_log_rows(rows)
    assert list(log) == ["W2", "W1"] and log["W1"].status == "FAILED"


def test_console__fold_runs_rates_exclude_skipped_runs_and_non_lookups():
    def run(wo: str, status: str, reuse: str, hit: str, ms: str, reason: str = "", d="") -> tuple:
        return ("r", wo, "T", "001", "1.0", status, reason, reuse, hit, "false", "", "", ms, d)

    fold = fold_runs(
        [
            run("W1", "COMPLETED", "cache", "true", "10", d="aa"),
            run("W1", "FAILED", "new", "false", "30", "X1", d="bb"),
            run("W2", "SKIPPED", "new", "false", "0", "X2"),
            run("W2", "COMPLETED", "release", "false", "20"),
        ],
        keep={"W2"},
    )
    s = fold.modules["001"]
    assert (s.runs, s.failed, s.skipped, fold.total) == (4, 1, 1, 4)
    assert s.digests == {"aa": 1, "bb": 1}  # runs that reused an output record no digest
    assert (s.off_pin("aa"), s.off_pin("cc"), s.off_pin("")) == (1, 2, 0)
    assert s.failure_rate == 1 / 3 and s.median_ms == 20
    assert (s.cache_hits, s.cache_lookups) == (1, 2)
    assert fold.reasons == {"X1": 1, "X2": 1}
    assert [r.status for r in fold.by_work_order["W2"]] == ["SKIPPED", "COMPLETED"]
    assert "W1" not in fold.by_work_order


def test_console__charts_leave_no_import_hook_behind():
    """pygal's map-plugin finder would turn every later failed import into an ImportWarning."""
    import importlib
    import warnings

    from workmill.console._charts import horizontal_bars

    horizontal_bars("t", [("a", 1)])
    assert not [f for f in sys.meta_path if type(f).__module__ == "pygal"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("workmill_no_such_module_here")


def test_console__count_axes_have_whole_number_ticks():
    from workmill.console._charts import integer_ticks

    assert integer_ticks(2) == [0, 1, 2]
    assert integer_ticks(0) == [0, 1]
    ticks = integer_ticks(1234)
    assert ticks[0] == 0 and ticks[-1] >= 1234 and len(ticks) <= 11
    assert len({b - a for a, b in itertools.pairwise(ticks)}) == 1


def test_console__gantt_bars_span_start_to_last_finish():
    def run(mid: str, start: str, ms: str) -> RunRow:
        return RunRow(
            "r" + mid,
            "W",
            "T",
            mid,
            "1",
            "COMPLETED",
            "",
            "new",
            "false",
            "false",
            start,
            "",
            ms,
            "",
        )

    bars, span = gantt_bars(
        [
            run("001", "2026-01-01T00:00:00Z", "1000"),
            run("002", "2026-01-01T00:00:01Z", "3000"),
            run("003", "", "5"),
        ],
        {"001": "Ingest"},
    )
    assert span == 4000 and len(bars) == 2
    assert (bars[0].x, bars[0].width, bars[0].label) == (0.0, 0.25, "001 Ingest")
    assert (bars[1].x, bars[1].width) == (0.25, 0.75)


_cell = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_cell, _cell, _cell), max_size=6))
def test_console__fast_reader_reads_what_the_strict_parser_reads(rows):
    columns = ("a", "b", "c")
    data = render_table(columns, [dict(zip(columns, r, strict=True)) for r in rows])
    _, strict = parse_table(data, "t.csv", columns)
    fast = list(_chunk_rows(data.decode("utf-8"), ("c", "a"), "t.csv"))
    assert fast == [(r["c"], r["a"]) for r in strict]


def test_console__pages_workflow_is_off_by_default_and_warns_it_can_be_public():
    from workmill.github import workflow_templates
    from workmill.yamlio import parse_yaml

    text = workflow_templates()["console-pages.yml"]
    doc = parse_yaml(text, "console-pages.yml").data
    assert doc.get("on", doc.get("true")) == {"workflow_dispatch": None}
    assert "can be PUBLIC even when this repository is private" in text
    assert doc["permissions"] == {"contents": "read"}
    assert doc["jobs"]["build"].get("permissions") is None
    assert doc["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    steps = doc["jobs"]["build"]["steps"]
    assert any(s.get("run") == "workmill console build --out site" for s in steps)


def test_console__without_billing_state_says_how_to_create_it(cli, tmp_path):
    repo = tmp_path / "repo"
    assert cli("init", str(repo), cwd=tmp_path).returncode == 0
    r = cli("console", "build", "--out", str(tmp_path / "site"), cwd=repo)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "state bootstrap" in lines[0], r.stderr
    assert not (tmp_path / "site").exists()


def _data(**overrides):
    from workmill.console._collect import ConsoleData, Options
    from workmill.console._model import LedgerFold, RunFold

    fields = {
        "platform": "p",
        "revision": 1,
        "generated_at": "2026-01-01T00:00:00Z",
        "now": "2026-01-01T00:00:00Z",
        "options": Options(),
        "tenant_names": {},
        "tenant_status": {},
        "balances": {},
        "ledger": LedgerFold(),
        "log": {},
        "runs": RunFold(),
        "reasons": {},
        "modules": {},
        "cache_rows": [],
        "redemptions": [],
    }
    return ConsoleData(**{**fields, **overrides})


def test_console__hostile_text_is_escaped_everywhere(tmp_path):
    from workmill.console import write_site
    from workmill.console._collect import LogExcerpt, ModuleInfo, WorkOrderDetail
    from workmill.console._model import LogRow, RunRow, fold_ledger, fold_runs

    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    tx = ("t1", "Ev1l01", "W0rk0001", "TOPUP", "5", "5", "2026-01-01T00:00:00Z", evil, "AD", evil)
    run = ("r1", "W0rk0001", "Ev1l01", "001", "1", "FAILED", "001000001", "new", "false",
           "false", "2026-01-01T00:00:00Z", "", "12", evil)  # fmt: skip
    log = LogRow("W0rk0001", "Ev1l01", "FAILED", "STRICT", "001000001", "5", "", "", "")
    data = _data(
        tenant_names={"Ev1l01": evil},
        balances={"Ev1l01": 5},
        ledger=fold_ledger([tx], 10),
        log={"W0rk0001": log},
        runs=fold_runs([run], {"W0rk0001"}),
        reasons={"001000001": evil},
        modules={"001": ModuleInfo("001", evil, "core", evil, evil, "active")},
        redemptions=[dict.fromkeys(COLUMNS[PROMOTION_REDEMPTIONS], evil) | {"tenant_id": "Ev1l01"}],
        cache_rows=[dict.fromkeys(COLUMNS[CACHE_INDEX], evil) | {"size_bytes": "1"}],
    )
    data.details["W0rk0001"] = WorkOrderDetail(
        log, [RunRow._make(run)], [], [], [], [], [LogExcerpt("001", "runner.log", evil)]
    )
    write_site(data, tmp_path / "site")
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) >= 7
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html and "<img" not in html, page
    assert "&lt;script&gt;" in (tmp_path / "site" / "tenants" / "Ev1l01-1.html").read_text()


def test_console__github_store_links_artifacts_to_release_downloads(tmp_path, monkeypatch):
    from workmill.console._collect import download_base
    from workmill.repo import PlatformRepo

    root = tmp_path / "p"
    root.mkdir()
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    cases = [
        ("store: local\n", ""),
        (
            "store: github\ngithub:\n  repository: acme/platform\n",
            "https://github.com/acme/platform",
        ),
        (
            "store: github\ngithub:\n  repository: acme/platform\n"
            "  api_url: https://ghe.example.com/api/v3\n",
            "https://ghe.example.com/acme/platform",
        ),
    ]
    for config, want in cases:
        (root / "workmill.yml").write_text(config)
        assert download_base(PlatformRepo.open(root)) == want, config


def test_console__a_second_process_folds_the_same_ledger(tmp_path):
    """Big ledgers are folded in a spawned process; the figures must not change."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from platform_factory import T1, build_repo
    from workmill.console import Options, collect
    from workmill.repo import PlatformRepo

    root = build_repo(tmp_path / "repo")
    repo = PlatformRepo.open(root)
    store = open_billing_store(repo)
    store.bootstrap(repo.templates_dir)
    for i in range(3):
        store.commit_with_retry(lambda s, i=i: s.topup(T1, "AD", 10 + i, f"ref-{i}"))
    inline = collect(repo, Options(parallel_from=10**9, recent_rows=2))
    spawned = collect(repo, Options(parallel_from=0, recent_rows=2))
    assert spawned.ledger == inline.ledger and inline.ledger.total == 3
    assert [t.amount for t in spawned.ledger.recent] == [11, 12]
