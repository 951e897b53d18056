"""Work-order checks: one file at a time, against an index of the loaded modules.

Work orders are the bulk of a repo (tens of thousands of files), so this path
avoids repeated work: module facts are indexed once and params results are
memoised per (module, canonical params).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workmill import ids
from workmill.errors import Problem, SpecError
from workmill.specs import RELEASE_TAG, WorkOrderModule, WorkOrderSpec, parse_model
from workmill.validate._checks import params_messages
from workmill.validate._fastyaml import fast_model
from workmill.validate._snapshot import ModuleInfo, Snapshot, canonical_json
from workmill.yamlio import MAX_BYTES, YamlDoc, parse_yaml, problem


@dataclass
class WorkOrderContext:
    """What a work order is checked against: modules by id, tenants, memoised params."""

    snap: Snapshot
    report_broken_modules: bool = True
    _params_memo: dict[tuple[Hashable, Hashable], list[tuple[str, str]]] = field(
        default_factory=dict
    )
    _signatures: dict[str, Hashable] = field(default_factory=dict)

    def params(self, info: ModuleInfo, params: dict) -> list[tuple[str, str]]:
        key = params_key(params)
        if key is None:
            return params_messages(info, params)
        memo_key = (self._signature(info), key)
        got = self._params_memo.get(memo_key)
        if got is None:
            if len(self._params_memo) > 100_000:
                self._params_memo.clear()
            got = self._params_memo[memo_key] = params_messages(info, params)
        return got

    def _signature(self, info: ModuleInfo) -> Hashable:
        """What params are checked against: modules with the same action inputs and
        params schema check the same params alike, so they share memo entries."""
        sig = self._signatures.get(info.module_id)
        if sig is None:
            assert info.action is not None
            inputs = [[k, v.required, v.default] for k, v in info.action.inputs.items()]
            sig = canonical_json([inputs, info.schema]) or ("module", info.module_id)
            self._signatures[info.module_id] = sig
        return sig


_FLAT = (str, int, bool, type(None))


def params_key(params: dict) -> Hashable | None:
    """A memo key equal only for params that check alike (None: not memoisable).

    Flat params (the usual case) are keyed by their items with each value's type,
    so ``1``, ``1.0`` and ``true`` stay apart; floats by their repr (``-0.0``
    and ``0.0`` print differently in messages); anything nested by canonical JSON.
    """
    flat: list[tuple[Any, type, Any]] = []
    for k, v in params.items():
        t = type(v)
        if t in _FLAT:
            flat.append((k, t, v))
        elif t is float:
            flat.append((k, t, repr(v)))
        else:
            return canonical_json(params)
    return tuple(flat)


def _read_bytes(path: Path | str) -> bytes:
    """The file's bytes (a raw descriptor: no buffered reader for a small file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        chunks = [os.read(fd, 65536)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 20))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_work_order(path: Path | str, rel: str) -> tuple[YamlDoc | None, list[Problem]]:
    try:
        data = _read_bytes(path)
    except OSError as exc:
        return None, [Problem(rel, None, "", f"cannot read: {exc.strerror or exc}")]
    if len(data) > MAX_BYTES:
        return None, [Problem(rel, None, "", f"file is larger than {MAX_BYTES} bytes")]
    try:
        return parse_yaml(data.decode("utf-8-sig"), rel), []
    except UnicodeDecodeError as exc:
        return None, [Problem(rel, None, "", f"not UTF-8 (byte {exc.start})")]
    except SpecError as exc:
        return None, list(exc.problems)


def check_work_order_file(
    ctx: WorkOrderContext, tenant_id: str, path: Path | str
) -> tuple[WorkOrderSpec | None, list[Problem]]:
    """Every problem of one work-order file (its name, its content, its references)."""
    name = os.path.basename(path)
    rel = f"tenants/{tenant_id}/workorders/{name}"
    stem = name[:-4] if name.endswith(".yml") else None
    if stem is None or not ids.is_valid(ids.IdKind.WORK_ORDER, stem):
        return None, [
            Problem(
                rel,
                None,
                "",
                "file name must be <work_order_id>.yml with " + ids.describe(ids.IdKind.WORK_ORDER),
            )
        ]
    fast = _fast_check(ctx, tenant_id, stem, path, rel)
    if fast is not None:
        return fast, []
    doc, out = read_work_order(path, rel)
    if doc is None:
        return None, out
    try:
        spec = parse_model(doc, WorkOrderSpec)
    except SpecError as exc:
        return None, list(exc.problems)
    return spec, work_order_problems(ctx, tenant_id, stem, spec, doc)


