"""``state_manifest.json``: what one published revision of the billing state is made of."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

from workmill.errors import StateError

SCHEMA_VERSION = 2  # 2: partitions name the segment release they live in (docs/schemas.md)
READABLE_VERSIONS = (1, 2)  # a version-1 state keeps every asset in the head release
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
    release: str = ""  # segment suffix of the state's tag ('' = the head release; state/layout.py)

    @property
    def group(self) -> str:
        return self.key.rsplit(".", 1)[0]

    @property
    def seq(self) -> int:
        return int(self.key.rsplit(".", 1)[1]) if "." in self.key else 0

    def json(self) -> str:
        """This entry as a manifest JSON object (plain strings skip the JSON encoder)."""
        k, a, h, r = self.key, self.asset, self.sha256, self.release
        if _PLAIN.fullmatch(f"{k}{a}{h}{r}"):
            where = f', "release": "{r}"' if r else ""
            return (
                f'{{"key": "{k}", "asset": "{a}", "sha256": "{h}", '
                f'"rows": {int(self.rows)}, "bytes": {int(self.bytes)}{where}}}'
            )
        doc = {"key": k, "asset": a, "sha256": h, "rows": self.rows, "bytes": self.bytes}
        return json.dumps({**doc, "release": r} if r else doc)


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

    def groups(self) -> dict[str, tuple[PartitionRef, ...]]:
        """Every partition group's chunks, in order."""
        return self._by_group

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
    only: frozenset[str] | None = None  # read with ``from_json(only=...)``: just these tables
    groups: frozenset[str] | None = None  # ... and just these partition groups of them

    def assets(self) -> set[str]:
        return {p.asset for t in self.tables.values() for p in t.partitions}

    def assets_by_release(self) -> dict[str, set[str]]:
        """Asset names per release suffix ('' = the head release)."""
        out: dict[str, set[str]] = {}
        for t in self.tables.values():
            for p in t.partitions:
                out.setdefault(p.release, set()).add(p.asset)
        return out

    @cached_property
    def release_of(self) -> dict[str, str]:
        """The release suffix of each asset this revision names."""
        return {p.asset: p.release for t in self.tables.values() for p in t.partitions}

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
    def from_json(
        cls,
        data: bytes,
        where: str,
        only: Collection[str] | None = None,
        groups: Collection[str] | None = None,
    ) -> Manifest:
        """Parse (and check) a manifest; with ``only``, just those tables, and with
        ``groups``, just their partitions of those groups.

        A reader of a few tables (``workmill usage``) need not decode the entries of
        every partition of history: ``to_json`` starts each table, and each partition,
        on a line of its own, so the wanted lines are cut out and decoded alone (a
        manifest laid out otherwise is decoded whole). A table read in part cannot be
        checked against its sha256; ``ledger verify`` reads it whole.
        """
        want = frozenset(only) if only is not None else None
        groups = frozenset(groups) if groups is not None else None
        try:
            doc = _selected(data, want, groups) if want is not None else None
            doc = doc or json.loads(data)
            if doc["schema_version"] not in READABLE_VERSIONS:
                raise StateError(
                    f"{where}: schema_version {doc['schema_version']}, this workmill reads "
                    f"{' and '.join(map(str, READABLE_VERSIONS))} (upgrade workmill)"
                )
            docs = {k: v for k, v in doc["tables"].items() if want is None or k in want}
            tables = {name: _table_ref(t, groups) for name, t in docs.items()}
            m = cls(
                int(doc["revision"]),
                doc["parent_revision"],
                str(doc["created_at"]),
                tables,
                only=want,
                groups=groups,
            )
            for name, t in docs.items() if groups is None else ():
                if t["sha256"] != m.tables[name].sha256 or int(t["rows"]) != m.tables[name].rows:
                    raise StateError(
                        f"{where}: table {name}: sha256/rows disagree with its partitions"
                    )
            return m
        except StateError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{where}: corrupt state manifest ({exc})") from exc


def _table_ref(t: dict[str, Any], groups: frozenset[str] | None) -> TableRef:
    parts = t["partitions"]
    if groups is not None:
        parts = [p for p in parts if p["key"].rsplit(".", 1)[0] in groups]
    return TableRef(
        bool(t["partitioned"]),
        tuple(
            [
                PartitionRef(
                    p["key"],
                    p["asset"],
                    p["sha256"],
                    int(p["rows"]),
                    int(p["bytes"]),
                    str(p.get("release", "")),
                )
                for p in parts
            ]
        ),
        tuple(t.get("columns", ())),
    )


_TABLES_OPEN = b'\n "tables": {\n'
_TABLE_START = b'\n  "'
_TABLES_CLOSE = b"\n }\n}"


def _selected(
    data: bytes, only: frozenset[str], groups: frozenset[str] | None
) -> dict[str, Any] | None:
    """The manifest document with only the ``only`` tables decoded (None: not ``to_json``'s layout).

    In ``to_json``'s output a line starting with two spaces and a quote opens a
    table, and each partition entry is a line starting with three spaces (JSON
    strings hold no newline). Tables and entries are found with ``bytes.find``,
    so what is not wanted is never split or decoded.
    """
    opened = data.find(_TABLES_OPEN)
    closed = data.rfind(_TABLES_CLOSE)
    if opened < 0 or closed < opened:
        return None
    doc = json.loads(data[:opened] + b'\n "tables": {}}')
    tables: dict[str, Any] = {}
    after = opened  # to_json writes tables sorted by name: each search goes on from the last
    for name in sorted(only):
        key = b"\n  " + json.dumps(name).encode() + b": "
        start = data.find(key, after, closed)
        if start < 0:
            start = data.find(key, opened, after)  # tables out of order (written by hand)
        if start < 0:
            continue
        after = start
        stop = data.find(_TABLE_START, start + 1, closed)
        text = data[start + len(key) : closed if stop < 0 else stop].rstrip().rstrip(b",")
        tables[name] = json.loads(_only_groups(text, groups) if groups is not None else text)
    doc["tables"] = tables
    return doc


def _only_groups(table_json: bytes, groups: frozenset[str]) -> bytes:
    """A table's JSON text with just the partition lines of ``groups``."""
    first, last = table_json.find(b"\n"), table_json.rfind(b"\n")
    if first < 0:
        return table_json  # no partitions: all on one line
    kept: list[bytes] = []
    for needle in sorted(f'"key": "{g}.'.encode() for g in groups):
        at = table_json.find(needle, first)
        while at >= 0:
            begin, end = table_json.rfind(b"\n", 0, at) + 1, table_json.find(b"\n", at)
            if end < 0:
                return table_json  # not to_json's layout: decode it whole (then filter)
            kept.append(table_json[begin:end].rstrip(b","))
            at = table_json.find(needle, end)
    return table_json[:first] + b"\n" + b",\n".join(kept) + table_json[last:]
