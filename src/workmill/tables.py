"""CSV tables as workmill reads and writes them: UTF-8, header row, ``\\n`` endings.

Reading is strict (a hand-edited table with a BOM, a missing column, or a
ragged row is an error naming the file, row and column); writing is
deterministic so the same rows always give the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from workmill.errors import Problem, SpecError
from workmill.fsio import atomic_write_bytes

Row = dict[str, str]


def parse_table(
    data: bytes | str, name: str, columns: Sequence[str] = ()
) -> tuple[list[str], list[Row]]:
    """Parse CSV text; returns (header, rows). ``columns`` must all be present."""
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise SpecError.at(
                name, "file starts with a UTF-8 byte-order mark; save it as plain UTF-8", line=1
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError.at(name, f"not UTF-8 (byte {exc.start})") from exc
    else:
        text = data
        if text.startswith("\ufeff"):
            raise SpecError.at(
                name, "file starts with a UTF-8 byte-order mark; save it as plain UTF-8", line=1
            )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise SpecError.at(name, "empty file: a header row is required", line=1)
        header = [h.strip() for h in header]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise SpecError.at(name, f"duplicate column(s) {', '.join(dup)}", line=1)
        missing = [c for c in columns if c not in header]
        if missing:
            raise SpecError.at(
                name, f"missing column(s) {', '.join(missing)}", field="header", line=1
            )
        rows: list[Row] = []
        for values in reader:
            if not values or (values == [""] and len(header) > 1):
                continue  # blank line
            if len(values) != len(header):
                raise SpecError.at(
                    name,
                    f"row has {len(values)} cells, header has {len(header)}",
                    line=reader.line_num,
                )
            rows.append(dict(zip(header, values, strict=True)))
    except csv.Error as exc:
        raise SpecError.at(name, f"invalid CSV: {exc}", line=reader.line_num) from exc
    return header, rows


def read_table(path: Path, columns: Sequence[str] = (), display: str | None = None) -> list[Row]:
    """Read a table file; a missing file is an error."""
    name = display or str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SpecError.at(name, "file not found") from exc
    except OSError as exc:
        raise SpecError.at(name, f"cannot read: {exc.strerror or exc}") from exc
    return parse_table(data, name, columns)[1]


def read_table_or_empty(path: Path, columns: Sequence[str] = ()) -> list[Row]:
    return read_table(path, columns) if path.exists() else []


# Columns holding free text that people read in a spreadsheet (module and reason names,
# descriptions, ledger notes, messages): the one place they are made formula-safe.
TEXT_COLUMNS = frozenset({"name", "description", "note", "message"})
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` that a spreadsheet cannot run as a formula: a leading ``= + - @``, tab or
    CR gets a ``'`` prefix (OWASP "CSV injection"); idempotent, so rewriting a table
    read back does not stack quotes."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_table(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> bytes:
    """Serialise rows under ``columns`` (extra keys dropped, missing ones empty; free-text
    columns neutralised, see ``neutralise``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # csv quotes only characters of the line terminator, so a lone "\r" would be lost
    quote_all = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow(columns)
    text = [c in TEXT_COLUMNS for c in columns]
    for row in rows:
        cells = [
            neutralise(v) if t else v
            for v, t in zip((_cell(row.get(c, "")) for c in columns), text, strict=True)
        ]
        (quote_all if any("\r" in c for c in cells) else w).writerow(cells)
    return buf.getvalue().encode("utf-8")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_table(
    path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, object]], *, durable=True
) -> None:
    atomic_write_bytes(path, render_table(columns, rows), durable=durable)


def header_with_extras(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> list[str]:
    """The required columns, then any extra columns the rows carry (order of appearance)."""
    out = list(columns)
    for row in rows:
        for k in row:
            if k not in out:
                out.append(k)
    return out


def parse_bool(value: str, name: str, field: str, line: int | None = None) -> bool:
    v = value.strip().lower()
    if v == "true":
        return True
    if v == "false":
        return False
    raise SpecError(Problem(name, line, field, f"expected true or false, got {value!r}"))


def parse_int(value: str, name: str, field: str, line: int | None = None) -> int:
    v = value.strip()
    if not v or not (v.lstrip("-").isdigit()) or len(v) > 19:
        raise SpecError(Problem(name, line, field, f"expected an integer, got {value!r}"))
    return int(v)
