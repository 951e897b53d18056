"""``GithubCacheBackend``: the GitHub Actions cache as seen through the REST API.

The REST API can list a repository's caches (key, size, dates) and delete
them, which is all ``workmill cache list`` and ``workmill cache prune`` need.
Cache *content* is only reachable from inside a running Actions job, through
the runner's private cache service (what ``actions/cache`` uses); that
protocol is not a documented public API, so this backend does not speak it:
a lookup is a miss, and a save is refused with ``CacheUnavailable`` (the
orchestrator treats that as "not cached", so no index row is written for an
entry that does not exist). Workflows keep module dependencies warm with
``actions/cache`` steps of their own (see the shipped run-module workflow).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path

from workmill import clock
from workmill.cache.backend import (
    CacheBackend,
    CacheUnavailable,
    EntryInfo,
    EntryManifest,
    RestoredFile,
)
from workmill.errors import WorkmillError
from workmill.github._client import GithubClient, GithubError, GithubNotFound
from workmill.github._config import GithubSettings, github_settings, open_client

log = logging.getLogger("workmill.cache")

SAVE_REFUSED = (
    "cache_backend: github cannot save outputs from the CLI: cache content is only "
    "reachable through actions/cache inside a workflow job; this run is not cached"
)


class GithubCacheBackend(CacheBackend):
    """List and delete via ``/repos/{o}/{r}/actions/caches``; restore misses; save refuses."""

    name = "github"

    def __init__(self, client: GithubClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._base = f"repos/{repository}/actions/caches"
        self._warned = threading.Event()

    @classmethod
    def from_settings(cls, settings: GithubSettings) -> GithubCacheBackend:
        return cls(open_client(settings), settings.repository)

    @classmethod
    def from_repo(cls, repo) -> GithubCacheBackend:
        return cls.from_settings(github_settings(repo))

    def list_entries(self) -> list[EntryInfo]:
        """Every cache of the repository, one entry per key (refs merged: sizes summed)."""
        try:
            caches = list(self.client.paginate(self._base, key="actions_caches"))
        except (GithubError, GithubNotFound) as exc:
            raise CacheUnavailable(str(exc)) from None
        merged: dict[str, EntryInfo] = {}
        for c in caches:
            key = str(c.get("key", ""))
            if not key:
                continue
            size = int(c.get("size_in_bytes") or 0)
            created = _iso(c.get("created_at"))
            accessed = _iso(c.get("last_accessed_at")) or None
            prev = merged.get(key)
            if prev is not None:
                size += prev.size_bytes
                created = min(prev.created_at, created) if created else prev.created_at
                accessed = max(filter(None, (prev.last_accessed_at, accessed)), default=None)
            merged[key] = EntryInfo(key, size, created, accessed)
        return [merged[k] for k in sorted(merged)]

    def read_manifest(self, key: str) -> EntryManifest | None:
        return None

    def restore(self, key: str, dest_dir: Path) -> tuple[EntryManifest, list[RestoredFile]] | None:
        return None

    def save(self, manifest: EntryManifest, source_dir: Path) -> EntryInfo:
        if not self._warned.is_set():
            self._warned.set()
            log.warning("%s", SAVE_REFUSED)
        raise CacheUnavailable(SAVE_REFUSED)

    def delete(self, key: str) -> bool:
        """``DELETE .../actions/caches?key=KEY`` removes the key on every ref."""
        try:
            self.client.request("DELETE", self._base, params={"key": key})
        except GithubNotFound:
            return False
        except WorkmillError as exc:
            raise CacheUnavailable(str(exc)) from None
        return True

    def touch(self, key: str, at: datetime) -> None:
        """GitHub records accesses itself (``last_accessed_at``)."""


def _iso(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return clock.iso(clock.parse_iso(value))
    except WorkmillError:
        return ""
