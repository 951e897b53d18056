"""Where a commit's new rows go inside one partition group (pure rules, no I/O).

A group (a month of an append-only table, a bucket of a derived index) is a
sequence of chunks. GitHub cannot append to an asset, so adding rows to a chunk
means uploading it again whole; what a commit costs is the bytes it rewrites.
Rewriting a chunk of up to ``CHUNK_BYTES`` per touched group made commits cost
~1 MiB per table once history filled its chunks, while many tiny chunks would
make the manifest (one entry per chunk) grow with every commit.

So a group ends in a small *tail* chunk: a commit rewrites only the tail
(``extend``, < ``TAIL_BYTES``); when the tail is full it is compacted into the
chunk before it (``merge``, ≤ ``CHUNK_BYTES``, about once per ``TAIL_BYTES`` of
appended rows) or, when that chunk is full, keeps the rows and stops being a
tail; the next commit then starts a new tail (``new``). A group therefore
holds full chunks, one growing chunk and one tail: one manifest entry more
than 1 MiB chunks alone, and a chunk written under the old rule (any size up
to ``CHUNK_BYTES``) is just a chunk that is not a tail.

32 KiB balances the two costs: simulated over 20,000 commits of 300 B–1 KB
per group, a commit uploads 20–31 KiB on average (median 16 KiB) against
~500 KiB under the 1 MiB rule; 16 KiB tails merge too often, 64 KiB tails are
rewritten whole too often.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

CHUNK_BYTES = 1 << 20  # a compacted chunk never grows past this
TAIL_BYTES = 32 << 10  # the chunk a routine commit rewrites stays below this


class Placement(Enum):
    EXTEND = "extend"  # rewrite the last chunk (a tail) with the new rows appended
    MERGE = "merge"  # rewrite the chunk before the tail as it + tail + new rows; drop the tail
    NEW = "new"  # start new chunk(s) after the last one


def is_tail(size: int) -> bool:
    """Whether a group's last chunk of ``size`` bytes is a tail (cheap to rewrite)."""
    return size < TAIL_BYTES


def place(sizes: Sequence[int], new_bytes: int) -> Placement:
    """Placement of ``new_bytes`` (rows without header) in a group whose chunks have ``sizes``.

    ``sizes`` are the stored byte sizes, in chunk order. A tail that fills up is
    merged into the chunk before it; when that chunk is full (or there is none)
    the tail itself keeps the rows and stops being a tail, so no small chunk is
    ever left behind a full one. Only an append that alone passes
    ``CHUNK_BYTES`` starts new chunks behind a tail.
    """
    if not sizes or not is_tail(sizes[-1]):
        return Placement.NEW
    last = sizes[-1]
    if is_tail(last + new_bytes):
        return Placement.EXTEND
    if len(sizes) > 1 and sizes[-2] + last + new_bytes <= CHUNK_BYTES:
        return Placement.MERGE
    if last + new_bytes <= CHUNK_BYTES:
        return Placement.EXTEND
    return Placement.NEW


def split_sizes(row_sizes: Sequence[int], header_bytes: int, limit: int | None = None) -> list[int]:
    """How many consecutive rows go into each new chunk so none passes ``limit``
    (default ``CHUNK_BYTES``; a lone row bigger than it gets a chunk of its own)."""
    limit = CHUNK_BYTES if limit is None else limit
    out: list[int] = []
    size, n = header_bytes, 0
    for b in row_sizes:
        if n and size + b > limit:
            out.append(n)
            size, n = header_bytes, 0
        size += b
        n += 1
    if n or not out:
        out.append(n)
    return out
