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
    header, rows = parse_rows(data, name, columns)
    return header, [dict(zip(header, values, strict=True)) for values in rows]


def parse_rows(
    data: bytes | str, name: str, columns: Sequence[str] = ()
) -> tuple[list[str], list[list[str]]]:
    """``parse_table`` without building a dict per row: (header, rows as value lists).

    Text with no quote and no carriage return is split on newlines and commas (what
    the csv module would do with it, several times faster); anything else, and any
    ragged row, goes through the csv module so errors name the same line.
    """
    text = _text(data, name)
    if text[:1] not in ("", "\n") and not any(c in text for c in ('"', "\r", "\0")):
        lines = text.split("\n")
        header = _header([h.strip() for h in lines[0].split(",")], name, columns)
        width = len(header)
        rows = [ln.split(",") for ln in lines[1:] if ln]
        if all(len(r) == width for r in rows):
            return header, rows
    return _parse_csv(text, name, columns)


def _text(data: bytes | str, name: str) -> str:
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise SpecError.at(
                name, "file starts with a UTF-8 byte-order mark; save it as plain UTF-8", line=1
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError.at(name, f"not UTF-8 (byte {exc.start})") from exc
    if data.startswith("\ufeff"):
        raise SpecError.at(
            name, "file starts with a UTF-8 byte-order mark; save it as plain UTF-8", line=1
        )
    return data


def _header(header: list[str], name: str, columns: Sequence[str]) -> list[str]:
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise SpecError.at(name, f"duplicate column(s) {', '.join(dup)}", line=1)
    missing = [c for c in columns if c not in header]
    if missing:
        raise SpecError.at(name, f"missing column(s) {', '.join(missing)}", field="header", line=1)
    return header


def _parse_csv(text: str, name: str, columns: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        first = next(reader, None)
        if first is None:
            raise SpecError.at(name, "empty file: a header row is required", line=1)
        header = _header([h.strip() for h in first], name, columns)
        rows: list[list[str]] = []
        for values in reader:
            if not values or (values == [""] and len(header) > 1):
                continue  # blank line
            if len(values) != len(header):
                raise SpecError.at(
                    name,
                    f"row has {len(values)} cells, header has {len(header)}",
                    line=reader.line_num,
                )
            rows.append(values)
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
