"""Deterministic cache keys (docs/reference.md "Files of a platform repo"): the same request always gives the same key.

The key is ``sha256`` (lower-case hex) of the UTF-8 bytes of one canonical JSON
document::

    {"inputs":[["<dep_module_id>/<file>","<sha256>"],...],
     "module_digest":"<sha256 of the module folder>",
     "module_id":"001","module_version":"1.4.0",
     "params":{...canonical params...},
     "scheme":"workmill-cache-key-v1","tenant_id":"Ab12Cd"}

Canonical JSON: object keys sorted by code point, separators ``,`` and ``:``
with no whitespace, non-ASCII written as UTF-8 (not ``\\u`` escapes), inputs
sorted by path. Numbers are normalised so that equal values hash equally:
an integral float becomes the integer (``1.0`` -> ``1``, ``-0.0`` -> ``0``),
other floats use Python's shortest round-trip repr; NaN and infinities are
refused (they have no canonical value). Booleans stay booleans (``true`` is
not ``1``). The tenant is part of the key so no two tenants can share an
entry, and ``scheme`` lets a future encoding never collide with this one.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workmill.errors import WorkmillError
from workmill.fsio import sha256_file

KEY_SCHEME = "workmill-cache-key-v1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CacheKeyError(WorkmillError):
    """A request cannot be given a canonical key (NaN param, non-string key, ...)."""


def canonical_value(value: Any, where: str = "params") -> Any:
    """``value`` with numbers normalised; raises CacheKeyError for what JSON cannot hold exactly."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CacheKeyError(f"{where}: {value!r} has no canonical value (NaN or infinity)")
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CacheKeyError(f"{where}: key {k!r} is not a string")
            out[k] = canonical_value(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [canonical_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CacheKeyError(f"{where}: a {type(value).__name__} cannot be part of a cache key")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of an already canonical value."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:  # lone surrogates cannot be UTF-8
        raise CacheKeyError(f"params cannot be encoded canonically: {exc}") from exc


def canonical_params(params: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a params object (sorted keys, normalised numbers, no whitespace)."""
    return canonical_json(canonical_value(dict(params)))


def key_document(
    *,
    tenant_id: str,
    module_id: str,
    module_version: str,
    module_digest: str,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
) -> bytes:
    """The exact bytes that are hashed into the key (documented above)."""
    for name, value in (
        ("tenant_id", tenant_id),
        ("module_id", module_id),
        ("module_version", module_version),
    ):
        if not isinstance(value, str) or not value:
            raise CacheKeyError(f"{name} must be a non-empty string, got {value!r}")
    if not isinstance(module_digest, str) or not _SHA256.fullmatch(module_digest):
        raise CacheKeyError(f"module_digest must be a lower-case sha256, got {module_digest!r}")
    inputs = []
    for path, digest in input_hashes.items():
        if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
            raise CacheKeyError(f"input path {path!r} must be '<dep_module_id>/<file>'")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise CacheKeyError(f"input {path}: {digest!r} is not a lower-case sha256")
        inputs.append([path, digest])
    inputs.sort()
    doc = {
        "scheme": KEY_SCHEME,
        "tenant_id": tenant_id,
        "module_id": module_id,
        "module_version": module_version,
        "module_digest": module_digest,
        "params": canonical_value(dict(params)),
        "inputs": inputs,
    }
    return canonical_json(doc)


def cache_key(
    *,
    tenant_id: str,
    module_id: str,
    module_version: str,
    module_digest: str,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
) -> str:
    """sha256 hex of :func:`key_document`. Pure: no clock, no files."""
    return hashlib.sha256(
        key_document(
            tenant_id=tenant_id,
            module_id=module_id,
            module_version=module_version,
            module_digest=module_digest,
            params=params,
            input_hashes=input_hashes,
        )
    ).hexdigest()


def input_hashes(inputs_dir: Path) -> dict[str, str]:
    """sha256 of every regular file under ``inputs_dir``, keyed ``<dep_module_id>/<file>``.

    A symlink is refused rather than followed: an input must be the dependency's
    own output, not a pointer to somewhere else whose content could change.
    """
    out: dict[str, str] = {}
    if not inputs_dir.exists():
        return out
    for p in sorted(inputs_dir.rglob("*")):
        rel = p.relative_to(inputs_dir).as_posix()
        if p.is_symlink():
            raise CacheKeyError(f"input {rel} is a symlink; inputs must be regular files")
        if p.is_file():
            out[rel] = sha256_file(p)
    return out
