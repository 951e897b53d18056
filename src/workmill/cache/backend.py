"""The seam between workmill and a cache store, shaped like the GitHub Actions cache.

The Actions cache can list entries (key, size, created, last accessed),
restore by key, save a new key and delete; nothing else. Every backend offers
exactly that, so the ``local`` backend and a later ``github`` one are
interchangeable and the service, prune and CLI never know which they use.

An entry is immutable once saved. It carries an :class:`EntryManifest`
(every file's relative path, size and sha256, plus tenant, module, version
and expiry) so a restore can prove it is handing back exactly what was saved
and for whom.
"""

from __future__ import annotations

import abc
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from workmill import clock
from workmill.errors import WorkmillError

ENTRY_FORMAT = "workmill-cache-entry-v1"
LEFTOVER_AGE_S = 24 * 3600  # a save in progress is never this old; older temp dirs are debris


class CacheError(WorkmillError):
    """The cache cannot do what was asked (unwritable directory, bad outputs, ...)."""


class CacheUnavailable(CacheError):
    """The cache store cannot be used at all (directory missing, not writable, ...)."""


class CacheCorrupt(CacheError):
    """An entry failed verification (hash mismatch, missing file, bad manifest)."""


@dataclass(frozen=True)
class EntryFile:
    """One file of an entry: POSIX path relative to the outputs dir, size, sha256."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class EntryManifest:
    """What an entry holds and whom it belongs to (``entry.json`` in the local backend)."""

    key: str
    tenant_id: str
    module_id: str
    module_version: str
    created_at: str
    expires_at: str
    retention_days: int
    files: tuple[EntryFile, ...]
    format: str = ENTRY_FORMAT

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    def is_expired(self, now: datetime) -> bool:
        """Expired at ``expires_at`` exactly: an entry is live strictly before it."""
        return clock.parse_iso(self.expires_at) <= now

    def to_json(self) -> str:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        data["size_bytes"] = self.size_bytes
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "entry.json") -> EntryManifest:
        """Parse and check an entry manifest; raises CacheCorrupt naming what is wrong."""
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
                raise ValueError(f"format is not {ENTRY_FORMAT!r}")
            files = tuple(
                EntryFile(str(f["path"]), int(f["size_bytes"]), str(f["sha256"]))
                for f in data["files"]
            )
            manifest = cls(
                key=str(data["key"]),
                tenant_id=str(data["tenant_id"]),
                module_id=str(data["module_id"]),
                module_version=str(data["module_version"]),
                created_at=str(data["created_at"]),
                expires_at=str(data["expires_at"]),
                retention_days=int(data["retention_days"]),
                files=files,
            )
            clock.parse_iso(manifest.created_at)
            clock.parse_iso(manifest.expires_at)
        except (ValueError, KeyError, TypeError, WorkmillError) as exc:
            raise CacheCorrupt(f"{where}: invalid entry manifest: {exc}") from exc
        return manifest


@dataclass(frozen=True)
class EntryInfo:
    """One entry as the backend lists it (the Actions cache's list shape).

    ``manifest`` is None when the backend cannot read it (a corrupt local entry,
    or a remote backend that only lists keys); such an entry can still be
    registered and pruned.
    """

    key: str
    size_bytes: int
    created_at: str
    last_accessed_at: str | None = None
    manifest: EntryManifest | None = field(default=None, compare=False)
    problem: str | None = None


@dataclass(frozen=True)
class RestoredFile:
    """A file put in place by a restore: where it is now, and what it must contain."""

    path: Path
    rel: str
    size_bytes: int
    sha256: str
    method: str  # reflink | hardlink | copy


class CacheBackend(abc.ABC):
    """List, restore, save, delete: the whole interface (see module doc)."""

    name: str = "abstract"

    @abc.abstractmethod
    def list_entries(self) -> list[EntryInfo]:
        """Every entry the store holds, sorted by key; never raises for one bad entry."""

    @abc.abstractmethod
    def read_manifest(self, key: str) -> EntryManifest | None:
        """The entry's manifest, None when there is no such entry; CacheCorrupt if unreadable."""

    @abc.abstractmethod
    def restore(self, key: str, dest_dir: Path) -> tuple[EntryManifest, list[RestoredFile]] | None:
        """Put the entry's files under ``dest_dir`` after verifying every sha256.

        Returns None when there is no entry; raises CacheCorrupt when the entry
        exists but does not verify (nothing is left in ``dest_dir`` then), and
        CacheUnavailable when the store cannot be read.
        """

    @abc.abstractmethod
    def save(self, manifest: EntryManifest, source_dir: Path) -> EntryInfo:
        """Store the files the manifest lists from ``source_dir``, all or nothing."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove an entry; False when there was none."""

    @abc.abstractmethod
    def touch(self, key: str, at: datetime) -> None:
        """Record an access (the Actions cache does this itself on restore)."""

    def leftovers(self, older_than_s: float = LEFTOVER_AGE_S) -> list[tuple[str, int]]:
        """Debris of interrupted saves (name, bytes) older than ``older_than_s``; none by default."""
        return []

    def remove_leftovers(self, older_than_s: float = LEFTOVER_AGE_S) -> list[str]:
        """Remove what :meth:`leftovers` lists; returns the names removed."""
        return []
