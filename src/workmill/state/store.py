"""The billing-state commit protocol on top of a ``ReleaseStore`` (docs/reference.md "Billing rules").

A revision is published by *creating* its manifest asset ``manifest-rNNNNNNNNN.json``;
every table asset it names was written before, under a revision- and
writer-stamped name. Two writers racing for the same revision collide on the
manifest name and the loser gets ``StateConflict``; a reader only follows
published manifests, so it never sees half a commit; a writer killed before
the manifest leaves only unreferenced assets, which garbage collection removes.
Append-only tables are stored in partitions (month of commit, split into
chunks of at most ``CHUNK_BYTES``); a commit rewrites only the small tail chunk
its new rows land in, compacting a full tail into the chunk before it now and
then (``workmill.state.chunking``), so its cost does not grow with history.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

from workmill import billing_tables as bt
from workmill import clock, ids
from workmill.errors import (
    LedgerError,
    NotFound,
    SpecError,
    StateConflict,
    StateError,
    WorkmillError,
)
from workmill.fsio import atomic_write_bytes, sha256_bytes
from workmill.ledger.records import parse_pricing, parse_promotions, parse_topup_methods
from workmill.ledger.verify import Violation
from workmill.state import chunking, layout
from workmill.state.billing_state import (
    DERIVED,
    PARTITIONED,
    BillingState,
    columns_of,
    partition_group,
)
from workmill.state.manifest import (
    MANIFEST_PREFIX,
    Manifest,
    PartitionRef,
    TableRef,
    manifest_asset,
    manifest_revision,
    table_asset,
    table_asset_revision,
)
from workmill.state.releases import AssetExists, LocalReleaseStore, ReleaseStore
from workmill.tables import header_with_extras, parse_table, render_table

T = TypeVar("T")

KEEP_REVISIONS = 10
MOVE_BATCH = 64  # a migration writes its moved chunks this many at a time
GC_SLACK = 5  # collect only when this many revisions beyond KEEP_REVISIONS pile up (amortised)
ENV_COMMIT_SLEEP = "WORKMILL_TEST_COMMIT_SLEEP"  # test hook: pause inside a commit
WORKING_MANIFEST = bt.STATE_MANIFEST


class LedgerRefused(LedgerError):
    """A change was refused because the resulting ledger would break invariants."""

    def __init__(self, violations: list[Violation], what: str = "commit") -> None:
        self.violations = violations
        lines = "\n".join(f"  {v}" for v in violations)
        super().__init__(f"{what} refused: {len(violations)} ledger violation(s):\n{lines}")


@dataclass(frozen=True)
class PushResult:
    revision: int
    changed: tuple[str, ...]


class BillingStore:
    """The billing state of one platform repo, kept under its release tag."""

    def __init__(
        self,
        releases: ReleaseStore,
        tag: str,
        lock_path: Path,
        keep_revisions: int = KEEP_REVISIONS,
    ) -> None:
        self.releases = releases
        self.tag = tag
        self.lock = FileLock(str(lock_path), timeout=300)
        self.keep_revisions = keep_revisions
        self._segments: set[str] = set()  # segment releases known to exist
        # what the ledger checks need from the repo (docs/reference.md "Ledger checks")
        self.refundable: Callable[[str], bool | None] | None = None
        self.unsettled_alert_hours: float | None = None

    @classmethod
    def open(cls, repo) -> BillingStore:
        """Moved a floor up: the store is chosen by ``workmill.backends.open_billing_store``."""
        raise TypeError(
            "BillingStore.open(repo) moved: use workmill.backends.open_billing_store(repo)"
        )

    # ------------------------------------------------------------ revisions
    def revisions(self) -> list[int]:
        """Published revisions, oldest first."""
        if not self.releases.tag_exists(self.tag):
            return []
        revs = (
            manifest_revision(a)
            for a in self.releases.list_assets(self.tag)
            if a.startswith(MANIFEST_PREFIX)
        )
        return sorted(r for r in revs if r is not None)

    def head_revision(self) -> int | None:
        revs = self.revisions()
        return revs[-1] if revs else None

    def read_manifest(
        self,
        revision: int,
        only: Collection[str] | None = None,
        groups: Collection[str] | None = None,
    ) -> Manifest:
        """The manifest of ``revision`` (or a part of it: see ``Manifest.from_json``)."""
        name = manifest_asset(revision)
        data = self.releases.read_asset(self.tag, name)
        if only is not None or groups is not None:
            return Manifest.from_json(data, f"{self.tag}/{name}", only, groups)
        return _parsed_manifest(data, f"{self.tag}/{name}")

    def release_tag(self, release: str) -> str:
        """The tag of a segment release (``release`` as a ``PartitionRef`` names it)."""
        return layout.segment_tag(self.tag, release)

    def reader(self, manifest: Manifest) -> Callable[[str], bytes]:
        """Reads an asset ``manifest`` names from whichever release holds it."""
        where = manifest.release_of

        def read(asset: str) -> bytes:
            return self.releases.read_asset(self.release_tag(where.get(asset, "")), asset)

        return read

    def _put_all(self, uploads: list[tuple[str, str, bytes]]) -> None:
        """Create (release, asset, bytes) uploads in one batch (``create_assets_in``),
        creating a segment release on its first use."""
        for release in {r for r, _, _ in uploads} - {layout.HEAD} - self._segments:
            tag = self.release_tag(release)
            if not self.releases.tag_exists(tag):
                self.releases.create_tag(tag)
            self._segments.add(release)
        self.releases.create_assets_in([(self.release_tag(r), a, d) for r, a, d in uploads])

    def _require_head(self) -> int:
        head = self.head_revision()
        if head is None:
            raise StateError(
                f"billing state {self.tag!r} does not exist yet; run `workmill state bootstrap`"
            )
        return head

    # ------------------------------------------------------------ loading
    def load(self, revision: int | None = None) -> BillingState:
        """The head revision (or ``revision``) with its small tables read."""
        for _attempt in range(5):
            rev = revision if revision is not None else self._require_head()
            try:
                m = self.read_manifest(rev)
                read = self.reader(m)
                small: dict[str, tuple[list[str], list[dict[str, str]]]] = {}
                for name, ref in m.tables.items():
                    if ref.partitioned:
                        continue
                    p = ref.partitions[0]
                    data = read(p.asset)
                    header, rows = parse_table(data, f"{self.tag}/{p.asset}", columns_of(name))
                    small[name] = (header, rows)
            except NotFound:
                if revision is not None:
                    raise
                continue  # collected under us by another machine: read the new head
            state = BillingState(m, small, read, f"{self.tag}/")
            state.refundable = self.refundable
            state.unsettled_alert_hours = self.unsettled_alert_hours
            return state
        raise StateError(f"billing state {self.tag!r} keeps changing under this reader; try again")

    # ------------------------------------------------------------ committing
    def commit(
        self, state: BillingState, moves: int | None = layout.MOVES_PER_COMMIT, force: bool = False
    ) -> Manifest:
        """Publish ``state``'s changes as the next revision, or raise ``StateConflict``.

        Ledger invariants are checked on the new rows first; a state that breaks
        them is refused (``LedgerRefused``) and nothing is written. Up to ``moves``
        chunks that are not in their home release move there (``state.layout``);
        ``force`` publishes a revision even without changes (``compact``).
        """
        if state.committed:
            raise StateError("this state was already committed; load() a fresh one")
        if not state.dirty and not force:
            return state.manifest
        state.prepare_commit()
        violations = state.verify_changes()
        if violations:
            raise LedgerRefused(violations)
        base = state.manifest.revision
        head = self.head_revision() or 0
        if head != base:
            raise StateConflict(
                f"billing state moved from revision {base} to {head} during this change"
            )
        rev = base + 1
        nonce = ids.generate(ids.IdKind.ASSET)
        now = clock.now()
        month = now.strftime("%Y-%m")
        tables = dict(state.manifest.tables)
        uploads: list[
            tuple[str, str, bytes]
        ] = []  # (release, asset, bytes): durable before the manifest
        for name in sorted(state.changed_tables()):
            header = state.header(name)
            data = render_table(header, state.rows(name))
            asset = table_asset(rev, nonce, name, "")
            uploads.append((layout.HEAD, asset, data))
            part = PartitionRef("", asset, sha256_bytes(data), len(state.rows(name)), len(data))
            tables[name] = TableRef(False, (part,), tuple(header))
        _test_pause()
        for name in PARTITIONED:
            rows = state.appended(name)
            if rows:
                tables[name] = self._append_partitions(
                    state, name, tables.get(name), rows, (rev, nonce, month), uploads
                )
        for name in PARTITIONED:
            tables.setdefault(name, TableRef(True, (), columns_of(name)))
        skip = frozenset(a for _, a, _ in uploads)  # written now: they move next time
        look = None  # every chunk, now and then (see state/layout.py); else what was written
        if moves is not None and rev % layout.FULL_SCAN_EVERY:
            look = {
                (name, partition_group(name, r, month))
                for name in PARTITIONED
                for r in state.appended(name)
            } | layout.closed_months(tables, month)
        moving = layout.planned_moves(tables, month, PARTITIONED, moves, skip, look)
        self._move(state, tables, moving, (rev, nonce), uploads)
        self._put_all(uploads)
        manifest = Manifest(rev, base or None, clock.iso(now), tables)
        _test_pause()
        try:
            self.releases.create_asset(self.tag, manifest_asset(rev), manifest.to_json())
        except AssetExists as exc:
            raise StateConflict(f"another writer published revision {rev} first") from exc
        state.committed = True
        self._maybe_gc(rev)
        return manifest

    def _append_partitions(
        self,
        state: BillingState,
        name: str,
        ref: TableRef | None,
        rows: list[dict[str, str]],
        at: tuple[int, str, str],
        uploads: list[tuple[str, str, bytes]],
    ) -> TableRef:
        """The table's new partition list; the chunks to write are added to ``uploads``."""
        rev, nonce, month = at
        parts = {p.key: p for p in (ref.partitions if ref else ())}
        stored = ref or TableRef(True, ())
        columns = list(ref.columns) if ref and ref.columns else list(columns_of(name))
        columns = header_with_extras(columns, rows)
        by_group: dict[str, list[dict[str, str]]] = {}
        for r in rows:
            by_group.setdefault(partition_group(name, r, month), []).append(r)
        for group, grows in sorted(by_group.items()):
            chunks = list(stored.group_partitions(group))
            home = layout.hot_home(name, group)
            for key, data, n_rows, dropped in _group_writes(state, group, chunks, columns, grows):
                asset = table_asset(rev, nonce, name, key)
                uploads.append((home, asset, data))
                parts[key] = PartitionRef(key, asset, sha256_bytes(data), n_rows, len(data), home)
                for gone in dropped:
                    del parts[gone]
        return TableRef(True, tuple(sorted(parts.values(), key=lambda p: p.key)), tuple(columns))

    def _move(
        self,
        state: BillingState,
        tables: dict[str, TableRef],
        moves: list[layout.Move],
        at: tuple[int, str],
        uploads: list[tuple[str, str, bytes]],
    ) -> None:
        """Copy each moved chunk into its new release and point ``tables`` at the copy.

        The old copy stays until the revisions naming it are collected. Bytes are
        read straight from the store (not ``state``'s cache), and a long list of
        moves (a migration) is written as it goes, not held in memory.
        """
        read = self.reader(state.manifest)
        by_table: dict[str, dict[str, PartitionRef]] = {}
        for mv in moves:
            parts = by_table.setdefault(mv.table, {p.key: p for p in tables[mv.table].partitions})
            asset = table_asset(*at, mv.table, mv.part.key)
            uploads.append((mv.release, asset, read(mv.part.asset)))
            if len(uploads) >= MOVE_BATCH:
                self._put_all(uploads)
                uploads.clear()
            parts[mv.part.key] = mv.part._replace(asset=asset, release=mv.release)
        for name, parts in by_table.items():
            old = tables[name]
            tables[name] = TableRef(
                True, tuple(sorted(parts.values(), key=lambda p: p.key)), old.columns
            )

    def compact(self) -> tuple[int, int]:
        """Move every chunk to its home release now (the migration of a state written
        before segment releases), then collect garbage; (revision, chunks moved)."""
        with self.lock:
            state = self.load()
            month = clock.now().strftime("%Y-%m")
            pending = layout.planned_moves(state.manifest.tables, month, PARTITIONED, None)
            if not pending:
                return state.revision, 0
            m = self.commit(state, moves=None, force=True)
        self.gc()
        return m.revision, len(pending)

    def commit_with_retry(
        self,
        mutate: Callable[[BillingState], T],
        attempts: int = 30,
        loaded: BillingState | None = None,
    ) -> T:
        """Load, ``mutate``, commit — re-running ``mutate`` on a fresh state after a conflict.

        A machine-local file lock makes writers on one machine take turns; the
        retry covers writers on other machines. ``mutate`` must be a function of
        the state it is given (it may run more than once). ``loaded``: a state the
        caller has only read so far, tried first (a head that moved since is a
        conflict like any other, so nothing is lost by not reading it again).
        """
        try:
            with self.lock:
                for attempt in range(attempts):
                    fresh = attempt or loaded is None or loaded.dirty or loaded.committed
                    state = self.load() if fresh else loaded
                    result = mutate(state)
                    try:
                        self.commit(state)
                        return result
                    except StateConflict:
                        time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
        except Timeout as exc:
            raise StateConflict(
                f"timed out waiting for the billing-state lock {self.lock.lock_file}"
            ) from exc
        raise StateConflict(f"gave up after {attempts} conflicting attempts")

    # ------------------------------------------------------------ garbage collection
    def _maybe_gc(self, head: int) -> None:
        if head - self.keep_revisions >= GC_SLACK:
            revs = self.revisions()
            if len(revs) > self.keep_revisions + GC_SLACK:
                self.gc()

    def gc(self) -> list[str]:
        """Keep the last ``keep_revisions`` revisions and every asset they use; delete the rest,
        in the head release and in every segment release a kept revision names.

        Only assets stamped with a revision at or below the head are candidates,
        so a writer uploading the next revision right now is never disturbed.
        """
        assets = self.releases.list_assets(self.tag)
        revs = sorted(r for r in (manifest_revision(a) for a in assets) if r is not None)
        if not revs:
            return []
        head = revs[-1]
        kept = revs[-self.keep_revisions :]
        live: dict[str, set[str]] = {layout.HEAD: set()}
        for r in kept:
            for release, names in self.read_manifest(r).assets_by_release().items():
                live.setdefault(release, set()).update(names)
        doomed = [
            (self.tag, a)
            for a in assets
            if (mr := manifest_revision(a)) is not None and mr not in kept
        ]
        for release, names in sorted(live.items()):
            tag = self.release_tag(release)
            listed = assets if not release else self._listed(tag)
            doomed += [
                (tag, a)
                for a in listed
                if (tr := table_asset_revision(a)) is not None and tr <= head and a not in names
            ]
        for tag, a in doomed:
            self.releases.delete_asset(tag, a)
        if isinstance(self.releases, LocalReleaseStore):
            for release in live:
                self.releases.sweep_temp(self.release_tag(release))
        return [a for _, a in doomed]

    def _listed(self, tag: str) -> list[str]:
        try:
            return self.releases.list_assets(tag)
        except NotFound:
            return []

    # ------------------------------------------------------------ bootstrap
    def bootstrap(self, templates_dir: Path) -> bool:
        """Create revision 1 from the template tables; False when the state already exists."""
        with self.lock:
            if self.head_revision() is not None:
                return False
            if not templates_dir.is_dir():
                raise NotFound(
                    f"{templates_dir}: template directory not found (run `workmill init`?)"
                )
            small: dict[str, tuple[list[str], list[dict[str, str]]]] = {}
            appended: dict[str, list[dict[str, str]]] = {}
            names = {p.name for p in templates_dir.glob("*.csv")} | set(bt.COLUMNS)
            for name in sorted(names - set(DERIVED)):
                path = templates_dir / name
                if path.exists():
                    header, rows = parse_table(path.read_bytes(), str(path), columns_of(name))
                else:
                    header, rows = list(columns_of(name)), list(bt.TEMPLATE_ROWS.get(name, []))
                if name in PARTITIONED:
                    appended[name] = rows
                else:
                    small[name] = (header, rows)
            self.releases.create_tag(self.tag)
            state = BillingState(Manifest(0, None, clock.now_iso()), {}, lambda a: b"")
            for name, (header, rows) in small.items():
                state.set_rows(name, rows, header)
            for name, rows in appended.items():
                if rows:
                    state.append(name, rows)
            violations = state.verify_all()
            if violations:
                raise LedgerRefused(violations, "bootstrap")
            try:
                self.commit(state)
            except StateConflict:
                return False
            return True

    # ------------------------------------------------------------ working copies
    def export(self, directory: Path, revision: int | None = None) -> Manifest:
        """Write plain, un-partitioned tables (and a working ``state_manifest.json``) to ``directory``."""
        state = self.load(revision)
        directory.mkdir(parents=True, exist_ok=True)
        tables: dict[str, dict[str, object]] = {}
        for name in state.table_names():
            if name in DERIVED:
                continue  # derived indexes, rebuilt from the ledger tables
            data = render_table(state.header(name), state.rows(name))
            atomic_write_bytes(directory / name, data)
            tables[name] = {"sha256": sha256_bytes(data), "rows": len(state.rows(name))}
        doc = {
            "schema_version": state.manifest.schema_version,
            "tag": self.tag,
            "revision": state.revision,
            "parent_revision": state.manifest.parent_revision,
            "created_at": state.manifest.created_at,
            "tables": tables,
        }
        atomic_write_bytes(
            directory / WORKING_MANIFEST, (json.dumps(doc, indent=1) + "\n").encode()
        )
        return state.manifest

    def push(self, directory: Path) -> PushResult:
        """Commit an operator's edits from a working copy made by ``export``.

        Admin tables are replaced; append-only tables may only gain rows at the
        end; balances must equal the transactions; the whole ledger must verify.
        A working copy pulled from an older revision is refused (pull again).
        """
        wm_path = directory / WORKING_MANIFEST
        try:
            doc = json.loads(wm_path.read_bytes())
            base = int(doc["revision"])
        except FileNotFoundError as exc:
            raise StateError(
                f"{wm_path}: not found; make the working copy with `workmill state pull`"
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{wm_path}: not a working-copy manifest ({exc})") from exc
        with self.lock:
            state = self.load()
            if state.revision != base:
                raise StateConflict(
                    f"{directory} was pulled at revision {base} but the store is at {state.revision}; "
                    "pull again and redo the edit"
                )
            changed = [
                name
                for name in state.table_names()
                if name not in DERIVED and _push_table(state, directory, name)
            ]
            if not changed:
                return PushResult(state.revision, ())
            # admin tables must still parse as what they are
            state.pricing()
            state.promotions()
            state.topup_methods()
            pushed_open = {
                (r.get("tenant_id", ""), r.get("work_order_id", ""))
                for r in state.appended(bt.WORKORDERS_LOG)
            }
            violations = state.verify_all(open_only=pushed_open)
            if violations:
                raise LedgerRefused(violations, "push")
            m = self.commit(state)
            return PushResult(m.revision, tuple(changed))

    # ------------------------------------------------------------ audit
    def verify(self, revision: int | None = None) -> list[Violation]:
        """Integrity of the stored assets against the manifest, then every ledger invariant
        (``workmill.state.audit``: each partition read once, streamed)."""
        from workmill.state.audit import audit_state  # here: a run or top-up never audits

        return audit_state(
            self.load(revision), parallel=isinstance(self.releases, LocalReleaseStore)
        )


_ADMIN_PARSERS: dict[str, Callable[[list[dict[str, str]], str], object]] = {
    bt.PRICING: parse_pricing,
    bt.PROMOTIONS: parse_promotions,
    bt.TOPUP_METHODS: parse_topup_methods,
}


def _push_table(state: BillingState, directory: Path, name: str) -> bool:
    """Stage one table of a working copy; True when it changed. Append-only tables may
    only gain rows at the end; admin tables are replaced (and must parse)."""
    path = directory / name
    if not path.exists():
        raise SpecError.at(path, "file not found (every table of the pull must be there)")
    header, rows = parse_table(path.read_bytes(), str(path), columns_of(name))
    if name not in PARTITIONED:
        if rows == state.rows(name) and header == state.header(name):
            return False
        _ADMIN_PARSERS.get(name, lambda r, w: r)(rows, str(path))
        state.set_rows(name, rows, header)
        return True
    current = state.stored_rows(name)
    cur_header = state.header(name)
    if len(rows) < len(current):
        raise LedgerError(
            f"{path}: {name} is append-only; {len(current) - len(rows)} row(s) were removed"
        )
    for i, (old, new) in enumerate(zip(current, rows, strict=False)):
        if any(old.get(c, "") != new.get(c, "") for c in cur_header):
            raise LedgerError(
                f"{path}: line {i + 2}: {name} is append-only; existing rows cannot change"
            )
    if len(rows) == len(current):
        return False
    state.append(name, rows[len(current) :])
    return True


def use_repo_checks(store: BillingStore, repo) -> BillingStore:
    """Give ``store`` the repo's reason policy and alert threshold for the ledger checks."""
    store.refundable = _policy_of(repo)
    store.unsettled_alert_hours = float(repo.config.unsettled_alert_hours)
    return store


def _policy_of(repo) -> Callable[[str], bool | None] | None:
    """refundable(code) from the repo's compiled reason catalog (None when it cannot be read:
    the policy checks are then skipped, the arithmetic ones still run)."""
    from workmill.reasons import ReasonCatalog

    try:
        catalog = ReasonCatalog.load(repo.maintenance_dir)
    except WorkmillError:
        return None

    def refundable(code: str) -> bool | None:
        reason = catalog.get(code)
        return None if reason is None else bool(reason.refundable)

    return refundable


# whole manifests parsed in this process, by the sha256 of their bytes (at most _MANIFEST_MEMO)
_MANIFESTS: dict[str, Manifest] = {}
_MANIFEST_MEMO = 24


def _parsed_manifest(data: bytes, where: str) -> Manifest:
    """``Manifest.from_json(data)``, parsed once per process for the same bytes.

    A load and each garbage collection (which reads every kept revision's
    manifest) would otherwise parse the same manifests again and again; at a
    long history a manifest lists thousands of chunks. Keyed by content, so
    bytes that differ in any way are parsed (and checked) afresh.
    """
    key = sha256_bytes(data)
    got = _MANIFESTS.get(key)
    if got is None:
        got = Manifest.from_json(data, where)
        if len(_MANIFESTS) >= _MANIFEST_MEMO:
            del _MANIFESTS[next(iter(_MANIFESTS))]
        _MANIFESTS[key] = got
    return got


def _test_pause() -> None:
    """Sleep inside a commit when the test hook asks (to kill -9 a writer mid-commit)."""
    delay = os.environ.get(ENV_COMMIT_SLEEP)
    if delay:
        with contextlib.suppress(ValueError):
            time.sleep(float(delay))


def _group_writes(
    state: BillingState,
    group: str,
    chunks: list[PartitionRef],
    columns: list[str],
    rows: list[dict[str, str]],
) -> list[tuple[str, bytes, int, tuple[str, ...]]]:
    """(key, bytes, rows, keys it replaces) of each chunk to upload for ``rows`` (see ``chunking``).

    Extending or merging concatenates stored bytes, so it needs the chunks to share a
    header that already names every column of the new rows; otherwise new chunks start.
    """
    last = chunks[-1] if chunks else None
    if last is not None and chunking.is_tail(last.bytes):
        old = state.raw_asset(last.asset)
        head_line, _, old_body = old.partition(b"\n")
        header = next(csv.reader(io.StringIO(head_line.decode())))
        if all(k in header for r in rows for k in r):
            body = render_table(header, rows).split(b"\n", 1)[1]
            how = chunking.place([c.bytes for c in chunks], len(body))
            if how is chunking.Placement.EXTEND:
                return [(last.key, old + body, last.rows + len(rows), ())]
            if how is chunking.Placement.MERGE:
                prev = chunks[-2]
                base = state.raw_asset(prev.asset)
                if base.split(b"\n", 1)[0] == head_line:
                    n = prev.rows + last.rows + len(rows)
                    return [(prev.key, base + old_body + body, n, (last.key,))]
    seq = last.seq + 1 if last is not None else 0
    return [
        (f"{group}.{seq + i:04d}", data, n, ())
        for i, (data, n) in enumerate(_new_chunks(columns, rows))
    ]


def _new_chunks(columns: list[str], rows: list[dict[str, str]]) -> list[tuple[bytes, int]]:
    """``rows`` rendered as one or more chunks of at most ``CHUNK_BYTES`` (a lone row may exceed it)."""
    data = render_table(columns, rows)
    if len(data) <= chunking.CHUNK_BYTES or len(rows) < 2:
        return [(data, len(rows))]
    head = len(render_table(columns, []))
    sizes = [len(render_table(columns, [r])) - head for r in rows]
    out, i = [], 0
    for n in chunking.split_sizes(sizes, head):
        out.append((render_table(columns, rows[i : i + n]), n))
        i += n
    return out
