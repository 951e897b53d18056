"""Offline licences for premium modules (docs/reference.md "Registry, tiers, licences,
quotas, usage"): signed tokens, where they are found, and what they cover."""

from workmill.licences._store import (
    ENV_LICENCE,
    LICENCES_DIR,
    Coverage,
    LoadedLicence,
    coverage,
    licence_quotas,
    load_licences,
    write_token,
)
from workmill.licences._token import (
    ALL,
    LicenceInvalid,
    LicencePayload,
    LicenceStatus,
    decode,
    decode_unverified,
    issue,
)

__all__ = [
    "ALL",
    "ENV_LICENCE",
    "LICENCES_DIR",
    "Coverage",
    "LicenceInvalid",
    "LicencePayload",
    "LicenceStatus",
    "LoadedLicence",
    "coverage",
    "decode",
    "decode_unverified",
    "issue",
    "licence_quotas",
    "load_licences",
    "write_token",
]
