"""``state_manifest.json``: what one published revision of the billing state is made of."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

from workmill.errors import StateError

SCHEMA_VERSION = 1
MANIFEST_PREFIX = "manifest-r"
_MANIFEST = re.compile(r"manifest-r(\d{9})\.json")
_TABLE_ASSET = re.compile(r"t-r(\d{9})-[0-9A-Za-z]+-.+\.csv")
_PLAIN = re.compile(r"[A-Za-z0-9._-]*")  # JSON-encodes as itself between quotes


def manifest_asset(revision: int) -> str:
    """The asset whose creation publishes ``revision`` (two racers collide on it)."""
    return f"{MANIFEST_PREFIX}{revision:09d}.json"


def manifest_revision(asset: str) -> int | None:
    m = _MANIFEST.fullmatch(asset)
    return int(m.group(1)) if m else None


def table_asset(revision: int, nonce: str, table: str, key: str) -> str:
    stem = table.removesuffix(".csv")
    return f"t-r{revision:09d}-{nonce}-{stem}{'--' + key if key else ''}.csv"


def table_asset_revision(asset: str) -> int | None:
    m = _TABLE_ASSET.fullmatch(asset)
    return int(m.group(1)) if m else None


class PartitionRef(NamedTuple):
    """One stored chunk of a table: ``key`` is ``<group>.<seq>`` ('' for a whole table).

    A tuple, not a dataclass: a manifest of a long history holds thousands, and
    building them was most of the cost of reading one.
    """

    key: str
    asset: str
    sha256: str
    rows: int
    bytes: int

    @property
    def group(self) -> str:
        return self.key.rsplit(".", 1)[0]

    @property
    def seq(self) -> int:
        return int(self.key.rsplit(".", 1)[1]) if "." in self.key else 0

    def json(self) -> str:
        """This entry as a manifest JSON object (plain strings skip the JSON encoder)."""
        k, a, h = self.key, self.asset, self.sha256
        if _PLAIN.fullmatch(f"{k}{a}{h}"):
            return (
                f'{{"key": "{k}", "asset": "{a}", "sha256": "{h}", '
                f'"rows": {int(self.rows)}, "bytes": {int(self.bytes)}}}'
            )
        return json.dumps(
            {"key": k, "asset": a, "sha256": h, "rows": self.rows, "bytes": self.bytes}
        )


@dataclass(frozen=True)
class TableRef:
    """A table of the revision: its partitions, total rows, and its sha256.

    An unpartitioned table's sha256 is that of its one CSV file; a partitioned
    table's is the sha256 of its partition list (``key sha256 rows`` lines, sorted
    by key), so it changes whenever any partition does.
    """

    partitioned: bool
    partitions: tuple[PartitionRef, ...]
    columns: tuple[str, ...] = ()

    @cached_property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @cached_property
    def sha256(self) -> str:
        if not self.partitioned:
            return self.partitions[0].sha256 if self.partitions else hashlib.sha256(b"").hexdigest()
        return partition_root(self.partitions)

    @cached_property
    def _by_group(self) -> dict[str, tuple[PartitionRef, ...]]:
        out: dict[str, list[PartitionRef]] = {}
        for p in self.partitions:
            out.setdefault(p.group, []).append(p)
        return {g: tuple(sorted(ps, key=lambda p: p.seq)) for g, ps in out.items()}

    @cached_property
    def partitions_json(self) -> str:
        """The manifest's JSON list of the partitions (kept: most tables are carried over unchanged)."""
        parts = ",\n   ".join(p.json() for p in sorted(self.partitions))
        return f"[\n   {parts}\n  ]" if parts else "[]"

    def group_partitions(self, group: str) -> tuple[PartitionRef, ...]:
        """The chunks of one partition group, in order (a lookup, not a scan of every chunk)."""
        return self._by_group.get(group, ())


def partition_root(parts: tuple[PartitionRef, ...]) -> str:
    lines = "".join(f"{p.key} {p.sha256} {p.rows}\n" for p in sorted(parts))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """One revision: schema version, revision, parent, creation time, tables."""

    revision: int
    parent_revision: int | None
    created_at: str
    tables: dict[str, TableRef] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def assets(self) -> set[str]:
        return {p.asset for t in self.tables.values() for p in t.partitions}

    def with_table(self, name: str, ref: TableRef) -> Manifest:
        return replace(self, tables={**self.tables, name: ref})

    def to_json(self) -> bytes:
        """Indented JSON with one line per partition.

        Built by hand because ``json.dumps(indent=...)`` runs the pure-Python encoder,
        which made writing a manifest of a large history the slowest step of a commit.
        """
        tables = sorted(self.tables.items())
        out = [
            "{",
            f' "schema_version": {json.dumps(self.schema_version)},',
            f' "revision": {json.dumps(self.revision)},',
            f' "parent_revision": {json.dumps(self.parent_revision)},',
            f' "created_at": {json.dumps(self.created_at)},',
            ' "tables": {',
        ]
        for i, (name, t) in enumerate(tables):
            head = json.dumps(
                {
                    "sha256": t.sha256,
                    "rows": t.rows,
                    "partitioned": t.partitioned,
                    "columns": list(t.columns),
                }
            )[:-1]
            body = t.partitions_json
            comma = "," if i < len(tables) - 1 else ""
            out.append(f'  {json.dumps(name)}: {head}, "partitions": {body}}}{comma}')
        out += [" }", "}"]
        return ("\n".join(out) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        try:
            doc = json.loads(data)
            if doc["schema_version"] != SCHEMA_VERSION:
                raise StateError(
                    f"{where}: schema_version {doc['schema_version']}, this workmill reads {SCHEMA_VERSION}"
                )
            tables = {
                name: TableRef(
                    bool(t["partitioned"]),
                    tuple(
                        [
                            PartitionRef(
                                p["key"], p["asset"], p["sha256"], int(p["rows"]), int(p["bytes"])
                            )
                            for p in t["partitions"]
                        ]
                    ),
                    tuple(t.get("columns", ())),
                )
                for name, t in doc["tables"].items()
            }
            m = cls(int(doc["revision"]), doc["parent_revision"], str(doc["created_at"]), tables)
            for name, t in doc["tables"].items():
                if t["sha256"] != m.tables[name].sha256 or int(t["rows"]) != m.tables[name].rows:
                    raise StateError(
                        f"{where}: table {name}: sha256/rows disagree with its partitions"
                    )
            return m
        except StateError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{where}: corrupt state manifest ({exc})") from exc
