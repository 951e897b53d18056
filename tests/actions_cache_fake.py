"""A fake of the Actions cache service v2 (what actions/cache 4.x talks to), on FakeGithub.

Shaped by actions/toolkit ``packages/cache``: Twirp JSON at
``/twirp/github.actions.results.api.v1.CacheService/{CreateCacheEntry,
FinalizeCacheEntryUpload, GetCacheEntryDownloadURL}`` with ``Bearer`` of the
job's runtime token; proto field names; the archive goes to a signed URL
(Azure Blob ``Put Blob`` with ``x-ms-blob-type: BlockBlob``, or ``Put Block`` +
``Put Block List``), which needs no credential and refuses one. A key+version
can be reserved once; finalize checks the uploaded size; a finalized entry
appears in the REST listing (``/actions/caches``) and vanishes from the service
when the REST API deletes its key. Lookups match the key exactly, then the
restore keys as prefixes (newest first), only under the same version.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from test_github_support import FakeGithub

SERVICE = "/twirp/github.actions.results.api.v1.CacheService/"
RUNTIME_TOKEN = "fake-ACTIONS-runtime-token-0123456789"


def _twirp_error(status: int, code: str, msg: str) -> tuple:
    return status, {"code": code, "msg": msg}, None, None


class ActionsCacheFake:
    def __init__(self, github: FakeGithub) -> None:
        self.github = github
        self.reserved: dict[tuple[str, str], dict[str, Any]] = {}
        self.blobs: dict[str, bytes] = {}
        self.blocks: dict[str, dict[str, bytes]] = {}
        self.calls: list[str] = []
        github.add_routes(self.route)

    @property
    def env(self) -> dict[str, str]:
        return {
            "ACTIONS_RESULTS_URL": self.github.url + "/",
            "ACTIONS_RUNTIME_TOKEN": RUNTIME_TOKEN,
        }

    def _signed(self, kind: str, blob: str) -> str:
        return f"{self.github.url}/_cacheblob/{blob}?sv=2024&sig={kind}-{secrets.token_hex(6)}"

    # ------------------------------------------------------------ dispatch (under the lock)
    def route(self, h: Any, method: str, path: str, q: dict, body: bytes):
        if path.startswith(SERVICE):
            return self._rpc(h, method, path[len(SERVICE) :], body)
        if path.startswith("/_cacheblob/"):
            return self._blob(h, method, path.rsplit("/", 1)[1], q, body)
        return None

    def _rpc(self, h: Any, method: str, name: str, body: bytes):
        self.calls.append(name)
        if method != "POST":
            return _twirp_error(405, "bad_route", "POST only")
        if h.headers.get("Authorization") != f"Bearer {RUNTIME_TOKEN}":
            return _twirp_error(401, "unauthenticated", "invalid runtime token")
        if not h.headers.get("Content-Type", "").startswith("application/json"):
            return _twirp_error(415, "malformed", "content type")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return _twirp_error(400, "malformed", "bad json")
        handler = {
            "CreateCacheEntry": self._create,
            "FinalizeCacheEntryUpload": self._finalize,
            "GetCacheEntryDownloadURL": self._lookup,
        }.get(name)
        if handler is None:
            return _twirp_error(404, "bad_route", f"no method {name}")
        return handler(data)

    def _live(self, key: str) -> bool:
        return any(c["key"] == key for c in self.github.caches)

    def _create(self, d: dict[str, Any]):
        key, version = d.get("key"), d.get("version")
        if not isinstance(key, str) or not key or not isinstance(version, str) or not version:
            return _twirp_error(400, "invalid_argument", "key and version are required")
        slot = (key, version)
        old = self.reserved.get(slot)
        if old is not None and (not old["final"] or self._live(key)):
            return _twirp_error(409, "already_exists", "cache entry already exists")
        blob = secrets.token_hex(8)
        self.reserved[slot] = {"blob": blob, "final": False}
        return 200, {"ok": True, "signed_upload_url": self._signed("w", blob)}, None, None

    def _finalize(self, d: dict[str, Any]):
        slot = (d.get("key"), d.get("version"))
        entry = self.reserved.get(slot)  # type: ignore[arg-type]
        if entry is None or entry["final"]:
            return _twirp_error(404, "not_found", "no reservation for this key and version")
        data = self.blobs.get(entry["blob"])
        if data is None or str(len(data)) != str(d.get("size_bytes")):
            return 200, {"ok": False, "message": "uploaded size differs"}, None, None
        entry["final"] = True
        self.github.caches.append(
            {
                "id": self.github.new_id(),
                "ref": "refs/heads/main",
                "key": slot[0],
                "version": slot[1],
                "last_accessed_at": "2026-11-23T12:00:00Z",
                "created_at": "2026-11-23T12:00:00Z",
                "size_in_bytes": len(data),
            }
        )
        return 200, {"ok": True, "entry_id": str(self.github._next_id)}, None, None

    def _lookup(self, d: dict[str, Any]):
        key, version = d.get("key"), d.get("version")
        restore = d.get("restore_keys") or []
        final = [
            (k, e)
            for (k, v), e in self.reserved.items()
            if v == version and e["final"] and self._live(k)
        ]
        for k, e in final:
            if k == key:
                return self._found(k, e)
        for prefix in restore:
            for k, e in reversed(final):
                if isinstance(prefix, str) and k.startswith(prefix):
                    return self._found(k, e)
        return 200, {"ok": False, "signed_download_url": "", "matched_key": ""}, None, None

    def _found(self, key: str, e: dict[str, Any]):
        url = self._signed("r", e["blob"])
        return 200, {"ok": True, "signed_download_url": url, "matched_key": key}, None, None

    # ------------------------------------------------------------ signed blob URLs
    def _blob(self, h: Any, method: str, blob: str, q: dict, body: bytes):
        if h.headers.get("Authorization"):
            return 403, {"message": "a signed URL takes no credential"}, None, None
        sig = q.get("sig", [""])[0]
        known = {e["blob"] for e in self.reserved.values()}
        if blob not in known or not sig:
            return 403, {"message": "signature"}, None, None
        if method == "GET" and sig.startswith("r-"):
            if blob not in self.blobs:
                return 404, {"message": "BlobNotFound"}, None, None
            return 200, None, None, self.blobs[blob]
        if method != "PUT" or not sig.startswith("w-"):
            return 403, {"message": "signature does not allow this"}, None, None
        comp = q.get("comp", [""])[0]
        if comp == "block":
            self.blocks.setdefault(blob, {})[q["blockid"][0]] = body
        elif comp == "blocklist":
            ids = re.findall(r"<Latest>([^<]+)</Latest>", body.decode())
            parts = self.blocks.get(blob, {})
            if any(i not in parts for i in ids):
                return 400, {"message": "InvalidBlockList"}, None, None
            self.blobs[blob] = b"".join(parts[i] for i in ids)
        elif h.headers.get("x-ms-blob-type") == "BlockBlob":
            self.blobs[blob] = body
        else:
            return 400, {"message": "MissingRequiredHeader x-ms-blob-type"}, None, None
        return 201, None, None, None


def signed_host(url: str) -> str:
    return urlsplit(url).netloc
