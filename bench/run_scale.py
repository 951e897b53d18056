"""Wall time of plan + settle of 3 small work orders against 10^3, 10^5 and 10^6 past transactions.

The history (per 10 transactions: 4 top-ups and 3 work orders with SPEND and
REFUND, their items, workorders_log / module_runs_log rows, top-up references
and the per-work-order index) is written straight into partitions, spread over
24 months, so building a million transactions takes seconds. Each round
writes 3 new work orders of trivial bash modules (tests/platform_factory.py)
and runs the library phases ``plan`` → ``execute`` → ``settle``; plan and
settle are timed (the modules' own run is not), median of ``--runs`` rounds.
The built history is verified (``ledger verify``) at every size, timed.

    python bench/run_scale.py [--sizes 1000,100000,1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WORKMILL_NOW", "2026-11-23T12:00:00Z")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from ledger_scale import MONTHS, _chunks, migrate  # noqa: E402

from platform_factory import T1, build_repo, work_order  # noqa: E402
from workmill import billing_tables as bt  # noqa: E402
from workmill.backends import open_billing_store  # noqa: E402
from workmill.fsio import sha256_bytes  # noqa: E402
from workmill.orchestrator import RunContext, RunOptions, execute, plan, settle  # noqa: E402
from workmill.repo import PlatformRepo  # noqa: E402
from workmill.state import PROMO_USAGE, TOPUP_REFERENCES, WORKORDER_INDEX, BillingStore  # noqa: E402
from workmill.state import workorder_index as wi  # noqa: E402
from workmill.state.billing_state import TOPUP_REFERENCE_COLUMNS, reference_bucket  # noqa: E402
from workmill.state.manifest import Manifest, PartitionRef, TableRef, manifest_asset  # noqa: E402
from workmill.tables import parse_table, render_table  # noqa: E402

HIST_TENANTS = [f"H{i:05d}" for i in range(1000)]
WIDTH = len(wi.VALUE_COLUMNS)
DIGEST = "0" * 64  # the module folder digest a history run recorded (module_runs_log)


def _index_line(wo: str, source: str, line: str) -> str:
    """An index row for a plain source line (bench values never need quoting or escaping)."""
    values = line.rstrip("\n").split(",")
    return f"{wo},{source},{','.join(values + [''] * (WIDTH - len(values)))}\n"


def build_history(root: Path, n: int) -> BillingStore:  # noqa: C901, PLR0915 - one generator loop
    """Billing state with ``n`` historical transactions (≈0.3·n work orders)."""
    repo = PlatformRepo.open(root)
    store = open_billing_store(repo)
    store.releases.create_tag(store.tag)
    tag = store.tag

    def put(table: str, key: str, data: bytes, rows: int) -> PartitionRef:
        stem = table.removesuffix(".csv")
        asset = f"t-r000000001-bench0000-{stem}{'--' + key if key else ''}.csv"
        store.releases.create_asset(tag, asset, data)
        return PartitionRef(key, asset, sha256_bytes(data), rows, len(data))

    by_month = {
        t: {m: [] for m in MONTHS}
        for t in (bt.TRANSACTIONS, bt.TRANSACTION_ITEMS, bt.WORKORDERS_LOG, bt.MODULE_RUNS_LOG)
    }
    buckets: dict[str, dict[str, list[str]]] = {TOPUP_REFERENCES: {}, WORKORDER_INDEX: {}}
    balances = dict.fromkeys(HIST_TENANTS, 0)
    tx_n = 0
    for block in range(max(1, n // 10)):
        month = MONTHS[block * len(MONTHS) // max(1, n // 10)]
        at = f"{month}-01T00:00:00Z"
        tenant = HIST_TENANTS[block % len(HIST_TENANTS)]
        txs, items = by_month[bt.TRANSACTIONS][month], by_month[bt.TRANSACTION_ITEMS][month]
        for _ in range(4):
            tx, ref = f"x{tx_n:07d}", f"hist-{tx_n}"
            tx_n += 1
            balances[tenant] += 10
            txs.append(f"{tx},{tenant},,TOPUP,10,{balances[tenant]},{at},{ref},,AD,\n")
            items.append(f"i{tx[1:]},{tx},1,TOPUP,,,,,10,hist\n")
            line = f"{tenant},{ref},{tx},10,{balances[tenant]},AD,,{at}\n"
            buckets[TOPUP_REFERENCES].setdefault("b" + reference_bucket(tenant, ref), []).append(
                line
            )
        for j in range(3):
            wo = f"h{block * 3 + j:07d}"
            run = f"m{block * 3 + j:07d}"
            sp, rf = f"x{tx_n:07d}", f"x{tx_n + 1:07d}"
            tx_n += 2
            bal = balances[tenant]
            rows = {
                "tx": [
                    f"{sp},{tenant},{wo},SPEND,-10,{bal - 10},{at},,,,\n",
                    f"{rf},{tenant},{wo},REFUND,10,{bal},{at},,,,refund 10 = module 001 FAILED\n",
                ],
                "item": [f"i{sp[1:]},{sp},1,MODULE,001,GEN,,{run},10,\n"],
                "log": [
                    f"{wo},{tenant},RUNNING,STRICT,,{sp},,10,,{at},\n",
                    f"{wo},{tenant},FAILED,STRICT,X,{sp},{rf},10,10,{at},{at}\n",
                ],
            }
            txs.extend(rows["tx"])
            items.extend(rows["item"])
            items.append(f"i{rf[1:]},{rf},1,MODULE_REFUND,001,GEN,,{run},10,\n")
            by_month[bt.WORKORDERS_LOG][month].extend(rows["log"])
            by_month[bt.MODULE_RUNS_LOG][month].append(
                f"{run},{wo},{tenant},001,1.0.0,FAILED,X,new,false,false,{at},{at},5,,{DIGEST}\n"
            )
            index = buckets[WORKORDER_INDEX].setdefault(wi.bucket(wo), [])
            for source in ("log", "tx", "item"):
                index.extend(_index_line(wo, source, line) for line in rows[source])
    balances[T1] = 1_000_000  # the tenant of the measured work orders
    last = MONTHS[-1]
    by_month[bt.TRANSACTIONS][last].append(
        f"x9999999,{T1},,TOPUP,1000000,1000000,{last}-01T00:00:00Z,bench,,AD,\n"
    )
    by_month[bt.TRANSACTION_ITEMS][last].append("i9999999,x9999999,1,TOPUP,,,,,1000000,bench\n")
    buckets[TOPUP_REFERENCES].setdefault("b" + reference_bucket(T1, "bench"), []).append(
        f"{T1},bench,x9999999,1000000,1000000,AD,,{last}-01T00:00:00Z\n"
    )
    tables: dict[str, TableRef] = {}
    for table, groups in (*by_month.items(), *buckets.items()):
        cols = (
            TOPUP_REFERENCE_COLUMNS
            if table == TOPUP_REFERENCES
            else wi.WORKORDER_INDEX_COLUMNS
            if table == WORKORDER_INDEX
            else bt.COLUMNS[table]
        )
        parts = []
        for group, lines in sorted(groups.items()):
            if lines:
                for seq, (data, rows) in enumerate(_chunks(cols, lines)):
                    parts.append(put(table, f"{group}.{seq:04d}", data, rows))
        tables[table] = TableRef(True, tuple(parts), cols)
    tpl = repo.templates_dir
    small: dict[str, tuple[list[str], list[dict[str, str]]]] = {}
    for table in bt.COLUMNS:
        if table in bt.APPEND_ONLY:
            continue
        path = tpl / table
        small[table] = parse_table(path.read_bytes(), str(path), bt.COLUMNS[table])
    small[bt.TENANTS_CREDITS] = (
        list(bt.COLUMNS[bt.TENANTS_CREDITS]),
        [
            {"tenant_id": t, "balance_credits": str(b), "updated_at": "2026-11-01T00:00:00Z"}
            for t, b in sorted(balances.items())
        ],
    )
    small[PROMO_USAGE] = (list(wi.PROMO_USAGE_COLUMNS), [])
    for table, (header, rows) in small.items():
        data = render_table(header, rows)
        tables[table] = TableRef(False, (put(table, "", data, len(rows)),), tuple(header))
    for table in bt.APPEND_ONLY:
        tables.setdefault(table, TableRef(True, (), bt.COLUMNS[table]))
    m = Manifest(1, None, "2026-11-01T00:00:00Z", tables)
    store.releases.create_asset(tag, manifest_asset(1), m.to_json())
    migrate(store)
    return store


def compiled_repo(tmp: Path) -> Path:
    """tests/platform_factory.py's repo under ``tmp``, after `workmill maintenance`."""
    root = build_repo(tmp / "repo")
    subprocess.run(
        [sys.executable, "-m", "workmill", "maintenance"], cwd=root, check=True, capture_output=True
    )
    return root


