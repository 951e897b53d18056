"""Where licence tokens come from, and what they allow a tenant to run.

Tokens are read from ``licences/*.lic`` in the platform repo, from the
``WORKMILL_LICENCE`` environment variable (whitespace-separated tokens) and, when
``licence_url`` is configured, from that URL (cached on disk for
``URL_TTL_SECONDS``; an unreachable URL falls back to the cache, so licences keep
working offline). Every token is verified with ``licence_public_key``; one that
does not verify is kept with its error (shown by ``licence show``) and grants
nothing. See docs/reference.md "Registry, tiers, licences, quotas, usage".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from workmill import clock, signing
from workmill.errors import WorkmillError
from workmill.fsio import atomic_write_text
from workmill.licences._token import (
    LicenceInvalid,
    LicencePayload,
    LicenceStatus,
    decode,
)
from workmill.specs import QuotasSpec

ENV_LICENCE = "WORKMILL_LICENCE"
LICENCES_DIR = "licences"
URL_TTL_SECONDS = 3600
URL_CACHE = ".workmill/licences/url-cache.json"
URL_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedLicence:
    """One token and where it came from: its payload when it verified, else the error."""

    source: str
    payload: LicencePayload | None
    error: str = ""


@dataclass
class Coverage:
    """Whether a tenant may run the premium modules of one work order."""

    allowed: bool
    message: str = ""
    warnings: list[str] = field(default_factory=list)


def _public_key(repo) -> object | None:
    path = repo.config.licence_public_key
    if not path:
        return None
    return signing.load_public_key(repo.resolve_dir(path))


def _tokens_in(text: str) -> list[str]:
    """Every word of ``text`` outside ``#`` comment lines: anything that is not a valid
    token is reported as invalid rather than silently skipped."""
    return [
        word
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for word in line.split()
    ]


def _file_tokens(repo) -> list[tuple[str, str]]:
    d = repo.root / LICENCES_DIR
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.lic")):
        try:
            text = p.read_text("utf-8", errors="replace")[: 64 * 1024]
        except OSError:
            text = "(unreadable)"
        out += [(f"{LICENCES_DIR}/{p.name}", t) for t in _tokens_in(text)]
    return out


def _fetch(url: str) -> str:
    import httpx

    try:
        resp = httpx.get(url, timeout=10.0, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise WorkmillError(f"licence_url {url}: {type(exc).__name__}") from exc
    if resp.status_code != 200:
        raise WorkmillError(f"licence_url {url}: HTTP {resp.status_code}")
    return resp.content[:URL_MAX_BYTES].decode("utf-8", errors="replace")


def _read_cache(path: Path, url: str) -> dict:
    """The cache of ``url``; anything unreadable or for another URL is an empty cache."""
    try:
        data = json.loads(path.read_text("utf-8"))
        if isinstance(data, dict) and data.get("url") == url:
            return {"url": url, "fetched_at": float(data["fetched_at"]), "body": str(data["body"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {"url": url, "fetched_at": 0.0, "body": ""}


def url_tokens(repo, warnings: list[str] | None = None) -> list[str]:
    """Tokens from ``licence_url``: the disk cache while younger than the TTL, else a fetch;
    a failed fetch falls back to the cache of any age (with a warning)."""
    url = repo.config.licence_url
    if not url:
        return []
    cache_path = repo.root / URL_CACHE
    cached = _read_cache(cache_path, url)
    now = clock.now().timestamp()
    fresh = 0 <= now - cached["fetched_at"] < URL_TTL_SECONDS
    if not fresh:
        try:
            body = _fetch(url)
            cached = {"url": url, "fetched_at": now, "body": body}
            atomic_write_text(cache_path, json.dumps(cached) + "\n")
        except WorkmillError as exc:
            if warnings is not None:
                warnings.append(f"{exc}; using the cached licences")
            # try again after the TTL, not on every work order of this plan
            cached = {**cached, "fetched_at": now}
            atomic_write_text(cache_path, json.dumps(cached) + "\n")
    return _tokens_in(cached["body"])


def load_licences(repo, warnings: list[str] | None = None) -> list[LoadedLicence]:
    """Every token the repo, the environment and ``licence_url`` offer, verified."""
    found = _file_tokens(repo)
    found += [(f"${ENV_LICENCE}", t) for t in _tokens_in(os.environ.get(ENV_LICENCE, ""))]
    found += [("licence_url", t) for t in url_tokens(repo, warnings)]
    if not found:
        return []
    try:
        key = _public_key(repo)
    except WorkmillError as exc:
        return [LoadedLicence(src, None, str(exc)) for src, _t in found]
    out = []
    for src, token in found:
        if key is None:
            out.append(LoadedLicence(src, None, "workmill.yml has no licence_public_key"))
            continue
        try:
            out.append(LoadedLicence(src, decode(token, key)))
        except LicenceInvalid as exc:
            out.append(LoadedLicence(src, None, str(exc)))
    return out


def _grace_end(p: LicencePayload, grace_hours: int) -> str:
    return clock.iso(clock.parse_iso(p.expires_at) + timedelta(hours=grace_hours))


def _module_coverage(
    licences: Sequence[LoadedLicence],
    tenant_id: str,
    module_id: str,
    now: datetime,
    grace_hours: int,
) -> tuple[str | None, str | None]:
    """(refusal, warning) for one premium module."""
    mine = [
        lic.payload
        for lic in licences
        if lic.payload is not None
        and lic.payload.covers_tenant(tenant_id)
        and lic.payload.covers_module(module_id)
    ]
    by_status = {s: [p for p in mine if p.status(now, grace_hours) is s] for s in LicenceStatus}
    if by_status[LicenceStatus.VALID]:
        return None, None
    if grace := by_status[LicenceStatus.GRACE]:
        p = max(grace, key=lambda q: q.expires_at)
        return None, (
            f"licence {p.licence_id} ({p.licensee}) for tenant {tenant_id} expired at "
            f"{p.expires_at}; premium module {module_id} runs until the grace period ends at "
            f"{_grace_end(p, grace_hours)} — renew it"
        )
    if expired := by_status[LicenceStatus.EXPIRED]:
        p = max(expired, key=lambda q: q.expires_at)
        return (
            f"module {module_id} is premium: licence {p.licence_id} for tenant {tenant_id} "
            f"expired at {p.expires_at} and its {grace_hours} h grace period ended at "
            f"{_grace_end(p, grace_hours)}"
        ), None
    bad = [lic for lic in licences if lic.payload is None]
    extra = f" ({bad[0].source}: {bad[0].error})" if bad else ""
    return f"module {module_id} is premium and no valid licence covers tenant {tenant_id}{extra}", (
        None
    )


def coverage(
    licences: Sequence[LoadedLicence],
    tenant_id: str,
    premium_modules: Iterable[str],
    now: datetime,
    grace_hours: int,
) -> Coverage:
    """Allowed when every premium module has a covering licence that is valid or in grace."""
    out = Coverage(allowed=True)
    for module_id in premium_modules:
        refusal, warning = _module_coverage(licences, tenant_id, module_id, now, grace_hours)
        if refusal is not None:
            return Coverage(allowed=False, message=refusal)
        if warning is not None:
            out.warnings.append(warning)
    return out


def licence_quotas(
    licences: Sequence[LoadedLicence], tenant_id: str, now: datetime, grace_hours: int
) -> list[tuple[str, QuotasSpec]]:
    """(``licence <id>``, quotas) of every usable licence that covers the tenant."""
    return [
        (f"licence {lic.payload.licence_id}", lic.payload.quotas)
        for lic in licences
        if lic.payload is not None
        and lic.payload.covers_tenant(tenant_id)
        and lic.payload.status(now, grace_hours) is not LicenceStatus.EXPIRED
    ]


def write_token(path: Path, token: str) -> None:
    atomic_write_text(path, token + "\n")
