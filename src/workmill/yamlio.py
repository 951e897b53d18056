"""Safe YAML reading for hostile input, with line numbers for every field.

PyYAML's C parser is driven event by event (never its recursive composer,
which segfaults on deep nesting), so we can refuse deep nesting, alias
bombs, duplicate keys and oversized files before they cost anything, and
remember the line of every value for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is required in production; the pure one keeps tests runnable anywhere
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

from workmill.errors import Problem, SpecError

MAX_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 200_000

Loc = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML document and the line (1-based) of each value's path."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    # set when the data came from a fast load without lines: they are worked out
    # from this text only if a problem needs one (most files never do)
    source: str | None = field(default=None, repr=False, compare=False)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of ``loc`` (errors point at the nearest key)."""
        if self.source is not None:
            text, self.source = self.source, None
            try:
                self.lines = parse_yaml(text, self.path).lines
            except SpecError:
                self.lines = {}
        loc = tuple(loc)
        while True:
            if loc in self.lines:
                return self.lines[loc]
            if not loc:
                return None
            loc = loc[:-1]


_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()


def _scalar(ev: yaml.ScalarEvent) -> Any:
    tag = ev.tag
    if tag is None or tag == "!":
        tag = _resolver.resolve(yaml.ScalarNode, ev.value, ev.implicit)
    if tag not in {
        "tag:yaml.org,2002:str",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }:
        # timestamps, binary, sets, python objects...: keep the text, let the schema decide
        return ev.value
    node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
    return _constructor.construct_object(node)


def key_text(value: Any) -> str | int:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, int | str):
        return value
    return str(value)


@dataclass
class _Frame:
    """A mapping or sequence being built: where it sits, its pending key, its size so far."""

    container: Any
    loc: Loc
    anchor: str | None
    line: int
    key: Any = None  # _NO_KEY until set; a mapping's key waiting for its value
    seen: dict[Any, int] = field(default_factory=dict)
    size: int = 1


class _Builder:
    """Builds a YamlDoc from PyYAML events, refusing what would cost too much."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.doc = YamlDoc(path, None)
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []
        self.nodes = 0
        self.root_set = False

    def error(self, message: str, line: int | None = None, fld: str = "") -> SpecError:
        return SpecError.at(self.path, message, field=fld, line=line)

    def feed(self, ev: yaml.Event) -> None:
        line = ev.start_mark.line + 1 if ev.start_mark else 0
        if isinstance(ev, yaml.DocumentStartEvent) and self.root_set:
            raise self.error("more than one YAML document", line)
        if isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self.open(ev, line)
        elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frame = self.stack.pop()
            self.count(1)
            if frame.anchor:
                self.anchors[frame.anchor] = (frame.container, frame.size)
            self.attach(frame.container, frame.line, frame.size)
        elif isinstance(ev, yaml.ScalarEvent):
            self.count(1)
            value = _scalar(ev)
            if ev.anchor:
                self.anchors[ev.anchor] = (value, 1)
            self.attach(value, line, 1)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor not in self.anchors:
                raise self.error(f"unknown alias *{ev.anchor}", line)
            value, size = self.anchors[ev.anchor]
            # an alias costs what it expands to: this is what stops "billion laughs"
            self.count(size)
            self.attach(value, line, size)

    def count(self, n: int) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise self.error(f"document expands to more than {MAX_NODES} values")

    def open(self, ev: yaml.Event, line: int) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} levels", line)
        loc: Loc = ()
        if self.stack:
            parent = self.stack[-1]
            if isinstance(parent.container, list):
                loc = (*parent.loc, len(parent.container))
            elif parent.key is not _NO_KEY:
                loc = (*parent.loc, parent.key)
        container: Any = {} if isinstance(ev, yaml.MappingStartEvent) else []
        self.stack.append(_Frame(container, loc, ev.anchor, line, key=_NO_KEY))

    def attach(self, value: Any, line: int, size: int) -> None:
        if not self.stack:
            self.doc.data = value
            self.doc.lines[()] = line
            self.root_set = True
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.container, list):
            self.doc.lines.setdefault((*top.loc, len(top.container)), line)
            top.container.append(value)
        elif top.key is _NO_KEY:
            self.set_key(top, value, line)
        else:
            top.container[top.key] = value
            top.key = _NO_KEY

    def set_key(self, top: _Frame, value: Any, line: int) -> None:
        if isinstance(value, dict | list):
            raise self.error("mapping keys must be scalars", line)
        key = key_text(value)
        if key in top.seen:
            fld = ".".join(map(str, (*top.loc, key)))
            raise self.error(f"duplicate key {key!r} (first at line {top.seen[key]})", line, fld)
        top.seen[key] = line
        top.key = key
        self.doc.lines[(*top.loc, key)] = line


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse one YAML document; every failure is a SpecError naming ``path`` and the line."""
    if len(text) > MAX_BYTES:
        raise SpecError.at(path, f"file is larger than {MAX_BYTES} bytes")
    builder = _Builder(path)
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            builder.feed(ev)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = getattr(exc, "problem", None) or str(exc)
        raise SpecError.at(
            path, f"invalid YAML: {msg}", line=mark.line + 1 if mark else None
        ) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError.at(path, f"invalid YAML value: {exc}") from exc
    return builder.doc


class _NoKey:
    def __repr__(self) -> str:
        return "<no key>"


_NO_KEY: Any = _NoKey()


def read_yaml(path: Path, display: str | None = None) -> YamlDoc:
    """Read and parse a YAML file; unreadable or non-UTF-8 files are SpecErrors too."""
    name = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError.at(name, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise SpecError.at(name, f"file is larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError.at(name, f"not UTF-8 (byte {exc.start})") from exc
    return parse_yaml(text, name)


def problem(doc: YamlDoc, loc: Loc, message: str) -> Problem:
    return Problem(doc.path, doc.line_of(loc), ".".join(str(p) for p in loc), message)


def dump_yaml(data: Any) -> str:
    """Stable YAML for files workmill writes (keys in the given order)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
