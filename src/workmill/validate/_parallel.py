"""Fan independent per-file work out over the CPUs (big repos only).

Workers are forked so they inherit what the parent already loaded; where fork
is unavailable, or the input is small, the work runs in this process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
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
    if len(items) < threshold or workers < 2 or "fork" not in mp.get_all_start_methods():
        return [fn(state, items)]
    size = max(100, len(items) // (workers * 4))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    _STATE, _FN = state, fn
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            return pool.map(_run_chunk, chunks)
    finally:
        _STATE, _FN = None, None
