"""Licence tokens: ``wml1.<base64url(payload)>.<base64url(signature)>``.

The payload is canonical JSON (sorted keys, no whitespace) of ``LicencePayload``;
the signature is Ed25519 over the purpose prefix and those exact bytes, so a
token verifies offline with the operator's public key alone. Tokens are
untrusted input: their size is capped and every part is parsed strictly before
the signature is checked, and any problem is one ``LicenceInvalid`` line.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator

from workmill import clock, ids, signing
from workmill.errors import WorkmillError
from workmill.specs import QuotasSpec

TOKEN_PREFIX = "wml1"
MAX_TOKEN_CHARS = 8192
ALL = "*"
_ISO_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class LicenceInvalid(WorkmillError):
    """A token is malformed, or its signature does not verify."""


class LicenceStatus(StrEnum):
    VALID = "VALID"
    GRACE = "GRACE"  # expired, within licence_grace_hours: runs, with a warning
    EXPIRED = "EXPIRED"  # past the grace period: premium work orders are REJECTED


def _id_list(kind: ids.IdKind, value: list[str] | str) -> list[str] | str:
    if value == ALL:
        return value
    if isinstance(value, str) or not value:
        raise ValueError(f"expected '*' or a non-empty list of {kind.value} ids")
    for v in value:
        if (msg := ids.check(kind, v)) is not None:
            raise ValueError(msg)
    if len(set(value)) != len(value):
        raise ValueError(f"a {kind.value} id is listed twice")
    return sorted(value)


class LicencePayload(BaseModel):
    """What a licence grants; see docs/schemas.md "Licence payload"."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    v: Literal[1] = 1
    licence_id: StrictStr
    licensee: StrictStr = Field(min_length=1, max_length=200)
    tenant_ids: list[StrictStr] | Literal["*"]
    tier: Literal["premium"] = "premium"
    module_ids: list[StrictStr] | Literal["*"] = ALL
    issued_at: StrictStr
    expires_at: StrictStr
    quotas: QuotasSpec = QuotasSpec()

    @field_validator("licence_id")
    @classmethod
    def _lid(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9A-Za-z]{8}", v):
            raise ValueError("licence_id must be 8 Base62 characters")
        return v

    @field_validator("tenant_ids")
    @classmethod
    def _tenants(cls, v: list[str] | str) -> list[str] | str:
        return _id_list(ids.IdKind.TENANT, v)

    @field_validator("module_ids")
    @classmethod
    def _modules(cls, v: list[str] | str) -> list[str] | str:
        return _id_list(ids.IdKind.MODULE, v)

    @field_validator("issued_at", "expires_at")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _ISO_Z.fullmatch(v):
            raise ValueError(f"{v!r} is not a UTC time like 2027-01-31T00:00:00Z")
        clock.parse_iso(v)
        return v

    def covers_tenant(self, tenant_id: str) -> bool:
        return self.tenant_ids == ALL or tenant_id in self.tenant_ids

    def covers_module(self, module_id: str) -> bool:
        return self.module_ids == ALL or module_id in self.module_ids

    def status(self, now: datetime, grace_hours: int) -> LicenceStatus:
        expires = clock.parse_iso(self.expires_at)
        if now < expires:
            return LicenceStatus.VALID
        if now < expires + timedelta(hours=grace_hours):
            return LicenceStatus.GRACE
        return LicenceStatus.EXPIRED


def _canonical(payload: LicencePayload) -> bytes:
    data = payload.model_dump(mode="json", exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_licence_id() -> str:
    return "".join(secrets.choice(ids.BASE62) for _ in range(8))


def encode(payload: LicencePayload, private_key: Any) -> str:
    body = _canonical(payload)
    sig = signing.sign(private_key, signing.PURPOSE_LICENCE, body)
    return f"{TOKEN_PREFIX}.{signing.b64url(body)}.{signing.b64url(sig)}"


def _parse_payload(body: bytes) -> LicencePayload:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LicenceInvalid("licence payload is not UTF-8 JSON") from exc
    if not isinstance(data, dict):
        raise LicenceInvalid("licence payload is not a JSON object")
    try:
        return LicencePayload.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        msg = err["msg"].removeprefix("Value error, ")
        raise LicenceInvalid(f"licence payload field {where}: {msg}") from None


def split(token: str) -> tuple[bytes, bytes]:
    """(payload bytes, signature bytes) of a well-formed token; LicenceInvalid otherwise."""
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise LicenceInvalid(f"licence token is longer than {MAX_TOKEN_CHARS} characters")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise LicenceInvalid(f"not a licence token (expected {TOKEN_PREFIX}.<payload>.<signature>)")
    try:
        body = signing.b64url_decode(parts[1], "licence payload")
        sig = signing.b64url_decode(parts[2], "licence signature")
    except ValueError as exc:
        raise LicenceInvalid(str(exc)) from None
    if len(sig) != signing.SIGNATURE_BYTES:
        raise LicenceInvalid("licence signature has the wrong length")
    return body, sig


def decode_unverified(token: str) -> LicencePayload:
    """The payload of a token without checking its signature (for display only)."""
    body, _sig = split(token)
    return _parse_payload(body)


def decode(token: str, public_key: Any) -> LicencePayload:
    """The payload of a token whose signature verifies with ``public_key``."""
    body, sig = split(token)
    if not signing.verify(public_key, signing.PURPOSE_LICENCE, body, sig):
        raise LicenceInvalid("licence signature does not verify with licence_public_key")
    return _parse_payload(body)


def issue(
    private_key: Any,
    *,
    licensee: str,
    tenant_ids: list[str],
    module_ids: list[str],
    expires_at: str,
    quotas: QuotasSpec | None = None,
    tier: str = "premium",
) -> tuple[str, LicencePayload]:
    """A new signed token; ``['*']`` as a list means every tenant / module."""
    expires = clock.iso(clock.parse_iso(expires_at))
    try:
        payload = LicencePayload(
            licence_id=new_licence_id(),
            licensee=licensee,
            tenant_ids=ALL if tenant_ids == [ALL] else tenant_ids,
            tier=tier,  # type: ignore[arg-type]
            module_ids=ALL if module_ids in ([], [ALL]) else module_ids,
            issued_at=clock.now_iso(),
            expires_at=expires,
            quotas=quotas or QuotasSpec(),
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "licence"
        raise LicenceInvalid(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
    return encode(payload, private_key), payload
