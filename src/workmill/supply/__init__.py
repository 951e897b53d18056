"""Module supply chain (docs/supply-chain.md): pins, secrets, smoke, promotion.

Public API:

- :func:`pin` / :func:`pin_status` / :func:`read_pins` — module digests in
  ``module_registry.csv`` against the files on disk
- :func:`secret_env` / :func:`missing_secrets` — a module's declared secrets
- ``workmill.supply.smoke`` — :func:`~workmill.supply.smoke.smoke` runs modules in smoke mode
- ``workmill.supply.promote`` — :func:`~workmill.supply.promote.promote` checks an environment
- ``workmill.supply.pull_request`` — :func:`~workmill.supply.pull_request.open_pin_pull_request`

The smoke, promotion and pull-request modules are imported on demand: the
orchestrator's gates need only pins and secrets.
"""

from __future__ import annotations

from workmill.supply._pins import (
    REGISTRY_PATH,
    PinResult,
    PinState,
    PinStatus,
    current_digest,
    describe,
    parse_registry,
    pin,
    pin_status,
    pins_of,
    read_pins,
    read_registry,
    unpinned_modules,
)
from workmill.supply._secrets import SMOKE_PLACEHOLDER, declared, missing_secrets, secret_env

__all__ = [
    "REGISTRY_PATH",
    "SMOKE_PLACEHOLDER",
    "PinResult",
    "PinState",
    "PinStatus",
    "current_digest",
    "declared",
    "describe",
    "missing_secrets",
    "parse_registry",
    "pin",
    "pin_status",
    "pins_of",
    "read_pins",
    "read_registry",
    "secret_env",
    "unpinned_modules",
]
