"""A release store that writes into a local directory and publishes later.

GitHub mode keeps tenant code away from write tokens (docs/architecture.md
"GitHub mode: who holds which token"): an execute shard runs with a read-only
token, so the work-order releases it produces cannot be uploaded there. With
``WORKMILL_STAGE_RELEASES=DIR`` the shard's store is a
:class:`StagingReleaseStore`: reads see the remote store plus what this job
staged, creations go to ``DIR/<tag>/<name>`` (create-if-absent against both),
and deletions of remote assets are recorded. The directory travels to the
settle job as a workflow artifact, where :func:`publish_staged` (``workmill
release publish DIR``, holding the write token, running no tenant code)
uploads each tag's items and its manifest last.

Publishing is idempotent, so a re-run of settle publishes nothing twice: an
item already present with the same bytes is kept, and a manifest already
published is never replaced (a manifest is the release's publish point).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from workmill.errors import NotFound, StateError
from workmill.fsio import atomic_write_bytes
from workmill.state.layout import SEGMENT_SEP
from workmill.state.releases import AssetExists, ReleaseStore, check_asset_name

MANIFEST_SUFFIX = "-manifest.json"
_ORDER = ".order.jsonl"  # creation order and deletions, one JSON object a line


class StagingReleaseStore(ReleaseStore):
    """Reads from ``remote`` and the staging dir; writes only to the staging dir.

    Tags in ``keep_remote`` (the billing state) are passed through untouched:
    a staging job must not write them, and the remote store refuses it loudly
    when the job's token cannot.
    """

    def __init__(self, remote: ReleaseStore, root: Path, keep_remote: set[str] = frozenset()):
        self.remote = remote
        self.root = Path(root)
        self.keep_remote = set(keep_remote)

    def __repr__(self) -> str:
        return f"StagingReleaseStore({self.remote!r}, {str(self.root)!r})"

    def _kept(self, tag: str) -> bool:
        """A ``keep_remote`` tag or one of its segment releases (``state.layout``)."""
        return tag.split(SEGMENT_SEP, 1)[0] in self.keep_remote

    def _dir(self, tag: str) -> Path:
        return self.root / check_asset_name(tag)

    def _log(self, tag: str, op: str, name: str) -> None:
        d = self._dir(tag)
        d.mkdir(parents=True, exist_ok=True)
        with (d / _ORDER).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"op": op, "name": name}) + "\n")

    def _deleted(self, tag: str) -> set[str]:
        return {e["name"] for e in read_order(self._dir(tag)) if e["op"] == "delete"}

    def tag_exists(self, tag: str) -> bool:
        return self._dir(tag).is_dir() or self.remote.tag_exists(tag)

    def list_tags(self) -> list[str]:
        staged = (
            {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        )
        return sorted(staged | set(self.remote.list_tags()))

    def create_tag(self, tag: str) -> None:
        if self._kept(tag):
            self.remote.create_tag(tag)
            return
        self._dir(tag).mkdir(parents=True, exist_ok=True)

    def _remote_assets(self, tag: str) -> set[str]:
        return set(self.remote.list_assets(tag)) if self.remote.tag_exists(tag) else set()

    def list_assets(self, tag: str) -> list[str]:
        if self._kept(tag):
            return self.remote.list_assets(tag)
        d = self._dir(tag)
        if not d.is_dir() and not self.remote.tag_exists(tag):
            raise NotFound(f"release tag {tag!r} does not exist")
        staged = (
            {p.name for p in d.iterdir() if not p.name.startswith(".")} if d.is_dir() else set()
        )
        return sorted((self._remote_assets(tag) - self._deleted(tag)) | staged)

    def read_asset(self, tag: str, name: str) -> bytes:
        path = self._dir(tag) / check_asset_name(name)
        if not self._kept(tag) and path.is_file():
            return path.read_bytes()
        return self.remote.read_asset(tag, name)

    def create_asset(self, tag: str, name: str, data: bytes) -> None:
        if self._kept(tag):
            self.remote.create_asset(tag, name, data)
            return
        if name in self.list_assets(tag):
            raise AssetExists(f"asset {name!r} already exists in release {tag!r}")
        atomic_write_bytes(self._dir(tag) / check_asset_name(name), data)
        self._log(tag, "create", name)

    def delete_asset(self, tag: str, name: str) -> None:
        if self._kept(tag):
            self.remote.delete_asset(tag, name)
            return
        path = self._dir(tag) / check_asset_name(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if name in self._remote_assets(tag):
            self._log(tag, "delete", name)

    def lock_path(self, tag: str) -> Path | None:
        return self.remote.lock_path(tag)


def read_order(tag_dir: Path) -> list[dict[str, str]]:
    path = tag_dir / _ORDER
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
            out.append({"op": str(entry["op"]), "name": check_asset_name(str(entry["name"]))})
        except (ValueError, KeyError, TypeError, StateError) as exc:
            raise StateError(f"{path}:{n}: unreadable staging record: {exc}") from None
    return out


@dataclass
class PublishReport:
    """What ``publish_staged`` did, per outcome: ``tag/name`` strings."""

    uploaded: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def publish_order(tag_dir: Path) -> list[str]:
    """Staged names in creation order, the manifest last (a release without one is incomplete)."""
    present = {p.name for p in tag_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
    seen: list[str] = []
    for e in read_order(tag_dir):
        if e["op"] == "create" and e["name"] in present and e["name"] not in seen:
            seen.append(e["name"])
    seen += sorted(present - set(seen))
    return [n for n in seen if not n.endswith(MANIFEST_SUFFIX)] + [
        n for n in seen if n.endswith(MANIFEST_SUFFIX)
    ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _publish_one(store: ReleaseStore, tag: str, path: Path, report: PublishReport) -> None:
    name = path.name
    try:
        store.create_asset_from_file(tag, name, path)
        report.uploaded.append(f"{tag}/{name}")
    except AssetExists:
        there = store.read_asset(tag, name)
        if _sha(there) != _sha(path.read_bytes()) and not name.endswith(MANIFEST_SUFFIX):
            raise StateError(
                f"release {tag!r} already holds a different {name!r}; not replaced"
            ) from None
        report.already_there.append(f"{tag}/{name}")


def publish_staged(store: ReleaseStore, root: Path) -> PublishReport:
    """Upload everything staged under ``root`` (one directory per tag) to ``store``."""
    report = PublishReport()
    root = Path(root)
    if not root.is_dir():
        return report
    for tag_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        tag = check_asset_name(tag_dir.name)
        store.create_tag(tag)
        remote = set(store.list_assets(tag))
        for e in read_order(tag_dir):
            if e["op"] == "delete" and e["name"] in remote:
                store.delete_asset(tag, e["name"])
                report.deleted.append(f"{tag}/{e['name']}")
        for name in publish_order(tag_dir):
            _publish_one(store, tag, tag_dir / name, report)
    return report
