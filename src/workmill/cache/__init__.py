"""The output cache (docs/reference.md "Files of a platform repo"): deterministic keys, a backend seam, retention, prune.

Public API (pinned by tests/test_cache_api.py)::

    from workmill.cache import (CacheRequest, build_request, lookup_and_restore, store,
                                module_deps_dir, retention_days_for, ...)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workmill.cache.backend import (
        CacheBackend,
        CacheCorrupt,
        CacheError,
        CacheUnavailable,
        EntryFile,
        EntryInfo,
        EntryManifest,
        RestoredFile,
    )
    from workmill.cache.index import INDEX_COLUMNS, IndexMutation, apply_all, apply_to_state
    from workmill.cache.keys import CacheKeyError, cache_key, canonical_params, input_hashes
    from workmill.cache.local import LocalCacheBackend
    from workmill.cache.service import (
        CacheHit,
        CacheProblem,
        CacheRequest,
        StoreResult,
        build_request,
        lookup_and_restore,
        module_deps_dir,
        outputs_files,
        retention_days_for,
        store,
    )

# Each name is imported from its module on first use (PEP 562), so importing one part
# of the cache (``workmill.cache.backend``) does not load the service, index and prune:
# a run whose modules have no cache never pays for them (docs/architecture.md "Start-up").
_EXPORTS = {
    "CacheBackend": "backend",
    "CacheCorrupt": "backend",
    "CacheError": "backend",
    "CacheUnavailable": "backend",
    "EntryFile": "backend",
    "EntryInfo": "backend",
    "EntryManifest": "backend",
    "RestoredFile": "backend",
    "INDEX_COLUMNS": "index",
    "IndexMutation": "index",
    "apply_all": "index",
    "apply_to_state": "index",
    "CacheKeyError": "keys",
    "cache_key": "keys",
    "canonical_params": "keys",
    "input_hashes": "keys",
    "LocalCacheBackend": "local",
    "CacheHit": "service",
    "CacheProblem": "service",
    "CacheRequest": "service",
    "StoreResult": "service",
    "build_request": "service",
    "lookup_and_restore": "service",
    "module_deps_dir": "service",
    "outputs_files": "service",
    "retention_days_for": "service",
    "store": "service",
}


__all__ = [
    "INDEX_COLUMNS",
    "CacheBackend",
    "CacheCorrupt",
    "CacheError",
    "CacheHit",
    "CacheKeyError",
    "CacheProblem",
    "CacheRequest",
    "CacheUnavailable",
    "EntryFile",
    "EntryInfo",
    "EntryManifest",
    "IndexMutation",
    "LocalCacheBackend",
    "RestoredFile",
    "StoreResult",
    "apply_all",
    "apply_to_state",
    "build_request",
    "cache_key",
    "canonical_params",
    "input_hashes",
    "lookup_and_restore",
    "module_deps_dir",
    "outputs_files",
    "retention_days_for",
    "store",
]


def __getattr__(name: str) -> Any:
    sub = _EXPORTS.get(name)
    if sub is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{sub}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
