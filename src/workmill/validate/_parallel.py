"""Fan independent per-file work out over the CPUs (big repos only).

Workers are forked so they inherit what the parent already loaded; where fork
is unavailable, or the input is small, the work runs in this process.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STATE: Any = None
_FN: Callable[[Any, Any], Any] | None = None


def _run_chunk(chunk: Sequence[Any]) -> Any:
    assert _FN is not None
    return _FN(_STATE, chunk)


def fork_map(
    fn: Callable[[Any, Sequence[T]], R], state: Any, items: Sequence[T], *, threshold: int
) -> list[R]:
    """``[fn(state, chunk) for chunk in chunks(items)]``, in parallel when worth it."""
    global _STATE, _FN
    workers = min(os.cpu_count() or 1, 8)
    if len(items) < threshold or workers < 2:
        return [fn(state, items)]
    import multiprocessing as mp  # here: a small repo (and every run) never loads it

    if "fork" not in mp.get_all_start_methods():
        return [fn(state, items)]
    size = max(100, len(items) // (workers * 4))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    _STATE, _FN = state, fn
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.map(_run_chunk, chunks)
    finally:
        _STATE, _FN = None, None


@contextmanager
def bulk_gc() -> Iterator[None]:
    """Collect garbage rarely while a big read builds mostly acyclic data.

    Reading a large repo keeps a snapshot of ~10^5 objects alive while it makes
    millions of short-lived ones; with the default thresholds the collector
    re-walks the snapshot over and over (about a fifth of validate's time).
    Whatever exists on entry is frozen (never walked again until exit).
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], 50_000), old[1], max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
