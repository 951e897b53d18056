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

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest known prefix of ``loc`` (errors point at the nearest key)."""
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


def _key_text(value: Any) -> str | int:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, int | str):
        return value
    return str(value)


def parse_yaml(text: str, path: str) -> YamlDoc:
    """Parse one YAML document; every failure is a SpecError naming ``path`` and the line."""
    if len(text) > MAX_BYTES:
        raise SpecError.at(path, f"file is larger than {MAX_BYTES} bytes")
    doc = YamlDoc(path, None)
    anchors: dict[str, tuple[Any, int]] = {}
    # stack of (container, loc, pending_key, seen_keys, anchor, size)
    stack: list[list[Any]] = []
    nodes = 0
    root_set = False

    def attach(value: Any, line: int, size: int) -> None:
        nonlocal root_set
        if not stack:
            doc.data = value
            doc.lines[()] = line
            root_set = True
            return
        top = stack[-1]
        container, loc = top[0], top[1]
        top[5] += size
        if isinstance(container, list):
            idx = len(container)
            container.append(value)
            doc.lines.setdefault((*loc, idx), line)
            return
        if top[2] is _NO_KEY:
            if isinstance(value, dict | list):
                raise SpecError.at(path, "mapping keys must be scalars", line=line)
            key = _key_text(value)
            if key in top[3]:
                raise SpecError.at(
                    path,
                    f"duplicate key {key!r} (first at line {top[3][key]})",
                    field=".".join(map(str, (*loc, key))),
                    line=line,
                )
            top[3][key] = line
            top[2] = key
            doc.lines[(*loc, key)] = line
        else:
            container[top[2]] = value
            top[2] = _NO_KEY

    try:
        for ev in yaml.parse(text, Loader=_Loader):
            line = ev.start_mark.line + 1 if ev.start_mark else 0
            if isinstance(ev, yaml.DocumentStartEvent) and root_set:
                raise SpecError.at(path, "more than one YAML document", line=line)
            if isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise SpecError.at(path, f"nested deeper than {MAX_DEPTH} levels", line=line)
                loc: Loc = ()
                if stack:
                    parent = stack[-1]
                    if isinstance(parent[0], list):
                        loc = (*parent[1], len(parent[0]))
                    elif parent[2] is not _NO_KEY:
                        loc = (*parent[1], parent[2])
                container: Any = {} if isinstance(ev, yaml.MappingStartEvent) else []
                stack.append([container, loc, _NO_KEY, {}, ev.anchor, 1, line])
            elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                container, _loc, _k, _seen, anchor, size, start = stack.pop()
                nodes += 1
                if anchor:
                    anchors[anchor] = (container, size)
                attach(container, start, size)
            elif isinstance(ev, yaml.ScalarEvent):
                nodes += 1
                value = _scalar(ev)
                if ev.anchor:
                    anchors[ev.anchor] = (value, 1)
                attach(value, line, 1)
            elif isinstance(ev, yaml.AliasEvent):
                if ev.anchor not in anchors:
                    raise SpecError.at(path, f"unknown alias *{ev.anchor}", line=line)
                value, size = anchors[ev.anchor]
                # an alias costs what it expands to: this is what stops "billion laughs"
                nodes += size
                attach(value, line, size)
            if nodes > MAX_NODES:
                raise SpecError.at(path, f"document expands to more than {MAX_NODES} values")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        msg = getattr(exc, "problem", None) or str(exc)
        raise SpecError.at(
            path, f"invalid YAML: {msg}", line=mark.line + 1 if mark else None
        ) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        raise SpecError.at(path, f"invalid YAML value: {exc}") from exc
    return doc


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
