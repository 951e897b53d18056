"""The ``local`` cache backend: one directory per entry under ``local_cache_dir``.

Layout (see docs/schemas.md)::

    <local_cache_dir>/entries/<key>/entry.json      manifest, written last
    <local_cache_dir>/entries/<key>/files/<path>    the outputs, mode 0444
    <local_cache_dir>/tmp/                          saves in progress, trash
    <local_cache_dir>/deps/<module_id>/<tenant>/    WM_CACHE_DIR (not entries)

Atomicity: a save builds the whole entry in ``tmp/`` (files fsynced, then
``entry.json``), and publishes it with one ``rename`` into ``entries/``. A
crash leaves at most a directory in ``tmp/``, which is never listed or served.

Restores verify every file's sha256 *after* it is placed (so what is checked
is exactly what the caller gets), and place large files by reflink, else hard
link, else copy. Entry files are read-only (0444) so a module that writes into
a hard-linked restored file fails instead of corrupting the entry; a process
running as root ignores that mode, and then the next restore's verification
finds the damage and reports a miss, never wrong data.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from workmill import clock
from workmill.cache.backend import (
    LEFTOVER_AGE_S,
    CacheBackend,
    CacheCorrupt,
    CacheError,
    CacheUnavailable,
    EntryInfo,
    EntryManifest,
    RestoredFile,
)
from workmill.fsio import fsync_dir

ENTRIES = "entries"
TMP = "tmp"
DEPS = "deps"
MANIFEST = "entry.json"
FILES = "files"
LINK_MIN_BYTES = 64 * 1024  # smaller files are copied: cheap, and fully isolated
_KEY = re.compile(r"[0-9a-f]{64}")
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_CHUNK = 1 << 20


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise CacheError(f"{key!r} is not a cache key (64 lower-case hex characters)")
    return key


def _check_rel(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or any(part in {"", ".", ".."} for part in p.parts):
        raise CacheError(f"{rel!r} is not a safe relative path inside an entry")
    return p


def _tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (or of ``path`` itself)."""
    if not path.is_dir():
        return path.lstat().st_size
    return sum(q.lstat().st_size for q in path.rglob("*") if q.is_file() and not q.is_symlink())


def _hash_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


def _reflink(src: Path, dst: Path) -> bool:
    """Copy-on-write clone (btrfs, xfs): instant and fully isolated; False if unsupported."""
    if sys.platform != "linux":
        return False
    import fcntl

    try:
        with src.open("rb") as s, dst.open("xb") as d:
            fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
        return True
    except OSError:
        with contextlib.suppress(OSError):
            dst.unlink()
        return False


def place_file(src: Path, dst: Path, *, allow_link: bool = True) -> str:
    """Put ``src`` at ``dst`` as cheaply as the filesystem allows; returns the method."""
    if allow_link and src.stat().st_size >= LINK_MIN_BYTES:
        if _reflink(src, dst):
            return "reflink"
        try:
            os.link(src, dst)
            return "hardlink"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copyfile(src, dst)
    return "copy"


def _copy_hashing(src: Path, dst: Path) -> tuple[int, str]:
    """Copy and hash in one pass, fsyncing ``dst``: the save reads its source once."""
    h = hashlib.sha256()
    size = 0
    with src.open("rb") as s, dst.open("xb") as d:
        while block := s.read(_CHUNK):
            h.update(block)
            d.write(block)
            size += len(block)
        d.flush()
        os.fsync(d.fileno())
    return size, h.hexdigest()


