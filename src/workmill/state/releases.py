"""The release-store seam: a tag is a set of named assets, as GitHub Releases allow.

Only what the GitHub Releases API can do is offered: create a tag, list its
assets, read one, create one *only under a free name*, delete one. There is no
rename and no atomic replace, so the commit protocol (``workmill.state.store``)
is built from create-if-absent alone. The ``local`` backend keeps a directory
per tag; a ``github`` backend implements the same class.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from workmill.errors import NotFound, StateError
from workmill.fsio import fsync_all, fsync_dir, fsync_dirs

_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
# GitHub: "Each file included in a release must be under 2 GiB" (docs/reference.md "GitHub mode")
MAX_ASSET_BYTES = 2 * 1024**3 - 1


class AssetExists(StateError):
    """An asset of that name is already in the tag (create-if-absent lost)."""


class ReleaseStore(ABC):
    """Named, immutable assets grouped under tags."""

    @abstractmethod
    def tag_exists(self, tag: str) -> bool: ...

    @abstractmethod
    def list_tags(self) -> list[str]:
        """Every tag in the store, sorted."""

    @abstractmethod
    def create_tag(self, tag: str) -> None:
        """Create the tag (no-op when it exists)."""

    @abstractmethod
    def list_assets(self, tag: str) -> list[str]:
        """Names of the complete assets of ``tag``, sorted."""

    @abstractmethod
    def read_asset(self, tag: str, name: str) -> bytes:
        """The bytes of one asset; ``NotFound`` when it does not exist."""

    @abstractmethod
    def create_asset(self, tag: str, name: str, data: bytes) -> None:
        """Create an asset under a free name; ``AssetExists`` when the name is taken."""

    def create_assets(self, tag: str, assets: Sequence[tuple[str, bytes]]) -> None:
        """``create_asset`` for each (name, bytes), in order; a backend that can make a
        batch durable at once overrides this. ``AssetExists`` at the first taken name."""
        for name, data in assets:
            self.create_asset(tag, name, data)

    def create_assets_in(self, assets: Sequence[tuple[str, str, bytes]]) -> None:
        """``create_assets`` for (tag, name, bytes) spread over several tags (each tag's
        in order): one commit of the billing state writes to its segment releases too."""
        by_tag: dict[str, list[tuple[str, bytes]]] = {}
        for tag, name, data in assets:
            by_tag.setdefault(tag, []).append((name, data))
        for tag, batch in by_tag.items():
            self.create_assets(tag, batch)

    @abstractmethod
    def delete_asset(self, tag: str, name: str) -> None:
        """Delete an asset (no-op when it is already gone)."""

    def lock_path(self, tag: str) -> Path | None:
        """A file to lock so writers on one machine take turns (None: the caller picks)."""
        return None

    def create_asset_from_file(self, tag: str, name: str, path: Path) -> None:
        """``create_asset`` from a file; backends that can stream override this."""
        check_asset_size(name, Path(path).stat().st_size)
        self.create_asset(tag, name, Path(path).read_bytes())

    def remote_ids(self, tag: str, names: list[str]) -> tuple[str, dict[str, str]]:
        """The backend's own ids of a release and of some of its assets ("" where it has none).

        Filled into ``github_releases_map.csv`` / ``github_assets_map.csv``;
        the local store has no such ids.
        """
        return "", {n: "" for n in names}


def check_asset_size(name: str, size: int) -> int:
    """Refuse, before any upload, an asset GitHub would refuse after it (2 GiB)."""
    if size > MAX_ASSET_BYTES:
        raise StateError(
            f"asset {name!r} is {size:,} bytes; a release asset must be under 2 GiB "
            f"({MAX_ASSET_BYTES + 1:,} bytes)"
        )
    return size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def check_asset_name(name: str) -> str:
    if not _ASSET_NAME.fullmatch(name):
        raise StateError(f"invalid asset name {name!r}")
    return name


class LocalReleaseStore(ReleaseStore):
    """A directory per tag; create-if-absent is a hard link of a fully written temp file.

    ``os.link`` fails when the name exists, and the linked file is complete and
    fsynced before it becomes visible, so a reader never sees a partial asset and
    a kill -9 leaves at worst a hidden temp file (removed by ``sweep_temp``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _tag_dir(self, tag: str) -> Path:
        check_asset_name(tag)
        return self.root / tag

    def tag_exists(self, tag: str) -> bool:
        return self._tag_dir(tag).is_dir()

    def list_tags(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def create_tag(self, tag: str) -> None:
        self._tag_dir(tag).mkdir(parents=True, exist_ok=True)
        fsync_dir(self.root)

    def list_assets(self, tag: str) -> list[str]:
        d = self._tag_dir(tag)
        if not d.is_dir():
            raise NotFound(f"release tag {tag!r} does not exist in {self.root}")
        return sorted(n for n in os.listdir(d) if not n.startswith("."))

    def read_asset(self, tag: str, name: str) -> bytes:
        path = self._tag_dir(tag) / check_asset_name(name)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"asset {name!r} not found in release {tag!r}") from exc
        except OSError as exc:
            raise StateError(f"cannot read asset {name!r} of {tag!r}: {exc}") from exc

    def create_asset(self, tag: str, name: str, data: bytes) -> None:
        self.create_assets(tag, [(name, data)])

    def create_assets(self, tag: str, assets: Sequence[tuple[str, bytes]]) -> None:
        self.create_assets_in([(tag, name, data) for name, data in assets])

    def create_assets_in(self, assets: Sequence[tuple[str, str, bytes]]) -> None:
        """Every asset written to a temp file and fsynced (all at once, whatever its tag:
        the filesystem commits them together), then each linked under its name, then each
        directory fsynced once: every asset is complete and durable before any name is
        visible."""
        dirs = {tag: self._tag_dir(tag) for tag, _, _ in assets}
        for tag, d in dirs.items():
            if not d.is_dir():
                raise NotFound(f"release tag {tag!r} does not exist in {self.root}")
        finals = [(tag, dirs[tag] / check_asset_name(name)) for tag, name, _ in assets]
        temps: list[str] = []
        try:
            fds = []
            try:
                for tag, _, data in assets:
                    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dirs[tag])
                    fds.append(fd)
                    temps.append(tmp)
                    _write_all(fd, data)
                fsync_all(fds)
            finally:
                for fd in fds:
                    os.close(fd)
            for tmp, (tag, final) in zip(temps, finals, strict=True):
                try:
                    os.link(tmp, final)
                except FileExistsError as exc:
                    msg = f"asset {final.name!r} already exists in release {tag!r}"
                    raise AssetExists(msg) from exc
        finally:
            for tmp in temps:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        fsync_dirs(list(dirs.values()))

    def delete_asset(self, tag: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._tag_dir(tag) / check_asset_name(name)).unlink()

    def lock_path(self, tag: str) -> Path | None:
        return self.root / f".{tag}.lock"

    def sweep_temp(self, tag: str, older_than_s: float = 600) -> None:
        """Remove temp files left by writers killed mid-upload."""
        d = self._tag_dir(tag)
        cutoff = time.time() - older_than_s
        for p in d.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                if p.stat().st_mtime < cutoff:
                    p.unlink()
