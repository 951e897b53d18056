"""The output cache (docs/reference.md "Files of a platform repo"): deterministic keys, a backend seam, retention, prune.

Public API (pinned by tests/test_cache_api.py)::

    from workmill.cache import (CacheRequest, build_request, lookup_and_restore, store,
                                module_deps_dir, retention_days_for, ...)
"""

from __future__ import annotations

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