def measure(root: Path, runs: int, first: int = 0) -> list[tuple[float, float, float]]:
    """(plan s, execute s, settle s) for each round of 3 new work orders."""
    out = []
    for r in range(first, first + runs):
        ids = [f"R{r:03d}W{j:03d}" for j in range(3)]
        work_order(root, T1, ids[0], [{"module_id": "001"}])
        work_order(root, T1, ids[1], [{"module_id": "001"}, {"module_id": "002"}])
        work_order(root, T1, ids[2], [{"module_id": "001", "purchase_release_artifacts": True}])
        ctx = RunContext(
            PlatformRepo.open(root), RunOptions(tenant_id=T1, runtime_dir=root / "runtime")
        )
        t0 = time.perf_counter()
        p = plan(ctx)
        t1 = time.perf_counter()
        try:
            outcomes = execute(ctx, p)
            t2 = time.perf_counter()
            settled = settle(ctx, p.work_orders, outcomes)
            t3 = time.perf_counter()
        finally:
            ctx.leases.release_all()
        assert sorted(s.work_order_id for s in settled) == ids, (p.decisions, settled)
        assert all(s.status == "COMPLETED" for s in settled), settled
        out.append((t1 - t0, t2 - t1, t3 - t2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, float] = {}
    verify_s: dict[int, float] = {}
    print(
        f"{'history':>10} {'wos':>8} {'build s':>8} {'plan ms':>9} {'settle ms':>10} "
        f"{'plan+settle ms':>15} {'(execute ms)':>13}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = compiled_repo(Path(tmp))
            t0 = time.perf_counter()
            store = build_history(root, n)
            built = time.perf_counter() - t0
            t0 = time.perf_counter()
            problems = store.verify()
            verify_s[n] = time.perf_counter() - t0
            assert problems == [], problems[:5]
            rounds = measure(root, args.runs)
            plan_ms = statistics.median(r[0] for r in rounds) * 1000
            settle_ms = statistics.median(r[2] for r in rounds) * 1000
            both = statistics.median(r[0] + r[2] for r in rounds) * 1000
            exec_ms = statistics.median(r[1] for r in rounds) * 1000
            results[n] = both
            print(
                f"{n:>10} {3 * (n // 10):>8} {built:>8.1f} {plan_ms:>9.1f} {settle_ms:>10.1f} "
                f"{both:>15.1f} {exec_ms:>13.1f}",
                flush=True,
            )
            assert store.verify() == []
    lo, hi = min(sizes), max(sizes)
    print(f"ratio {hi}/{lo}: plan+settle {results[hi] / results[lo]:.2f}")
    for n, s in verify_s.items():
        print(f"ledger verify of the history at {n:>8}: {s:.2f} s")


if __name__ == "__main__":
    main()
