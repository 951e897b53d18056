"""Where a registry lives: a plain directory, or a release of the configured store.

A directory holds ``index.json``, ``index.json.sig`` and the archives; writers
take a file lock and replace each file atomically. A release cannot replace an
asset, so there each index revision is a new pair of assets,
``index-rNNNNNNNNN.json.sig`` then ``index-rNNNNNNNNN.json``: creating the
``.json`` publishes the revision, and two publishers racing for one revision
collide on its name (the loser retries on the new head). Readers take the newest
``.json``; its signature asset was created before it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path

from filelock import FileLock

from workmill.errors import NotFound, StateConflict
from workmill.fsio import atomic_write_bytes
from workmill.state.releases import AssetExists, ReleaseStore

INDEX = "index.json"
SIG_SUFFIX = ".sig"
_REV = re.compile(r"index-r(\d{9})\.json")
KEEP_INDEX_REVISIONS = 5


class RegistryStorage(ABC):
    where: str  # for messages
    identity: str  # names this registry in the consumer's memory (_seen.py)
    reset_command: str  # the command that clears that memory

    @abstractmethod
    def read_index(self) -> tuple[bytes | None, bytes | None]:
        """(index bytes, signature bytes); (None, None) for an empty registry."""

    @abstractmethod
    def write_index(self, data: bytes, sig: bytes, revision: int) -> None:
        """Publish ``revision`` (StateConflict when another publisher got there first)."""

    @abstractmethod
    def read_archive(self, name: str) -> bytes: ...

    @abstractmethod
    def write_archive(self, name: str, data: bytes) -> None:
        """Store an archive; the same name with the same bytes again is a no-op."""

    def lock(self):  # a context manager: writers on one machine take turns
        import contextlib

        return contextlib.nullcontext()


class DirectoryRegistry(RegistryStorage):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)
        self.identity = f"directory {root.resolve()}"
        self.reset_command = f"workmill registry forget --registry {root}"

    def read_index(self) -> tuple[bytes | None, bytes | None]:
        idx, sig = self.root / INDEX, self.root / (INDEX + SIG_SUFFIX)
        if not idx.is_file():
            if not self.root.is_dir():
                raise NotFound(f"registry {self.root}: no such directory")
            return None, sig.read_bytes() if sig.is_file() else None
        return idx.read_bytes(), sig.read_bytes() if sig.is_file() else None

    def write_index(self, data: bytes, sig: bytes, revision: int) -> None:
        for name, body in ((INDEX + SIG_SUFFIX, sig), (INDEX, data)):
            atomic_write_bytes(self.root / name, body)
            (self.root / name).chmod(0o644)  # a registry folder is meant to be served

    def read_archive(self, name: str) -> bytes:
        path = self.root / name
        if not path.is_file():
            raise NotFound(f"registry {self.root}: archive {name} is missing")
        return path.read_bytes()

    def write_archive(self, name: str, data: bytes) -> None:
        path = self.root / name
        if path.is_file() and path.read_bytes() == data:
            return
        atomic_write_bytes(path, data)
        path.chmod(0o644)

    def lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=120)


class ReleaseRegistry(RegistryStorage):
    def __init__(self, store: ReleaseStore, tag: str, store_identity: str = "") -> None:
        self.store, self.tag = store, tag
        self.where = f"release {tag}"
        self.identity = f"{store_identity or type(store).__name__} release {tag}"
        self.reset_command = "workmill registry forget"

    def _revisions(self) -> tuple[list[int], set[str]]:
        if not self.store.tag_exists(self.tag):
            return [], set()
        names = set(self.store.list_assets(self.tag))
        revs = sorted(int(m.group(1)) for n in names if (m := _REV.fullmatch(n)))
        return revs, names

    def read_index(self) -> tuple[bytes | None, bytes | None]:
        revs, names = self._revisions()
        if not revs:
            return None, None
        name = f"index-r{revs[-1]:09d}.json"
        sig = (
            self.store.read_asset(self.tag, name + SIG_SUFFIX)
            if name + SIG_SUFFIX in names
            else None
        )
        return self.store.read_asset(self.tag, name), sig

    def write_index(self, data: bytes, sig: bytes, revision: int) -> None:
        self.store.create_tag(self.tag)
        name = f"index-r{revision:09d}.json"
        try:
            self.store.create_asset(self.tag, name + SIG_SUFFIX, sig)
            self.store.create_asset(self.tag, name, data)
        except AssetExists as exc:
            if name not in self.store.list_assets(self.tag):
                # a publisher killed between its two uploads left a signature alone
                self.store.delete_asset(self.tag, name + SIG_SUFFIX)
            raise StateConflict(
                f"registry {self.tag}: revision {revision} was published by another publisher"
            ) from exc
        revs, _ = self._revisions()
        for old in revs[:-KEEP_INDEX_REVISIONS]:
            self.store.delete_asset(self.tag, f"index-r{old:09d}.json")
            self.store.delete_asset(self.tag, f"index-r{old:09d}.json{SIG_SUFFIX}")

    def read_archive(self, name: str) -> bytes:
        try:
            return self.store.read_asset(self.tag, name)
        except NotFound as exc:
            raise NotFound(f"registry {self.tag}: archive {name} is missing") from exc

    def write_archive(self, name: str, data: bytes) -> None:
        self.store.create_tag(self.tag)
        try:
            self.store.create_asset(self.tag, name, data)
        except AssetExists:
            if self.store.read_asset(self.tag, name) != data:
                raise
