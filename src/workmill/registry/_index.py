"""The registry index (``index.json``) and its Ed25519 signature.

One signature covers the whole index, and the index pins each archive's sha256 and
size: checking one signature protects every archive below it (docs/schemas.md
"Registry index"). The signed bytes are exactly the stored bytes; the signature
file holds base64url text of the 64-byte signature.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from workmill import clock, signing
from workmill.errors import WorkmillError

FORMAT = "workmill-registry-index-v1"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
SHA256 = re.compile(r"[0-9a-f]{64}")


class RegistryRefused(WorkmillError):
    """The registry's index or an archive is unsigned, mismatched or tampered with."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionEntry(_M):
    archive: StrictStr
    sha256: StrictStr = Field(pattern=SHA256.pattern)
    size_bytes: StrictInt = Field(ge=1)
    published_at: StrictStr
    module_id: StrictStr
    module_digest: StrictStr = Field(pattern=SHA256.pattern)
    category_id: StrictStr = ""


class ModuleEntry(_M):
    name: StrictStr = Field(pattern=NAME.pattern)
    title: StrictStr = ""
    tier: Literal["core", "community", "premium"] = "core"
    description: StrictStr = ""
    keywords: list[StrictStr] = Field(default_factory=list)
    versions: dict[str, VersionEntry] = Field(default_factory=dict)


class Index(_M):
    format: Literal["workmill-registry-index-v1"] = FORMAT
    revision: StrictInt = Field(0, ge=0)
    updated_at: StrictStr = ""
    modules: dict[str, ModuleEntry] = Field(default_factory=dict)

    def to_bytes(self) -> bytes:
        data = self.model_dump(mode="json")
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()

    def entry(self, name: str) -> ModuleEntry:
        if name not in self.modules:
            raise RegistryRefused(f"no module named {name!r} in the registry")
        return self.modules[name]

    def version(self, name: str, version: str) -> VersionEntry:
        entry = self.entry(name)
        if version not in entry.versions:
            known = ", ".join(sorted(entry.versions)) or "none"
            raise RegistryRefused(f"{name} has no version {version!r} (versions: {known})")
        return entry.versions[version]


def sign_index(data: bytes, private_key: Any) -> bytes:
    return (signing.b64url(signing.sign(private_key, signing.PURPOSE_INDEX, data)) + "\n").encode()


def verify_index(data: bytes, sig: bytes | None, public_key: Any, where: str) -> Index:
    """The index, once its signature verifies; RegistryRefused otherwise (one line)."""
    if sig is None:
        raise RegistryRefused(f"{where}: the index is not signed; refused")
    try:
        raw = signing.b64url_decode(sig.decode("ascii", errors="replace").strip(), "signature")
    except ValueError:
        raise RegistryRefused(f"{where}: the index signature is malformed; refused") from None
    if not signing.verify(public_key, signing.PURPOSE_INDEX, data, raw):
        raise RegistryRefused(
            f"{where}: the index signature does not verify with registry_public_key "
            "(tampered index or wrong key); refused"
        )
    try:
        index = Index.model_validate_json(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise RegistryRefused(
            f"{where}: signed index is malformed at {loc}: {err['msg']}"
        ) from None
    if index.revision < 1 or not _is_timestamp(index.updated_at):
        # the revision and the signing time are what freshness checks compare (_seen.py)
        raise RegistryRefused(
            f"{where}: signed index has no revision or no updated_at time; refused"
        )
    return index


def _is_timestamp(value: str) -> bool:
    try:
        clock.parse_iso(value)
    except WorkmillError:
        return False
    return bool(value)