class LocalCacheBackend(CacheBackend):
    """Entries as directories on this machine (see module doc)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def entries_dir(self) -> Path:
        return self.root / ENTRIES

    @property
    def tmp_dir(self) -> Path:
        return self.root / TMP

    def entry_dir(self, key: str) -> Path:
        return self.entries_dir / _check_key(key)

    # ------------------------------------------------------------ helpers
    def _ensure_writable(self) -> None:
        try:
            self.entries_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.tmp_dir, prefix=".probe."):
                pass
        except OSError as exc:
            raise CacheUnavailable(
                f"cache directory {self.root} is not writable: {exc.strerror or exc}"
                " (set local_cache_dir in workmill.yml to a writable directory)"
            ) from exc

    def _trash(self, path: Path) -> None:
        """Move a directory out of ``entries/`` in one rename, then remove it."""
        trash = Path(tempfile.mkdtemp(prefix="trash.", dir=self.tmp_dir))
        os.rename(path, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------ interface
    def list_entries(self) -> list[EntryInfo]:
        if not self.entries_dir.is_dir():
            return []
        try:
            children = sorted(self.entries_dir.iterdir())
        except OSError as exc:
            raise CacheUnavailable(f"cannot list {self.entries_dir}: {exc.strerror}") from exc
        out = []
        for d in children:
            if not d.is_dir() or not _KEY.fullmatch(d.name):
                continue
            out.append(self._info(d))
        return out

    def _info(self, d: Path) -> EntryInfo:
        mpath = d / MANIFEST
        try:
            manifest = EntryManifest.from_json(mpath.read_bytes(), str(mpath))
            if manifest.key != d.name:
                raise CacheCorrupt(f"{mpath}: key {manifest.key} does not match its directory")
            accessed = clock.iso(datetime.fromtimestamp(mpath.stat().st_mtime, UTC))
            return EntryInfo(d.name, manifest.size_bytes, manifest.created_at, accessed, manifest)
        except (OSError, CacheCorrupt) as exc:
            size = sum(p.stat().st_size for p in d.rglob("*") if p.is_file())
            created = clock.iso(datetime.fromtimestamp(d.stat().st_mtime, UTC))
            problem = str(exc) if isinstance(exc, CacheCorrupt) else f"{mpath}: {exc.strerror}"
            return EntryInfo(d.name, size, created, None, None, problem)

    def read_manifest(self, key: str) -> EntryManifest | None:
        mpath = self.entry_dir(key) / MANIFEST
        try:
            data = mpath.read_bytes()
        except FileNotFoundError:
            if self.entry_dir(key).is_dir():
                raise CacheCorrupt(f"{mpath}: entry has no manifest") from None
            return None
        except NotADirectoryError:
            return None
        except OSError as exc:
            raise CacheUnavailable(f"cannot read {mpath}: {exc.strerror}") from exc
        manifest = EntryManifest.from_json(data, str(mpath))
        if manifest.key != key:
            raise CacheCorrupt(f"{mpath}: records key {manifest.key}, not {key}")
        return manifest

    def restore(self, key: str, dest_dir: Path) -> tuple[EntryManifest, list[RestoredFile]] | None:
        manifest = self.read_manifest(key)
        if manifest is None:
            return None
        files_dir = self.entry_dir(key) / FILES
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.restore.", dir=dest_dir.parent))
        try:
            placed: list[RestoredFile] = []
            for f in manifest.files:
                rel = _check_rel(f.path)
                src = files_dir / rel
                tmp = staging / rel
                tmp.parent.mkdir(parents=True, exist_ok=True)
                try:
                    method = place_file(src, tmp)
                except FileNotFoundError:
                    raise CacheCorrupt(f"entry {key[:12]}: file {f.path} is missing") from None
                size, digest = _hash_file(tmp)
                if size != f.size_bytes or digest != f.sha256:
                    raise CacheCorrupt(
                        f"entry {key[:12]}: file {f.path} does not match its manifest "
                        f"(size {size} vs {f.size_bytes}, sha256 {digest[:12]} vs {f.sha256[:12]})"
                    )
                placed.append(RestoredFile(dest_dir / rel, f.path, size, digest, method))
            for f, r in zip(manifest.files, placed, strict=True):
                r.path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / _check_rel(f.path), r.path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest, placed

    def save(self, manifest: EntryManifest, source_dir: Path) -> EntryInfo:
        key = _check_key(manifest.key)
        self._ensure_writable()
        work = Path(tempfile.mkdtemp(prefix=f"save.{key[:12]}.", dir=self.tmp_dir))
        try:
            entry = work / "entry"
            files_dir = entry / FILES
            files_dir.mkdir(parents=True)
            for f in manifest.files:
                rel = _check_rel(f.path)
                src = Path(source_dir) / rel
                if src.is_symlink() or not src.is_file():
                    raise CacheError(f"cannot cache {src}: not a regular file")
                dst = files_dir / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                size, digest = _copy_hashing(src, dst)
                if size != f.size_bytes or digest != f.sha256:
                    raise CacheError(f"cannot cache {src}: it changed while being saved")
                os.chmod(dst, 0o444)
            for d in sorted({p.parent for p in files_dir.rglob("*")} | {files_dir}):
                fsync_dir(d)
            mpath = entry / MANIFEST
            with mpath.open("x", encoding="utf-8") as fh:
                fh.write(manifest.to_json())
                fh.flush()
                os.fsync(fh.fileno())
            ts = clock.parse_iso(manifest.created_at).timestamp()
            os.utime(mpath, (ts, ts))
            fsync_dir(entry)
            target = self.entry_dir(key)
            if target.exists():
                self._trash(target)  # an expired or corrupt entry is replaced, never merged
            try:
                os.rename(entry, target)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # another process saved the same key meanwhile: keep theirs
            fsync_dir(self.entries_dir)
        except OSError as exc:
            raise CacheUnavailable(
                f"cannot save cache entry in {self.root}: {exc.strerror or exc}"
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return EntryInfo(key, manifest.size_bytes, manifest.created_at, None, manifest)

    def delete(self, key: str) -> bool:
        target = self.entry_dir(key)
        if not target.exists():
            return False
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self._trash(target)
        except OSError as exc:
            raise CacheUnavailable(f"cannot delete {target}: {exc.strerror or exc}") from exc
        return True

    def leftovers(self, older_than_s: float = LEFTOVER_AGE_S) -> list[tuple[str, int]]:
        """Temp dirs of crashed saves and deletes. Age is real file age (``time.time``),
        not the business clock: WORKMILL_NOW must never make a live save look stale."""
        if not self.tmp_dir.is_dir():
            return []
        cutoff = time.time() - older_than_s
        out = []
        for p in sorted(self.tmp_dir.iterdir()):
            try:
                if p.lstat().st_mtime >= cutoff:
                    continue
                size = _tree_bytes(p)
            except OSError:
                continue
            out.append((p.name, size))
        return out

    def remove_leftovers(self, older_than_s: float = LEFTOVER_AGE_S) -> list[str]:
        removed = []
        for name, _ in self.leftovers(older_than_s):
            p = self.tmp_dir / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
            if not p.exists():
                removed.append(name)
        return removed

    def touch(self, key: str, at: datetime) -> None:
        ts = at.timestamp()
        with contextlib.suppress(OSError):  # an access stamp is advisory
            os.utime(self.entry_dir(key) / MANIFEST, (ts, ts))
