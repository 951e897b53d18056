"""Reading the big append-only tables fast enough for a console over 10^6 transactions.

``BillingState.stored_rows`` builds one dict per row with the strict CSV
reader; that is the right tool for the ledger's own checks but costs ~8 s for a
million transactions plus their work-order and module-run logs. The console
only needs a few columns, so it reads each partition's raw bytes through the
state's public ``raw_asset`` and picks columns by position: a chunk without a
quote character is split on newlines and commas (exactly what the CSV reader
would return, since the writer quotes every value holding a comma, quote or
line break), any other chunk goes through the ``csv`` module. The collector is
paused while the rows are built: millions of short-lived tuples otherwise set
off a full collection every few thousand rows (docs/architecture.md
"Operator console").
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import itertools
from collections.abc import Iterator, Sequence
from operator import itemgetter

from workmill import billing_tables as bt
from workmill.errors import StateError
from workmill.state import BillingState

Cells = tuple[str, ...]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (rows are acyclic tuples)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _picker(header: Sequence[str], columns: Sequence[str], where: str, optional=frozenset()):
    """Cells of ``columns`` by position; an ``optional`` column missing here reads as ""."""
    missing = [c for c in columns if c not in header]
    if [c for c in missing if c not in optional]:
        raise StateError(f"{where}: missing column(s) {', '.join(missing)}")
    idx = [list(header).index(c) if c in header else -1 for c in columns]
    if missing:  # a chunk written before a column was added (rare: the slow path is fine)
        return lambda cells: tuple(cells[i] if i >= 0 else "" for i in idx)
    if len(idx) == 1:
        one = idx[0]
        return lambda cells: (cells[one],)
    return itemgetter(*idx)


def _chunk_rows(text: str, columns: Sequence[str], where: str, optional=frozenset()) -> list[Cells]:
    if '"' in text or "\r" in text:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = [h.strip() for h in next(reader, [])]
            pick = _picker(header, columns, where, optional)
            out = []
            for cells in reader:
                if cells and len(cells) == len(header):
                    out.append(pick(cells))
                elif cells and cells != [""]:
                    raise StateError(f"{where}: line {reader.line_num} is ragged")
        except csv.Error as exc:
            raise StateError(f"{where}: invalid CSV: {exc}") from exc
        return out
    lines = text.split("\n")
    header = [h.strip() for h in lines[0].split(",")]
    pick = _picker(header, columns, where, optional)
    width = len(header)
    rows = [line.split(",") for line in lines[1:] if line]
    if rows and set(map(len, rows)) != {width}:  # the rare error path may be slow
        bad = next(i for i, cells in enumerate(rows) if len(cells) != width)
        raise StateError(f"{where}: row {bad + 1} has {len(rows[bad])} cells, header has {width}")
    return list(map(pick, rows))


def table_cells(state: BillingState, table: str, columns: Sequence[str]) -> Iterator[Cells]:
    """``columns`` of every stored row of ``table``, in stored (commit) order."""
    return itertools.chain.from_iterable(_chunks(state, table, columns))


def _chunks(state: BillingState, table: str, columns: Sequence[str]) -> Iterator[list[Cells]]:
    ref = state.manifest.tables.get(table)
    if ref is None:
        return
    if not ref.partitioned:
        yield [tuple(row.get(c, "") for c in columns) for row in state.stored_rows(table)]
        return
    for p in sorted(ref.partitions, key=lambda p: p.key):
        where = f"billing state {table} ({p.asset})"
        try:
            text = state.raw_asset(p.asset).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{where}: not UTF-8 (byte {exc.start})") from exc
        yield _chunk_rows(text, columns, where, frozenset(bt.ADDED_COLUMNS.get(table, ())))
