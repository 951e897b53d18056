"""Outputs that come from elsewhere: a published release or a tenant's assets (docs/reference.md "Files of a platform repo").

Both paths end the same way: files placed under the module's outputs dir,
every sha256 verified, nothing read from outside the place it must come from.
Failures are ``ReuseFailed`` carrying the global reason name to record.
"""

from __future__ import annotations

import json
import os
import shutil
import stat as _stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workmill.artifacts.manifest import ReleaseManifest
from workmill.artifacts.naming import manifest_name
from workmill.errors import SpecError, WorkmillError
from workmill.fsio import sha256_file
from workmill.specs import RELEASE_TAG, _safe_relpath


class ReuseFailed(WorkmillError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PlacedFile:
    path: str  # relative to the outputs dir
    size_bytes: int
    sha256: str


class ReleaseReader(Protocol):
    def read_asset(self, tag: str, name: str) -> bytes | None:
        """The asset's bytes, or None if the tag or the asset does not exist."""

    def download_asset(self, tag: str, name: str, dest: Path) -> bool:
        """Write the asset to ``dest``; False if it does not exist."""


def _safe(rel: str, what: str) -> str:
    try:
        return _safe_relpath(rel)
    except ValueError as exc:
        raise ReuseFailed("INTEGRITY_MISMATCH", f"{what}: {exc}") from None


def restore_from_release(
    reader: ReleaseReader,
    tag: str,
    requesting_tenant: str,
    module_id: str,
    allowed_pairs: set[tuple[str, str]],
    dest: Path,
) -> tuple[ReleaseManifest, list[PlacedFile]]:
    """Fetch ``module_id``'s items from release ``tag`` into ``dest`` after the owner checks."""
    m = RELEASE_TAG.fullmatch(tag)
    if not m:
        raise ReuseFailed("RELEASE_NOT_FOUND", f"{tag!r} is not a work-order release tag")
    tag_owner, tag_wo = m.group(1), m.group(2)
    name = manifest_name(tag_owner, tag_wo)
    data = reader.read_asset(tag, name)
    if data is None:
        raise ReuseFailed("RELEASE_NOT_FOUND", f"release {tag} has no manifest {name}")
    try:
        manifest = ReleaseManifest.parse(data, f"{tag}/{name}")
    except SpecError as exc:
        raise ReuseFailed("INTEGRITY_MISMATCH", str(exc)) from None
    owner = manifest.owning_tenant_id
    if owner != tag_owner or manifest.work_order_id != tag_wo:
        raise ReuseFailed(
            "RELEASE_ACCESS_DENIED",
            f"release {tag}: manifest names owner {owner} / work order {manifest.work_order_id}, "
            "which the tag does not",
        )
    if requesting_tenant != owner and (requesting_tenant, owner) not in allowed_pairs:
        raise ReuseFailed(
            "RELEASE_ACCESS_DENIED",
            f"tenant {requesting_tenant} may not reuse releases of tenant {owner} "
            "(not in its allow_release_consumers)",
        )
    items = manifest.items_for(module_id)
    if not items:
        raise ReuseFailed(
            "RELEASE_ITEM_MISSING", f"release {tag} has no items of module {module_id}"
        )
    placed = []
    for item in items:
        rel = _safe(item.source_name, f"release {tag} item {item.filename}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not reader.download_asset(tag, item.filename, target):
            raise ReuseFailed("RELEASE_ITEM_MISSING", f"release {tag} lacks asset {item.filename}")
        digest = sha256_file(target)
        if digest != item.sha256 or target.stat().st_size != item.size_bytes:
            target.unlink(missing_ok=True)
            raise ReuseFailed(
                "INTEGRITY_MISMATCH",
                f"release {tag} asset {item.filename}: sha256 {digest[:12]}… != manifest "
                f"{item.sha256[:12]}…",
            )
        placed.append(PlacedFile(rel, item.size_bytes, digest))
    return manifest, placed


def restore_from_assets(
    assets_root: Path, folder: str, module_id: str, dest: Path
) -> list[PlacedFile]:
    """Copy ``<assets_root>/<folder>/`` files listed in its manifest.json, verifying each."""
    base = (assets_root / folder).resolve()
    if assets_root.resolve() not in base.parents:
        raise ReuseFailed(
            "ASSETS_NOT_FOUND", f"assets folder {folder!r} leaves the assets directory"
        )
    mpath = base / "manifest.json"
    shown = f"assets/outputs/{folder}/manifest.json"
    if not mpath.is_file() or mpath.is_symlink():
        raise ReuseFailed("ASSETS_NOT_FOUND", f"{shown} not found")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
        owner_module = manifest["module_id"]
        if not isinstance(files, list):
            raise TypeError("files must be a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReuseFailed("ASSETS_NOT_FOUND", f"{shown}: unreadable manifest ({exc})") from None
    if owner_module != module_id:
        raise ReuseFailed(
            "ASSETS_NOT_FOUND", f"{shown} holds outputs of module {owner_module}, not {module_id}"
        )
    placed = []
    for entry in files:
        if not isinstance(entry, dict):
            raise ReuseFailed("INTEGRITY_MISMATCH", f"{shown}: a files entry is not an object")
        rel = _safe(str(entry.get("path", "")), shown)
        src = base / rel
        try:
            st = os.lstat(src)
        except OSError:
            raise ReuseFailed("ASSETS_NOT_FOUND", f"{shown}: file {rel} is missing") from None
        if not _stat.S_ISREG(st.st_mode) or base not in src.resolve().parents:
            raise ReuseFailed("INTEGRITY_MISMATCH", f"{shown}: {rel} is not a regular file inside")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)  # verify the copy, not the source: it could change meanwhile
        digest = sha256_file(target)
        if digest != entry.get("sha256") or target.stat().st_size != entry.get("size_bytes"):
            target.unlink(missing_ok=True)
            raise ReuseFailed(
                "INTEGRITY_MISMATCH", f"{shown}: {rel} does not match its sha256/size"
            )
        placed.append(PlacedFile(rel, st.st_size, digest))
    return placed
