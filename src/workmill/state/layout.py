"""Which release each stored chunk of the billing state lives in (pure rules, no I/O).

GitHub caps a release at 1,000 assets, and the billing state of a long history
holds more chunks than that (docs/architecture.md "Billing-state release
layout"). So a chunk's *home* is one of three kinds of release, named by a
suffix of the state's tag (``PartitionRef.release``):

- ``""`` — the head release itself: manifests, small tables and the open
  chunks of the month-partitioned tables (the ones commits rewrite);
- ``h0`` … ``hf`` — 16 *hot* segments: the open chunks of the hash-bucketed
  derived indexes (work-order index, top-up references), by the bucket's first
  hex digit. Their count depends on the bucket count, never on history;
- ``c0001``, ``c0002`` … — *cold* segments: sealed chunks (a chunk no commit
  can rewrite any more). Sealed chunks never become garbage, so a cold segment
  fills up to ``COLD_CAP`` and the next one opens: history adds segments, not
  assets to one release.

A chunk is sealed when its group is a month before the commit's month, or when
it is neither the last chunk of its group nor the one before a tail (the only
two ``chunking.place`` ever rewrites). Commits move chunks that became sealed
(a few per commit, ``MOVES_PER_COMMIT``): a commit looks at the groups it wrote to
and at closed months not moved yet, and every ``FULL_SCAN_EVERY``-th revision at every chunk (a closed month, a state
written before segments existed); ``BillingStore.compact`` moves them all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from workmill import billing_tables as bt
from workmill.state import chunking
from workmill.state.manifest import PartitionRef, TableRef

HEAD = ""
COLD_PREFIX = "c"
COLD_CAP = 900  # sealed chunks per cold segment (room left for a racing writer's leftovers)
MOVES_PER_COMMIT = 8  # a commit moves at most this many newly sealed chunks
FULL_SCAN_EVERY = 16  # revisions between looks at every chunk (a look costs ~ms per 1,000)
SEGMENT_SEP = "--"


def segment_tag(tag: str, release: str) -> str:
    """The release tag holding a chunk whose ``PartitionRef.release`` is ``release``."""
    return f"{tag}{SEGMENT_SEP}{release}" if release else tag


def hot_home(table: str, group: str) -> str:
    """Where an open chunk of ``group`` lives: month tables in the head, buckets in a hot segment."""
    if table in bt.APPEND_ONLY or not group.startswith("b") or len(group) < 2:
        return HEAD
    return "h" + group[1].lower()


def is_cold(release: str) -> bool:
    return release.startswith(COLD_PREFIX)


def sealed(table: str, group: str, sizes: Sequence[int], i: int, month: str) -> bool:
    """Whether chunk ``i`` of a group whose chunks have ``sizes`` can never be rewritten."""
    if table in bt.APPEND_ONLY and group < month:
        return True
    n = len(sizes)
    if i < n - 2:
        return True
    return i == n - 2 and not chunking.is_tail(sizes[-1])


class Move(NamedTuple):
    table: str
    part: PartitionRef
    release: str  # where it goes


def planned_moves(
    tables: Mapping[str, TableRef],
    month: str,
    partitioned: Iterable[str],
    limit: int | None = MOVES_PER_COMMIT,
    skip: frozenset[str] = frozenset(),
    groups: Iterable[tuple[str, str]] | None = None,
) -> list[Move]:
    """Chunks not in their home, oldest groups first (at most ``limit``; ``skip``: assets
    written by this very commit, which move next time; ``groups``: look at these
    (table, group) pairs only, not every chunk). Cold targets are picked here too."""
    wanted: list[tuple[str, PartitionRef, bool]] = []
    for name, group, chunks in _groups(tables, partitioned, groups):
        sizes = [c.bytes for c in chunks]
        for i, p in enumerate(chunks):
            if p.asset in skip:
                continue
            cold = sealed(name, group, sizes, i, month)
            if cold != is_cold(p.release) or (not cold and p.release != hot_home(name, group)):
                wanted.append((name, p, cold))
        if limit is not None and len(wanted) >= limit:
            break
    if limit is not None:
        wanted = wanted[:limit]
    fill = cold_fill(tables)
    out: list[Move] = []
    for name, p, cold in wanted:
        if cold:
            target = open_cold(fill)
            fill[target] = fill.get(target, 0) + 1
        else:
            target = hot_home(name, p.group)
        out.append(Move(name, p, target))
    return out


def _groups(
    tables: Mapping[str, TableRef],
    partitioned: Iterable[str],
    only: Iterable[tuple[str, str]] | None,
) -> Iterator[tuple[str, str, tuple[PartitionRef, ...]]]:
    if only is not None:
        for name, group in sorted(set(only)):
            ref = tables.get(name)
            if ref is not None and ref.partitioned:
                yield name, group, ref.group_partitions(group)
        return
    for name in partitioned:
        ref = tables.get(name)
        if ref is not None and ref.partitioned:
            for group, chunks in sorted(ref.groups().items()):
                yield name, group, chunks


def closed_months(tables: Mapping[str, TableRef], month: str) -> set[tuple[str, str]]:
    """(table, group) of months before ``month`` whose last chunk has not moved to a cold
    segment yet (chunks move in order, so the last one moves last)."""
    return {
        (name, group)
        for name in bt.APPEND_ONLY
        if (ref := tables.get(name)) is not None
        for group, chunks in ref.groups().items()
        if group < month and chunks and not is_cold(chunks[-1].release)
    }


def cold_fill(tables: Mapping[str, TableRef]) -> dict[str, int]:
    """Chunks per cold segment in a revision."""
    fill: dict[str, int] = {}
    for ref in tables.values():
        for p in ref.partitions:
            if is_cold(p.release):
                fill[p.release] = fill.get(p.release, 0) + 1
    return fill


def open_cold(fill: Mapping[str, int]) -> str:
    """The cold segment new sealed chunks go to: the newest while it has room, else the next."""
    if not fill:
        return cold_name(1)
    last = max(fill)
    if fill[last] < COLD_CAP:
        return last
    return cold_name(int(last[len(COLD_PREFIX) :]) + 1)


def cold_name(n: int) -> str:
    return f"{COLD_PREFIX}{n:04d}"
