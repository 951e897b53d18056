"""Reproducible module archives and their careful unpacking.

``pack`` writes a gzip'd POSIX tar of exactly the files the module digest covers,
sorted by path, with fixed owner (0/0, no names), mode (0644, or 0755 when the
source is executable), mtime 0 and a gzip header without name or time: one module
version always gives the same bytes, so the index can pin one sha256 for it.

``check_members`` reads every header of an archive (in memory, after its digest and
the index signature have been checked) and refuses, before a single file is
written, anything but plain files under safe relative names: no ``..``, no
absolute paths, no links, devices or FIFOs, not too many entries, not too large.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from workmill.digest import module_files
from workmill.errors import WorkmillError
from workmill.specs import SAFE_NAME

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024  # compressed
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 10_000


class ArchiveRefused(WorkmillError):
    """An archive is unsafe or malformed; nothing of it was unpacked."""


@dataclass(frozen=True)
class Entry:
    path: str
    data: bytes
    executable: bool


def pack(module_dir: Path) -> bytes:
    """The reproducible ``.tar.gz`` bytes of a module folder."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for p in module_files(module_dir):
            rel = p.relative_to(module_dir).as_posix()
            if p.is_symlink():
                raise ArchiveRefused(f"{module_dir.name}/{rel}: a symlink cannot be published")
            info = tarfile.TarInfo(rel)
            data = p.read_bytes()
            info.size = len(data)
            info.mode = 0o755 if p.stat().st_mode & stat.S_IXUSR else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _safe_path(name: str) -> str | None:
    """Why ``name`` may not be written (None when it is a safe relative path)."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "an absolute or malformed path"
    parts = name.split("/")
    if any(p in {"", ".", ".."} for p in parts):
        return "a path that leaves the module folder ('..' or empty segment)"
    if any(not SAFE_NAME.fullmatch(p) for p in parts):
        return "a file name outside [A-Za-z0-9._-]"
    return None


def _kind(m: tarfile.TarInfo) -> str | None:
    if m.issym() or m.islnk():
        return "a link"
    if m.isdev() or m.isfifo() or m.ischr() or m.isblk():
        return "a device or FIFO"
    if not m.isfile():
        return "not a regular file"
    return None


def check_members(data: bytes, where: str) -> list[Entry]:
    """Every entry of the archive, or ArchiveRefused naming the first unsafe one."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveRefused(f"{where}: archive is larger than {MAX_ARCHIVE_BYTES} bytes")
    out: list[Entry] = []
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar:
                why = _safe_path(m.name) or _kind(m)
                if why is not None:
                    raise ArchiveRefused(f"{where}: entry {m.name[:200]!r} is {why}; refused")
                total += m.size
                if len(out) >= MAX_ENTRIES or total > MAX_UNPACKED_BYTES:
                    raise ArchiveRefused(
                        f"{where}: more than {MAX_ENTRIES} entries or {MAX_UNPACKED_BYTES} "
                        "bytes unpacked; refused"
                    )
                fh = tar.extractfile(m)
                body = fh.read() if fh is not None else b""
                out.append(Entry(m.name, body, bool(m.mode & 0o111)))
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ArchiveRefused(f"{where}: not a readable .tar.gz ({type(exc).__name__})") from exc
    names = [e.path for e in out]
    if len(set(names)) != len(names):
        raise ArchiveRefused(f"{where}: an entry is listed twice; refused")
    return out


def write_entries(entries: list[Entry], dest: Path) -> None:
    """Write checked entries under ``dest`` (a fresh directory), refusing to follow anything."""
    for e in entries:
        target = dest.joinpath(*e.path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(target, flags, 0o755 if e.executable else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(e.data)
