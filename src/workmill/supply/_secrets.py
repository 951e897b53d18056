"""Module secrets: ``module.yml`` ``secrets: {required, optional}`` (docs/supply-chain.md).

A secret is read from workmill's own environment variable of the same name
and handed to that one module's run as an extra environment variable (the
runner masks every value it is given, in plain text and common encodings).
Nothing here writes a value anywhere. Smoke runs get placeholders, so a pull
request's smoke test never needs, and never sees, a real secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from workmill.specs import ModuleSpec

SMOKE_PLACEHOLDER = "workmill-smoke-placeholder"


def declared(spec: ModuleSpec) -> list[str]:
    return [*spec.secrets.required, *spec.secrets.optional]


def missing_secrets(spec: ModuleSpec, environ: Mapping[str, str] | None = None) -> list[str]:
    """Required secrets of ``spec`` not set (or empty) in ``environ``: names only."""
    env = os.environ if environ is None else environ
    return [name for name in spec.secrets.required if not env.get(name)]


def secret_env(
    spec: ModuleSpec, environ: Mapping[str, str] | None = None, *, smoke: bool = False
) -> dict[str, str]:
    """The variables this module receives: its declared secrets that are set.

    With ``smoke`` every declared secret is a placeholder instead (never the real value).
    """
    if smoke:
        return {name: SMOKE_PLACEHOLDER for name in declared(spec)}
    env = os.environ if environ is None else environ
    return {name: env[name] for name in declared(spec) if env.get(name)}
