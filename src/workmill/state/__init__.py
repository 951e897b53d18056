"""The billing state store (docs/reference.md "Billing rules"): a release-backed, revisioned set of CSV tables.

Typical use (the orchestrator, the cache, ``workmill topup``)::

    store = open_billing_store(repo)   # workmill.backends
    state = store.load()                      # read-only look
    spent = store.commit_with_retry(lambda s: s.spend(q, tenant, wo))
"""

from __future__ import annotations

from workmill.state.billing_state import DERIVED, PARTITIONED, TOPUP_REFERENCES, BillingState
from workmill.state.chunking import CHUNK_BYTES, TAIL_BYTES
from workmill.state.manifest import Manifest, PartitionRef, TableRef
from workmill.state.releases import AssetExists, LocalReleaseStore, ReleaseStore
from workmill.state.store import (
    ENV_COMMIT_SLEEP,
    KEEP_REVISIONS,
    BillingStore,
    LedgerRefused,
    PushResult,
)
from workmill.state.workorder_index import PROMO_USAGE, WORKORDER_INDEX, WorkOrderRecord

__all__ = [
    "CHUNK_BYTES",
    "DERIVED",
    "ENV_COMMIT_SLEEP",
    "KEEP_REVISIONS",
    "PARTITIONED",
    "PROMO_USAGE",
    "TAIL_BYTES",
    "TOPUP_REFERENCES",
    "WORKORDER_INDEX",
    "AssetExists",
    "BillingState",
    "BillingStore",
    "LedgerRefused",
    "LocalReleaseStore",
    "Manifest",
    "PartitionRef",
    "PushResult",
    "ReleaseStore",
    "TableRef",
    "WorkOrderRecord",
]
