"""A client of the Actions cache service v2, the one ``actions/cache`` 4.x uses.

Followed from actions/toolkit ``packages/cache`` (``src/cache.ts`` saveCacheV2 /
restoreCacheV2, ``src/internal/shared/cacheTwirpClient.ts``,
``src/internal/config.ts``, ``src/generated/results/api/v1/cache.ts``):

- the service is Twirp over JSON at ``$ACTIONS_RESULTS_URL`` +
  ``/twirp/github.actions.results.api.v1.CacheService/<Method>``, authorised by
  ``Bearer $ACTIONS_RUNTIME_TOKEN`` (both set by the runner for actions only;
  the shipped workflow hands them to ``workmill execute``);
- fields use the proto names (``useProtoFieldName``): ``key``, ``version``,
  ``restore_keys``, ``size_bytes`` (an int64, sent as a string); answers carry
  ``ok``, ``signed_upload_url``, ``signed_download_url``, ``matched_key``,
  ``entry_id``, ``message``;
- save: ``CreateCacheEntry{key, version}`` → upload the archive to the signed
  URL (Azure Blob: one ``Put Blob`` with ``x-ms-blob-type: BlockBlob``, or
  ``Put Block`` + ``Put Block List`` for large archives) →
  ``FinalizeCacheEntryUpload{key, version, size_bytes}``; an entry that exists
  already cannot be created again (the service refuses the reservation);
- restore: ``GetCacheEntryDownloadURL{key, restore_keys, version}`` → ``ok``
  false is a miss; else GET the signed URL (no credential);
- ``version`` is a sha256 over what the entry's content depends on beyond
  the key (the toolkit hashes the paths, compression method and a salt); an
  entry is only found with the version it was saved under;
- retries as the toolkit does: 5 attempts, 3 s × 1.5ⁿ, on 5xx and network errors.

The runtime token can write caches; it is never passed to module processes
(the sandbox clears their environment). Listing and deleting caches is the
REST API's job (``GithubCacheBackend``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from workmill.cache.backend import CacheUnavailable

SERVICE = "github.actions.results.api.v1.CacheService"
RESULTS_URL_ENV = "ACTIONS_RESULTS_URL"
RUNTIME_TOKEN_ENV = "ACTIONS_RUNTIME_TOKEN"
SINGLE_PUT_MAX = 128 << 20  # larger archives go up as blocks
BLOCK_BYTES = 32 << 20
READ_BLOCK = 1 << 20
RETRY_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Reservation:
    ok: bool
    upload_url: str = ""
    message: str = ""


def _blocks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = length if length is not None else os.fstat(fh.fileno()).st_size - start
        while left > 0 and (chunk := fh.read(min(READ_BLOCK, left))):
            left -= len(chunk)
            yield chunk


class CacheServiceClient:
    """Twirp calls plus the signed-URL transfers of one job's cache service."""

    def __init__(
        self,
        results_url: str,
        runtime_token: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not results_url or not runtime_token:
            raise CacheUnavailable(
                "the Actions cache service is reachable only inside a workflow job "
                f"({RESULTS_URL_ENV} and {RUNTIME_TOKEN_ENV} unset)"
            )
        self.base = results_url
        self.__token = runtime_token
        self._sleep = sleep
        self.max_attempts = max_attempts
        self._http = httpx.Client(timeout=httpx.Timeout(120.0, connect=10.0), transport=transport)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CacheServiceClient | None:
        env = dict(os.environ if env is None else env)
        url, token = env.get(RESULTS_URL_ENV, ""), env.get(RUNTIME_TOKEN_ENV, "")
        return cls(url, token) if url and token else None

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ transport
    def _retrying(self, what: str, call: Callable[[], httpx.Response]) -> httpx.Response:
        delay = 3.0
        for attempt in range(1, self.max_attempts + 1):
            try:
                resp = call()
            except httpx.TransportError as exc:
                if attempt == self.max_attempts:
                    raise CacheUnavailable(f"cache service {what}: {type(exc).__name__}") from None
            else:
                if resp.status_code not in RETRY_STATUSES or attempt == self.max_attempts:
                    return resp
            self._sleep(delay)
            delay *= 1.5
        raise AssertionError("unreachable")  # pragma: no cover

    def rpc(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One Twirp JSON call; a Twirp error (non-200) becomes ``{"ok": False, ...}``."""
        url = urljoin(self.base, f"/twirp/{SERVICE}/{method}")
        headers = {"Authorization": f"Bearer {self.__token}", "Content-Type": "application/json"}
        resp = self._retrying(method, lambda: self._http.post(url, json=payload, headers=headers))
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code == 200 and isinstance(body, dict):
            return body
        msg = body.get("msg") if isinstance(body, dict) else None
        if resp.status_code in (401, 403):
            raise CacheUnavailable(f"cache service {method}: {resp.status_code} {msg or ''}")
        return {"ok": False, "message": msg or f"HTTP {resp.status_code}"}

    # ------------------------------------------------------------ protocol
    def reserve(self, key: str, version: str) -> Reservation:
        body = self.rpc("CreateCacheEntry", {"key": key, "version": version})
        url = str(body.get("signed_upload_url") or body.get("signedUploadUrl") or "")
        return Reservation(bool(body.get("ok")) and bool(url), url, str(body.get("message", "")))

    def upload(self, url: str, archive: Path) -> None:
        """Put the archive at the signed URL, streamed from disk (blocks when large)."""
        size = archive.stat().st_size
        if size <= SINGLE_PUT_MAX:
            headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": str(size)}
            self._put(url, headers, lambda: _blocks(archive))
            return
        ids = []
        for n, start in enumerate(range(0, size, BLOCK_BYTES)):
            block_id = base64.b64encode(f"{n:08d}".encode()).decode()
            ids.append(block_id)
            length = min(BLOCK_BYTES, size - start)
            self._put(
                f"{url}&comp=block&blockid={block_id}",
                {"Content-Length": str(length)},
                lambda s=start, n_=length: _blocks(archive, s, n_),
            )
        xml = "<?xml version='1.0' encoding='utf-8'?><BlockList>"
        xml += "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>"
        self._put(
            f"{url}&comp=blocklist", {"Content-Type": "application/xml"}, lambda: xml.encode()
        )

    def _put(self, url: str, headers: dict[str, str], body: Callable[[], Any]) -> None:
        resp = self._retrying(
            "upload", lambda: self._http.put(url, content=body(), headers=headers)
        )
        if resp.status_code not in (200, 201):
            raise CacheUnavailable(
                f"cache upload to {urlsplit(url).netloc}: HTTP {resp.status_code}"
            )

    def finalize(self, key: str, version: str, size: int) -> str:
        body = self.rpc(
            "FinalizeCacheEntryUpload", {"key": key, "version": version, "size_bytes": str(size)}
        )
        if not body.get("ok"):
            raise CacheUnavailable(
                f"cache entry {key[:12]} not finalized: {body.get('message') or 'refused'}"
            )
        return str(body.get("entry_id", ""))

    def lookup(self, key: str, version: str) -> str | None:
        """The signed download URL of exactly ``key`` (no restore-key prefixes), or None."""
        body = self.rpc(
            "GetCacheEntryDownloadURL", {"key": key, "restore_keys": [], "version": version}
        )
        url = body.get("signed_download_url") or body.get("signedDownloadUrl")
        matched = body.get("matched_key") or body.get("matchedKey") or key
        if not body.get("ok") or not url or matched != key:
            return None
        return str(url)

    def download(self, url: str, dest: Path) -> None:
        """GET the signed URL into ``dest`` (streamed), with no credential."""

        def call() -> httpx.Response:
            with self._http.stream("GET", url) as resp:
                if resp.status_code == 200:
                    with dest.open("wb") as fh:
                        for chunk in resp.iter_bytes(READ_BLOCK):
                            fh.write(chunk)
                return resp

        resp = self._retrying("download", call)
        if resp.status_code != 200:
            raise CacheUnavailable(f"cache download: HTTP {resp.status_code}")


def entry_version(fmt: str) -> str:
    """The service ``version`` of workmill entries: what the archive's layout depends on."""
    return hashlib.sha256(f"workmill|{fmt}|tar".encode()).hexdigest()