def _fast_check(
    ctx: WorkOrderContext, tenant_id: str, stem: str, path: Path | str, rel: str
) -> WorkOrderSpec | None:
    """The spec when the file loads on the fast path *and* has no problem at all."""
    try:
        got = fast_model(_read_bytes(path), rel, WorkOrderSpec)
    except OSError:
        return None
    if got is None:
        return None
    spec, doc = got
    return None if work_order_problems(ctx, tenant_id, stem, spec, doc) else spec


def work_order_problems(
    ctx: WorkOrderContext, tenant_id: str, stem: str, spec: WorkOrderSpec, doc: YamlDoc
) -> list[Problem]:
    """Rules a typed work order must also satisfy against the repo."""
    out: list[Problem] = []
    if spec.work_order_id != stem:
        out.append(
            problem(
                doc,
                ("work_order_id",),
                f"{spec.work_order_id!r} does not match its file name {stem!r}",
            )
        )
    listed = set(spec.module_ids)
    for i, entry in enumerate(spec.modules):
        out += _entry_problems(ctx, tenant_id, doc, ("modules", i), entry, listed)
    return out


def _entry_problems(
    ctx: WorkOrderContext,
    tenant_id: str,
    doc: YamlDoc,
    loc: tuple[str | int, ...],
    entry: WorkOrderModule,
    listed: set[str],
) -> list[Problem]:
    """One listed module: known and valid, its dependencies listed, params, reuse targets."""
    info = ctx.snap.modules.get(entry.module_id)
    if info is None:
        return [problem(doc, (*loc, "module_id"), f"unknown module {entry.module_id!r}")]
    if not info.ok or info.spec is None:
        if not ctx.report_broken_modules:
            return []
        msg = f"module {entry.module_id} has errors of its own (run `workmill validate`)"
        return [problem(doc, (*loc, "module_id"), msg)]
    out = [
        problem(
            doc,
            (*loc, "module_id"),
            f"module {entry.module_id} depends on {d}, which this work order does "
            "not list (list it; it may be reused rather than recomputed)",
        )
        for d in info.spec.deps
        if d not in listed
    ]
    for field_, msg in ctx.params(info, dict(entry.params)):
        sub = field_.split(".")[1:] if field_.startswith("params") else []
        out.append(
            Problem(
                doc.path,
                doc.line_of((*loc, "params", *sub)),
                ".".join(map(str, (*loc, field_))),
                msg,
            )
        )
    return out + _reuse_problems(ctx, tenant_id, doc, loc, entry)


def _reuse_problems(
    ctx: WorkOrderContext,
    tenant_id: str,
    doc: YamlDoc,
    loc: tuple[str | int, ...],
    entry: WorkOrderModule,
) -> list[Problem]:
    snap = ctx.snap
    if entry.reuse_output_type == "release" and entry.release_tag:
        m = RELEASE_TAG.fullmatch(entry.release_tag)
        if m and m.group(1) not in snap.tenants:
            msg = f"release tag names tenant {m.group(1)!r}, which does not exist"
            return [problem(doc, (*loc, "release_tag"), msg)]
    if entry.reuse_output_type == "assets" and entry.assets_folder_name:
        base = snap.repo.assets_dir(tenant_id)
        target = base / entry.assets_folder_name
        # a symlinked folder could still point elsewhere: compare resolved paths
        if target.exists() and not target.resolve().is_relative_to(base.resolve()):
            msg = f"{entry.assets_folder_name!r} leaves tenants/{tenant_id}/assets/outputs/"
            return [problem(doc, (*loc, "assets_folder_name"), msg)]
    return []
