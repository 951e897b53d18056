"""Wall time of one top-up and one small commit against 10^3, 10^5 and 10^6 past transactions.

History is written straight into partitions (as the store would have after
years of commits: 24 months, the current one included), so generating a
million rows takes seconds. Each figure is the median of several runs of the
library call a ``workmill topup`` makes (process start-up excluded).

    python bench/ledger_scale.py [--sizes 1000,100000,1000000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("WORKMILL_NOW", "2026-11-23T12:00:00Z")

from workmill import billing_tables as bt
from workmill.backends import open_billing_store
from workmill.fsio import sha256_bytes
from workmill.repo import PlatformRepo
from workmill.state import CHUNK_BYTES, TAIL_BYTES, TOPUP_REFERENCES, BillingStore
from workmill.state.billing_state import TOPUP_REFERENCE_COLUMNS, reference_bucket
from workmill.state.manifest import Manifest, PartitionRef, TableRef, manifest_asset
from workmill.state.workorder_index import (
    PROMO_USAGE,
    PROMO_USAGE_COLUMNS,
    WORKORDER_INDEX,
    WORKORDER_INDEX_COLUMNS,
)
from workmill.tables import render_table

MONTHS = [f"{2024 + (10 + i) // 12}-{(10 + i) % 12 + 1:02d}" for i in range(25)][1:]  # ..2026-11
TENANTS = [f"T{i:05d}" for i in range(1000)]


def _chunks(header: tuple[str, ...], lines: list[str]) -> list[tuple[bytes, int]]:
    """A group's lines as the store leaves them: full chunks, then a half-full tail.

    A tail is rewritten by every commit and compacted once full, so half of
    ``TAIL_BYTES`` is its average fill; a fresh, nearly empty tail would flatter the figures.
    """
    head = (",".join(header) + "\n").encode()
    tail_at, size = len(lines), 0
    while tail_at and size + len(lines[tail_at - 1].encode()) <= TAIL_BYTES // 2:
        tail_at -= 1
        size += len(lines[tail_at].encode())
    out, buf, size, n = [], [head], len(head), 0
    for i, line in enumerate(lines):
        b = line.encode()
        if n and (size + len(b) > CHUNK_BYTES or i == tail_at):
            out.append((b"".join(buf), n))
            buf, size, n = [head], len(head), 0
        buf.append(b)
        size += len(b)
        n += 1
    out.append((b"".join(buf), n))
    return out


def migrate(store: BillingStore) -> None:
    """Move the written history into the segment layout the store keeps
    (docs/architecture.md "Billing-state release layout"), then collect the old
    copies, as if the migration were long past (no kept revision names them)."""
    store.compact()
    keep, store.keep_revisions = store.keep_revisions, 1
    try:
        store.gc()
    finally:
        store.keep_revisions = keep


def build(root: Path, n: int) -> BillingStore:
    """A platform repo whose store holds ``n`` historical TOPUP transactions (and their items)."""
    (root / "workmill.yml").write_text("store: local\n")
    store = open_billing_store(PlatformRepo.open(root))
    store.releases.create_tag(store.tag)
    tag = store.tag
    tables: dict[str, TableRef] = {}

    def put(table: str, key: str, data: bytes, rows: int) -> PartitionRef:
        asset = (
            f"t-r000000001-bench0000-{table.removesuffix('.csv')}{'--' + key if key else ''}.csv"
        )
        store.releases.create_asset(tag, asset, data)
        return PartitionRef(key, asset, sha256_bytes(data), rows, len(data))

    tx_lines: dict[str, list[str]] = {m: [] for m in MONTHS}
    it_lines: dict[str, list[str]] = {m: [] for m in MONTHS}
    ref_lines: dict[str, list[str]] = {}
    balances = dict.fromkeys(TENANTS, 0)
    for i in range(n):
        month = MONTHS[i * len(MONTHS) // n]
        tenant = TENANTS[i % len(TENANTS)]
        balances[tenant] += 10
        tx_id, it_id, ref = f"h{i:07d}", f"i{i:07d}", f"hist-{i}"
        at = f"{month}-01T00:00:00Z"
        tx_lines[month].append(
            f"{tx_id},{tenant},,TOPUP,10,{balances[tenant]},{at},{ref},,AD,history\n"
        )
        it_lines[month].append(f"{it_id},{tx_id},1,TOPUP,,,,,10,{ref}\n")
        bucket = "b" + reference_bucket(tenant, ref)
        ref_lines.setdefault(bucket, []).append(
            f"{tenant},{ref},{tx_id},10,{balances[tenant]},AD,,{at}\n"
        )
    for table, per_group, cols in (
        (bt.TRANSACTIONS, tx_lines, bt.COLUMNS[bt.TRANSACTIONS]),
        (bt.TRANSACTION_ITEMS, it_lines, bt.COLUMNS[bt.TRANSACTION_ITEMS]),
        (TOPUP_REFERENCES, ref_lines, TOPUP_REFERENCE_COLUMNS),
    ):
        parts = []
        for group, lines in sorted(per_group.items()):
            for seq, (data, rows) in enumerate(_chunks(cols, lines)):
                parts.append(put(table, f"{group}.{seq:04d}", data, rows))
        tables[table] = TableRef(True, tuple(parts), cols)
    small = {
        bt.TENANTS_CREDITS: [
            {"tenant_id": t, "balance_credits": b, "updated_at": "2026-11-01T00:00:00Z"}
            for t, b in balances.items()
        ],
        bt.TOPUP_METHODS: [{"topup_method_id": "AD", "name": "admin", "active": "true"}],
    }
    # derived tables of a store with no work orders yet: empty index, no promo uses
    tables[WORKORDER_INDEX] = TableRef(True, (), WORKORDER_INDEX_COLUMNS)
    data = render_table(PROMO_USAGE_COLUMNS, [])
    tables[PROMO_USAGE] = TableRef(False, (put(PROMO_USAGE, "", data, 0),), PROMO_USAGE_COLUMNS)
    for table in bt.COLUMNS:
        if table in bt.APPEND_ONLY and table in tables:
            continue
        if table in bt.APPEND_ONLY:
            tables[table] = TableRef(True, (), bt.COLUMNS[table])
            continue
        data = render_table(bt.COLUMNS[table], small.get(table, []))
        tables[table] = TableRef(
            False, (put(table, "", data, len(small.get(table, []))),), bt.COLUMNS[table]
        )
    m = Manifest(1, None, "2026-11-01T00:00:00Z", tables)
    store.releases.create_asset(tag, manifest_asset(1), m.to_json())
    migrate(store)
    return store


def measure(store: BillingStore, runs: int) -> tuple[float, float]:
    tops, commits = [], []
    for i in range(runs):
        t0 = time.perf_counter()
        out = store.commit_with_retry(lambda s, i=i: s.topup("T00001", "AD", 5, f"bench-{i}"))
        tops.append(time.perf_counter() - t0)
        assert out.created
        rows = [
            {
                "module_run_id": f"R{i:02d}{j:05d}",
                "work_order_id": "Wo000001",
                "tenant_id": "T00001",
                "module_id": "001",
                "status": "COMPLETED",
                "started_at": "2026-11-23T12:00:00Z",
            }
            for j in range(10)
        ]
        t0 = time.perf_counter()
        store.commit_with_retry(lambda s, rows=rows: s.append(bt.MODULE_RUNS_LOG, rows))
        commits.append(time.perf_counter() - t0)
    return statistics.median(tops), statistics.median(commits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, tuple[float, float]] = {}
    print(f"{'history':>10} {'build s':>8} {'top-up ms':>10} {'commit ms':>10}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            store = build(Path(tmp), n)
            built = time.perf_counter() - t0
            results[n] = measure(store, args.runs)
            print(
                f"{n:>10} {built:>8.1f} {results[n][0] * 1000:>10.1f} {results[n][1] * 1000:>10.1f}",
                flush=True,
            )
    lo, hi = min(sizes), max(sizes)
    print(
        f"ratio {hi}/{lo}: top-up {results[hi][0] / results[lo][0]:.2f}, commit {results[hi][1] / results[lo][1]:.2f}"
    )


if __name__ == "__main__":
    main()
