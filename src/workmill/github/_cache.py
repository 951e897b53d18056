"""``GithubCacheBackend``: entries in the GitHub Actions cache.

Content goes through the Actions cache service v2, the one ``actions/cache``
4.x uses (``_cache_service``): an entry is one tar archive (``entry.json``,
then ``files/<path>``) saved under the cache key and a version that names
workmill's archive layout, and restored by exact key. That service is
reachable only inside a workflow job (``ACTIONS_RESULTS_URL`` and
``ACTIONS_RUNTIME_TOKEN``); elsewhere a lookup is a miss and a save is
refused with ``CacheUnavailable`` (the orchestrator then simply does not
cache). Listing and deleting use the REST API
(``/repos/{o}/{r}/actions/caches``), which is what ``workmill cache list``
and ``workmill cache prune`` need and which works anywhere with a token.

A restore trusts nothing in the archive: the manifest must be for the asked
key, every file the manifest names must be a regular member under
``files/`` with a safe relative path, and each sha256 is checked on the bytes
written to the destination.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import logging
import shutil
import tarfile
import tempfile
import threading
from datetime import datetime
from pathlib import Path, PurePosixPath

from workmill import clock
from workmill.cache.backend import (
    ENTRY_FORMAT,
    CacheBackend,
    CacheCorrupt,
    CacheUnavailable,
    EntryInfo,
    EntryManifest,
    RestoredFile,
)
from workmill.errors import WorkmillError
from workmill.github._cache_service import CacheServiceClient, entry_version
from workmill.github._client import GithubClient, GithubError, GithubNotFound
from workmill.github._config import GithubSettings, github_settings, open_client

log = logging.getLogger("workmill.cache")

MANIFEST = "entry.json"
FILES = "files/"
NO_SERVICE = (
    "cache_backend: github saves and restores only inside a workflow job (the Actions "
    "cache service); this run is not cached"
)
_BLOCK = 1 << 20


def _safe_rel(rel: str) -> str:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in {"", ".", ".."} for part in p.parts):
        raise CacheCorrupt(f"unsafe path {rel!r} in a cache entry")
    return rel


class GithubCacheBackend(CacheBackend):
    """Save/restore via the cache service; list/delete via the REST API."""

    name = "github"

    def __init__(
        self, client: GithubClient, repository: str, service: CacheServiceClient | None = None
    ) -> None:
        self.client = client
        self.repository = repository
        self.service = service
        self.version = entry_version(ENTRY_FORMAT)
        self._base = f"repos/{repository}/actions/caches"
        self._warned = threading.Event()
        self._lock = threading.Lock()
        self._tmp: Path | None = None
        self._archives: dict[str, Path] = {}

    @classmethod
    def from_settings(cls, settings: GithubSettings) -> GithubCacheBackend:
        return cls(open_client(settings), settings.repository, CacheServiceClient.from_env())

    @classmethod
    def from_repo(cls, repo) -> GithubCacheBackend:
        return cls.from_settings(github_settings(repo))

    # ------------------------------------------------------------ REST: list, delete
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

    def delete(self, key: str) -> bool:
        """``DELETE .../actions/caches?key=KEY`` removes the key on every ref."""
        with self._lock:
            self._archives.pop(key, None)
        try:
            self.client.request("DELETE", self._base, params={"key": key})
        except GithubNotFound:
            return False
        except WorkmillError as exc:
            raise CacheUnavailable(str(exc)) from None
        return True

    def touch(self, key: str, at: datetime) -> None:
        """The cache service records accesses itself (``last_accessed_at``)."""

    # ------------------------------------------------------------ service: save, restore
    def _workdir(self) -> Path:
        with self._lock:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="workmill-gh-cache-"))
                atexit.register(shutil.rmtree, self._tmp, True)
            return self._tmp

    def _unavailable(self) -> CacheUnavailable:
        if not self._warned.is_set():
            self._warned.set()
            log.warning("%s", NO_SERVICE)
        return CacheUnavailable(NO_SERVICE)

    def _archive(self, key: str) -> Path | None:
        """The entry's archive, downloaded once per process; None when there is none."""
        if self.service is None:
            return None
        with self._lock:
            known = self._archives.get(key)
        if known is not None and known.exists():
            return known
        url = self.service.lookup(key, self.version)
        if url is None:
            return None
        dest = Path(tempfile.mkstemp(prefix="entry-", suffix=".tar", dir=self._workdir())[1])
        self.service.download(url, dest)
        with self._lock:
            self._archives[key] = dest
        return dest

    def read_manifest(self, key: str) -> EntryManifest | None:
        archive = self._archive(key)
        if archive is None:
            return None
        try:
            with tarfile.open(archive, "r:") as tar:
                member = tar.extractfile(MANIFEST)
                if member is None:
                    raise KeyError(MANIFEST)
                manifest = EntryManifest.from_json(member.read(), f"cache {key[:12]}/{MANIFEST}")
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise CacheCorrupt(f"cache entry {key[:12]}: unreadable archive: {exc}") from None
        if manifest.key != key:
            raise CacheCorrupt(f"cache entry {key[:12]} holds the manifest of {manifest.key[:12]}")
        return manifest

    def restore(self, key: str, dest_dir: Path) -> tuple[EntryManifest, list[RestoredFile]] | None:
        manifest = self.read_manifest(key)
        if manifest is None:
            return None
        archive = self._archive(key)
        assert archive is not None
        placed: list[RestoredFile] = []
        try:
            with tarfile.open(archive, "r:") as tar:
                for f in manifest.files:
                    placed.append(self._extract(tar, f.path, f.size_bytes, f.sha256, dest_dir))
        except (CacheCorrupt, tarfile.TarError, KeyError, OSError) as exc:
            for r in placed:
                with contextlib.suppress(OSError):
                    r.path.unlink()
            if isinstance(exc, CacheCorrupt):
                raise
            raise CacheCorrupt(f"cache entry {key[:12]}: {exc}") from None
        return manifest, placed

    def _extract(
        self, tar: tarfile.TarFile, rel: str, size: int, sha: str, dest_dir: Path
    ) -> RestoredFile:
        member = tar.getmember(FILES + _safe_rel(rel))
        if not member.isreg():
            raise CacheCorrupt(f"{rel}: not a regular file in the cache entry")
        src = tar.extractfile(member)
        assert src is not None
        target = Path(dest_dir) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        h, n = hashlib.sha256(), 0
        with target.open("wb") as out:
            while block := src.read(_BLOCK):
                h.update(block)
                out.write(block)
                n += len(block)
        if n != size or h.hexdigest() != sha:
            target.unlink()
            raise CacheCorrupt(f"{rel}: size or sha256 differs from the entry manifest")
        return RestoredFile(target, rel, size, sha, "copy")

    def save(self, manifest: EntryManifest, source_dir: Path) -> EntryInfo:
        if self.service is None:
            raise self._unavailable()
        archive = Path(tempfile.mkstemp(prefix="save-", suffix=".tar", dir=self._workdir())[1])
        try:
            _write_archive(archive, manifest, Path(source_dir))
            reservation = self.service.reserve(manifest.key, self.version)
            if not reservation.ok:
                raise CacheUnavailable(
                    f"cache entry {manifest.key[:12]} not saved: "
                    f"{reservation.message or 'the service refused the reservation'}"
                )
            self.service.upload(reservation.upload_url, archive)
            self.service.finalize(manifest.key, self.version, archive.stat().st_size)
        finally:
            with contextlib.suppress(OSError):
                archive.unlink()
        return EntryInfo(
            manifest.key, manifest.size_bytes, manifest.created_at, None, manifest=manifest
        )


def _write_archive(path: Path, manifest: EntryManifest, source_dir: Path) -> None:
    """entry.json first, then every listed file, each re-hashed as it is read."""
    data = manifest.to_json().encode()
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for f in manifest.files:
            src = source_dir / _safe_rel(f.path)
            if src.is_symlink() or not src.is_file():
                raise CacheCorrupt(f"cannot cache {f.path}: not a regular file")
            info = tarfile.TarInfo(FILES + f.path)
            info.size = src.stat().st_size
            with src.open("rb") as fh:
                hashing = _Hashing(fh)
                tar.addfile(info, hashing)
            if info.size != f.size_bytes or hashing.hexdigest() != f.sha256:
                raise CacheCorrupt(f"{f.path} changed while it was being cached")


class _Hashing:
    """A file wrapper that hashes what tarfile reads through it."""

    def __init__(self, fh) -> None:
        self._fh = fh
        self._h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._h.update(data)
        return data

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _iso(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return clock.iso(clock.parse_iso(value))
    except WorkmillError:
        return ""
