"""Names and columns of every billing-state table (docs/reference.md "Billing rules"), in one place.

The ledger, the state store, ``workmill init`` (templates) and the docs all
read these; more columns may follow the required ones in a stored table.
"""

from __future__ import annotations

TENANTS_CREDITS = "tenants_credits.csv"
TRANSACTIONS = "transactions.csv"
TRANSACTION_ITEMS = "transaction_items.csv"
PROMOTION_REDEMPTIONS = "promotion_redemptions.csv"
PRICING = "pricing.csv"
PROMOTIONS = "promotions.csv"
TOPUP_METHODS = "topup_methods.csv"
CACHE_INDEX = "cache_index.csv"
WORKORDERS_LOG = "workorders_log.csv"
MODULE_RUNS_LOG = "module_runs_log.csv"
RELEASES_MAP = "github_releases_map.csv"
ASSETS_MAP = "github_assets_map.csv"
# What a SPEND paid for (docs/schemas.md "Recorded plans"): written in the SPEND's commit,
# read by every resume so a charged work order runs its paid plan whatever its file says now.
WORKORDER_PLANS = "workorder_plans.csv"
STATE_MANIFEST = "state_manifest.json"

COLUMNS: dict[str, tuple[str, ...]] = {
    TENANTS_CREDITS: ("tenant_id", "balance_credits", "updated_at"),
    TRANSACTIONS: (
        "transaction_id",
        "tenant_id",
        "work_order_id",
        "type",
        "amount_credits",
        "balance_after",
        "created_at",
        "reference",
        "payment_id",
        "topup_method_id",
        "note",
    ),
    TRANSACTION_ITEMS: (
        "transaction_item_id",
        "transaction_id",
        "line_no",
        "kind",
        "module_id",
        "product_code",
        "promo_code",
        "module_run_id",
        "amount_credits",
        "note",
    ),
    PROMOTION_REDEMPTIONS: (
        "redemption_id",
        "promo_code",
        "tenant_id",
        "work_order_id",
        "transaction_id",
        "event",
        "amount_credits",
        "created_at",
    ),
    PRICING: ("module_id", "product_code", "price_credits", "artifact_price_credits", "active"),
    PROMOTIONS: (
        "promo_code",
        "kind",
        "value",
        "module_ids",
        "starts_at",
        "ends_at",
        "max_redemptions",
        "max_redemptions_per_tenant",
        "active",
    ),
    TOPUP_METHODS: ("topup_method_id", "name", "active"),
    CACHE_INDEX: (
        "cache_key",
        "tenant_id",
        "module_id",
        "module_version",
        "created_at",
        "expires_at",
        "retention_days",
        "size_bytes",
        "origin",
        "last_hit_at",
    ),
    WORKORDERS_LOG: (
        "work_order_id",
        "tenant_id",
        "status",
        "mode",
        "reason_code",
        "spend_transaction_id",
        "refund_transaction_id",
        "spend_credits",
        "refund_credits",
        "started_at",
        "finished_at",
    ),
    MODULE_RUNS_LOG: (
        "module_run_id",
        "work_order_id",
        "tenant_id",
        "module_id",
        "module_version",
        "status",
        "reason_code",
        "reuse_output_type",
        "cache_hit",
        "artifacts_published",
        "started_at",
        "finished_at",
        "duration_ms",
        "outputs_sha256",
        "module_digest",
    ),
    RELEASES_MAP: (
        "release_id",
        "tag",
        "github_release_id",
        "tenant_id",
        "work_order_id",
        "created_at",
    ),
    ASSETS_MAP: ("asset_id", "release_id", "asset_name", "github_asset_id", "sha256", "size_bytes"),
    WORKORDER_PLANS: (
        "work_order_id",
        "tenant_id",
        "spend_transaction_id",
        "created_at",
        "plan_sha256",
        "plan",
    ),
}
# Optional columns workmill writes after the required ones (older rows lack them):
# a REJECTED row's work-order file hash, so an unchanged file is not logged again.
LOG_CONTENT_SHA256 = "content_sha256"

# Columns added after a table's first release: a stored table (or chunk) written
# before may lack them, and reads as empty cells there. New tables get them at the end.
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {MODULE_RUNS_LOG: ("module_digest",)}


def required_columns(table: str) -> tuple[str, ...]:
    """The columns every stored copy of ``table`` must have (its columns minus added ones)."""
    added = ADDED_COLUMNS.get(table, ())
    return tuple(c for c in COLUMNS.get(table, ()) if c not in added)


# Tables only workmill appends to (partitioned by month in the store); the rest are
# small and rewritten whole.
APPEND_ONLY = (
    TRANSACTIONS,
    TRANSACTION_ITEMS,
    PROMOTION_REDEMPTIONS,
    WORKORDERS_LOG,
    MODULE_RUNS_LOG,
    RELEASES_MAP,
    ASSETS_MAP,
    WORKORDER_PLANS,
)
# Tables an operator edits by hand and pushes (`workmill state push`).
ADMIN_EDITABLE = (PRICING, PROMOTIONS, TOPUP_METHODS, CACHE_INDEX)

# Rows the bootstrap templates ship with.
TEMPLATE_ROWS: dict[str, list[dict[str, str]]] = {
    TOPUP_METHODS: [{"topup_method_id": "AD", "name": "admin", "active": "true"}],
}
