"""Content hash of a module folder: part of cache keys and of module_registry.csv.

Any change to a file the module ships (code, action, schemas, assets) changes
the digest; editor droppings and caches do not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_IGNORED_DIRS = {"__pycache__", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def _files(root: Path) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") or part in _IGNORED_DIRS for part in rel):
            continue
        if p.is_symlink() or not p.is_file():
            # symlinks are hashed by their target text, never followed out of the folder
            if p.is_symlink():
                out.append(p)
            continue
        out.append(p)
    return sorted(out, key=lambda q: q.relative_to(root).as_posix())


def module_digest(module_dir: Path) -> str:
    """sha256 over (relative path, kind, content) of every file in ``module_dir``."""
    h = hashlib.sha256()
    for p in _files(module_dir):
        rel = p.relative_to(module_dir).as_posix().encode()
        h.update(len(rel).to_bytes(4, "big") + rel)
        if p.is_symlink():
            target = str(p.readlink()).encode()
            h.update(b"L" + len(target).to_bytes(8, "big") + target)
            continue
        h.update(b"F" + p.stat().st_size.to_bytes(8, "big"))
        with p.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def module_files(module_dir: Path) -> list[Path]:
    """The files the digest covers, sorted by relative path (what a registry archive packs)."""
    return _files(module_dir)
