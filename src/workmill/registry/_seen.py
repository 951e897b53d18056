"""What this platform repo remembers of each registry: the newest index it accepted.

A signature proves who wrote an index, not that it is the newest one: a registry,
a stale mirror or anyone on the download path could serve an older, validly
signed index and so hide a newer version or a withdrawn one. Every signed index
carries a revision (publishers only ever raise it) and the time it was signed;
the consumer keeps the highest revision it accepted, per registry, in
``.workmill/registry/`` (local state of the repo, never the billing state), and
refuses an index older than that, or a second, different index under the same
revision. ``workmill registry forget`` clears the record deliberately, e.g. after a
registry was rebuilt from scratch (docs/reference.md "Registry, tiers, licences,
quotas, usage").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from workmill import clock
from workmill.fsio import atomic_write_text, sha256_bytes
from workmill.registry._index import Index, RegistryRefused

SEEN_DIR = ".workmill/registry"


@dataclass(frozen=True)
class Seen:
    """The newest index accepted from one registry."""

    registry: str
    revision: int
    updated_at: str
    index_sha256: str
    accepted_at: str


def stale_reason(seen: Seen | None, index: Index, index_sha256: str) -> str | None:
    """Why ``index`` must not be accepted after ``seen`` (None: it may)."""
    if seen is None or index.revision > seen.revision:
        return None
    if index.revision < seen.revision:
        return (
            f"index revision {index.revision} (signed {index.updated_at}) is older than "
            f"revision {seen.revision} (signed {seen.updated_at}) already accepted here: "
            "a rollback or a stale copy could hide newer versions"
        )
    if index_sha256 != seen.index_sha256:
        return (
            f"index revision {index.revision} differs from the revision {seen.revision} "
            "already accepted here (two different indexes signed with one revision)"
        )
    return None


class IndexMemory:
    """The record of one registry in one platform repo (``.workmill/registry/<id>.json``)."""

    def __init__(self, root: Path, identity: str, reset_command: str) -> None:
        self.identity = identity
        self.reset_command = reset_command
        name = sha256_bytes(identity.encode())[:24]
        self.path = root / SEEN_DIR / f"{name}.json"
        self.rel = f"{SEEN_DIR}/{name}.json"

    def _lock(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path.with_suffix(".lock")), timeout=60)

    def read(self) -> Seen | None:
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            seen = Seen(**data)
            if not isinstance(seen.revision, int) or seen.registry != self.identity:
                raise ValueError
        except (ValueError, TypeError):
            raise RegistryRefused(
                f"{self.rel}: not a registry record this workmill wrote; "
                f"check it, then clear it with: {self.reset_command}"
            ) from None
        return seen

    def accept(self, index: Index, data: bytes, where: str) -> None:
        """Refuse ``index`` if it is older than the one accepted before; else remember it."""
        digest = sha256_bytes(data)
        with self._lock():
            seen = self.read()
            why = stale_reason(seen, index, digest)
            if why is not None:
                raise RegistryRefused(
                    f"{where}: {why}; refused (if the registry was deliberately rebuilt: "
                    f"{self.reset_command})"
                )
            if seen is not None and seen.revision == index.revision:
                return
            record = Seen(self.identity, index.revision, index.updated_at, digest, clock.now_iso())
            atomic_write_text(self.path, json.dumps(asdict(record), indent=2) + "\n")

    def forget(self) -> tuple[bool, Seen | None]:
        """Clear the record: (whether there was one, what it said when readable)."""
        with self._lock():
            existed = self.path.is_file()
            try:
                seen = self.read()
            except RegistryRefused:  # a damaged record is cleared all the same
                seen = None
            self.path.unlink(missing_ok=True)
        return existed, seen
