"""The output contract (docs/reference.md "Running a module"), usable on any outputs directory.

The orchestrator calls :func:`check_outputs` on outputs a module just wrote
and on outputs restored from cache, a release or assets. Files are opened
with ``O_NOFOLLOW`` and checked with ``fstat``: a symlink, fifo, device or
socket is never read (a fifo could block us forever, a symlink could leak
another tenant's file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workmill.specs import OutputSpec

TEXT_FORMATS = ("text", "md", "html", "svg", "xml", "yaml")
MAX_PARSE_BYTES = 256 * 1024 * 1024  # json/csv/text larger than this are checked by decode only


@dataclass(frozen=True)
class OutputEntry:
    """One entry found under an outputs directory (not followed if it is a link)."""

    path: str  # relative, POSIX
    kind: str  # file | symlink | fifo | device | socket | dir | other
    size_bytes: int


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def scan_outputs(outputs_dir: Path) -> list[OutputEntry]:
    """Every entry below ``outputs_dir`` via lstat, sorted; directories are walked, links not."""
    out: list[OutputEntry] = []

    def walk(d: Path, rel: str) -> Iterator[OutputEntry]:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            return
        for name in names:
            p = d / name
            r = f"{rel}{name}"
            try:
                st = os.lstat(p)
            except OSError:
                continue
            k = _kind(st.st_mode)
            if k == "dir":
                yield from walk(p, r + "/")
            else:
                yield OutputEntry(r, k, st.st_size if k == "file" else 0)

    if outputs_dir.is_dir() and not outputs_dir.is_symlink():
        out.extend(walk(outputs_dir, ""))
    return out


def open_regular(outputs_dir: Path, rel: str) -> int:
    """An fd for ``outputs_dir/rel`` that is a regular file reached without any symlink."""
    fd = os.open(outputs_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        parts = rel.split("/")
        for part in parts[:-1]:
            if part in ("", ".", ".."):
                raise OSError(f"unsafe path segment {part!r}")
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        if parts[-1] in ("", ".", ".."):
            raise OSError(f"unsafe path segment {parts[-1]!r}")
        ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    st = os.fstat(ffd)
    if not stat.S_ISREG(st.st_mode):
        os.close(ffd)
        raise OSError(f"not a regular file ({_kind(st.st_mode)})")
    return ffd


_MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "ogg": (b"OggS",),
    "pdf": (b"%PDF-",),
}


def check_format(head: bytes, data: bytes | None, fmt: str) -> str | None:
    """None when the content matches ``fmt``; else why not.

    ``head`` is the first bytes; ``data`` the whole file for the parsed formats.
    """
    if fmt == "binary":
        return None
    if fmt in _MAGIC or fmt in _SIGNED:
        return _check_signature(head, fmt)
    assert data is not None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 (byte {exc.start})"
    check = _TEXT_CHECKS.get(fmt)
    return check(text) if check else None


def _check_signature(head: bytes, fmt: str) -> str | None:
    """Binary formats, told apart by their first bytes."""
    if fmt in _MAGIC:
        if any(head.startswith(m) for m in _MAGIC[fmt]):
            return None
        return f"does not start with the {fmt} signature"
    return _SIGNED[fmt](head)


def _check_riff(tag: bytes) -> Callable[[bytes], str | None]:
    def check(head: bytes) -> str | None:
        if head[:4] == b"RIFF" and head[8:12] == tag:
            return None
        return f"is not a RIFF/{tag.decode()} file"

    return check


def _check_mp3(head: bytes) -> str | None:
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return None
    return "is neither ID3-tagged nor an MPEG audio frame"


_SIGNED: dict[str, Callable[[bytes], str | None]] = {
    "webp": _check_riff(b"WEBP"),
    "wav": _check_riff(b"WAVE"),
    "mp3": _check_mp3,
}


def _check_json(text: str) -> str | None:
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        return f"is not valid JSON ({str(exc)[:80]})"
    return None


def _check_svg(text: str) -> str | None:
    return None if "<svg" in text[:65536].lower() else "has no <svg> element"


def _starts_with_markup(message: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if text[:4096].lstrip().startswith("<") else message

    return check


def _check_csv(text: str) -> str | None:
    if not text.strip():
        return "is empty (a CSV needs at least a header row)"
    try:
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(rows)
        for n, row in enumerate(rows, start=2):
            if row and len(row) != len(header):
                return f"row {n} has {len(row)} fields, the header has {len(header)}"
    except csv.Error as exc:
        return f"is not valid CSV ({exc})"
    return None


_TEXT_CHECKS: dict[str, Callable[[str], str | None]] = {
    "json": _check_json,
    "csv": _check_csv,
    "svg": _check_svg,
    "html": _starts_with_markup("does not start with markup"),
    "xml": _starts_with_markup("does not start with '<'"),
}


@dataclass(frozen=True)
class FileCheck:
    path: str
    size_bytes: int
    sha256: str
    format: str
    problem: str | None


def inspect_file(outputs_dir: Path, rel: str, fmt: str) -> FileCheck:
    """Hash and format-check one file (never following links); problem set on failure."""
    try:
        fd = open_regular(outputs_dir, rel)
    except OSError as exc:
        why = exc.strerror or str(exc)
        return FileCheck(rel, 0, "", fmt, f"cannot be read safely: {why}")
    h = hashlib.sha256()
    size = 0
    head = b""
    keep = fmt in ("json", "csv", *TEXT_FORMATS)
    chunks: list[bytes] = []
    with os.fdopen(fd, "rb") as fh:
        while block := fh.read(1 << 20):
            if not head:
                head = block[:64]
            h.update(block)
            size += len(block)
            if keep and size <= MAX_PARSE_BYTES:
                chunks.append(block)
    data = b"".join(chunks) if keep and size <= MAX_PARSE_BYTES else None
    # a text file too large to parse here is hashed and accepted
    problem = None if keep and data is None else check_format(head, data, fmt)
    return FileCheck(rel, size, h.hexdigest(), fmt, problem)


@dataclass(frozen=True)
class ContractReport:
    files: list[FileCheck]  # every readable regular file, declared or not
    problems: list[str]  # empty when the contract holds
    over_cap: str = ""  # set when the outputs are larger than the cap (nothing was read)

    @property
    def ok(self) -> bool:
        return not self.problems


def unrestorable_name(rel: str) -> str | None:
    """Why an output path could not be published and restored by name, or None.

    A newline or other control character splits the manifest and log lines that
    name it, a leading ``-`` reads as an option to the tools that restore it, and
    a name that is not UTF-8 cannot be written into a JSON manifest faithfully.
    """
    for part in rel.split("/"):
        if part.startswith("-"):
            return "a name starts with '-'"
        if part != part.strip():
            return "a name starts or ends with white space"
        if len(part.encode("utf-8", "surrogateescape")) > 255:
            return "a name is longer than 255 bytes"
        for c in part:
            if ord(c) < 0x20 or ord(c) == 0x7F:
                return f"a name contains the control character {c!r}"
            if "\udc80" <= c <= "\udcff":
                return "a name is not UTF-8"
            if c == "\\":
                return "a name contains a backslash"
    return None


def check_outputs(
    outputs_dir: Path, declared: Iterable[OutputSpec], max_bytes: int | None = None
) -> ContractReport:
    """Every declared output present, regular, inside the dir and of its format;
    no symlink/fifo/device/socket anywhere under the dir; every name restorable;
    in all no more than ``max_bytes`` (checked from sizes, before reading a byte)."""
    declared = list(declared)
    fmt_of = {o.name: o.format for o in declared}
    problems: list[str] = []
    files: list[FileCheck] = []
    entries = {e.path: e for e in scan_outputs(outputs_dir)}
    total = sum(e.size_bytes for e in entries.values())
    if max_bytes is not None and total > max_bytes:
        why = f"the outputs hold at least {total} bytes, more than max_output_bytes ({max_bytes})"
        return ContractReport([], [why], over_cap=why)
    for e in entries.values():
        bad_name = unrestorable_name(e.path)
        if bad_name is not None:
            problems.append(f"{e.path!r}: cannot be restored: {bad_name}")
            continue
        if e.kind != "file":
            problems.append(f"{e.path}: is a {e.kind}, not a regular file (never read)")
            continue
        fc = inspect_file(outputs_dir, e.path, fmt_of.get(e.path, "binary"))
        if fc.problem is not None:
            problems.append(f"{e.path}: {fc.problem}")
            if fc.sha256 == "":
                continue
        files.append(fc)
    for o in declared:
        if o.name not in entries:
            problems.append(f"{o.name}: declared output is missing")
    return ContractReport(files, problems)
