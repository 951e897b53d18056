"""The one clock of workmill; ``WORKMILL_NOW`` fixes it for tests and replays."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from workmill.errors import UsageError

ENV_NOW = "WORKMILL_NOW"


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(f"not an ISO-8601 timestamp: {value!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def now() -> datetime:
    """Current UTC time, or the fixed time in ``WORKMILL_NOW``."""
    fixed = os.environ.get(ENV_NOW)
    if fixed:
        return parse_iso(fixed)
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """UTC ISO-8601 with ``Z`` and whole seconds, as every table stores it."""
    return dt.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(now())
