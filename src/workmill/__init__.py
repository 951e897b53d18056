"""workmill: run multi-tenant work orders over a DAG of modules, billed on an integer ledger."""

from __future__ import annotations

__version__ = "0.1.0"
