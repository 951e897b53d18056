"""Durable file writes: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dirs(paths: list[Path]) -> None:
    """``fsync_dir`` of each directory, at once (``fsync_all``): one journal commit."""
    if len(paths) < 2:
        for p in paths:
            fsync_dir(p)
        return
    fds: list[int] = []
    try:
        for p in paths:
            with contextlib.suppress(OSError):
                fds.append(os.open(p, os.O_RDONLY))
        with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
            fsync_all(fds)
    finally:
        for fd in fds:
            os.close(fd)


def fsync_all(fds: list[int]) -> None:
    """fsync every descriptor; several at once from threads, so the filesystem can make
    them durable in one journal commit instead of one commit (and disk flush) each."""
    if len(fds) < 2:
        for fd in fds:
            os.fsync(fd)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(fds), 8)) as pool:
        list(pool.map(os.fsync, fds))


# Files of the platform repo that people read, edit and commit: rw-r--r-- like any
# file an editor writes (mkstemp alone would leave them rw------- ).
REPO_FILE_MODE = 0o644


def atomic_write_bytes(
    path: Path, data: bytes, *, durable: bool = True, mode: int | None = None
) -> None:
    """Write via a temp file in the same directory, fsync, rename over ``path``.

    The file is private (0600) unless ``mode`` says otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(
    path: Path, text: str, *, durable: bool = True, mode: int | None = None
) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable, mode=mode)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
