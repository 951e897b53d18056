"""A fast path for small, plain spec files (work orders, and modules a run reads).

``yamlio.parse_yaml`` drives libyaml event by event so it can refuse hostile
input and remember lines; that costs ~2.5x libyaml's own composer. A file
that *cannot* be hostile in those ways (no anchors, aliases, tags or merge
keys, small, shallow) is loaded with the C composer instead. The result is
only trusted when it validates cleanly: on any problem the caller re-reads
the file with ``parse_yaml`` so errors carry line numbers and the same rules.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from workmill.errors import SpecError
from workmill.specs import parse_model
from workmill.yamlio import MAX_BYTES, MAX_DEPTH, YamlDoc

M = TypeVar("M", bound=BaseModel)

try:
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Base = yaml.SafeLoader

MAX_FAST_BYTES = 64 * 1024
# an upper bound of the nesting the composer could meet (each level needs one of these)
MAX_NESTING_MARKS = 2000
_FORBIDDEN = ("&", "*", "!", "<<", "%", "\t")


class _NotPlain(Exception):
    pass


class _FastLoader(_Base):  # type: ignore[misc, valid-type]
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[tuple[str, Any]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _NotPlain
            key = self.construct_object(key_node)
            ident = (type(key).__name__, key)
            if ident in seen:
                raise _NotPlain  # duplicate key: the slow path reports it with lines
            seen.add(ident)
        return super().construct_mapping(node, deep)


# keep timestamps as text, as yamlio does
_FastLoader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)


def _depth(value: Any) -> int:
    deepest = 0
    work = [(value, 1)]
    while work:
        v, d = work.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            work += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            deepest = max(deepest, d)
            work += [(x, d + 1) for x in v]
    return deepest


def fast_load(text: str) -> tuple[bool, Any]:
    """(True, data) when ``text`` is plain enough to load fast; (False, None) otherwise."""
    if len(text) > MAX_FAST_BYTES or any(s in text for s in _FORBIDDEN):
        return False, None
    marks = text.count("\n") + text.count("-") + text.count("[") + text.count("{") + text.count("?")
    if marks > MAX_NESTING_MARKS:
        return False, None
    try:
        data = yaml.load(text, Loader=_FastLoader)
    except (_NotPlain, yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        return False, None
    if _depth(data) >= MAX_DEPTH - 1:
        return False, None
    return True, data


def fast_model(data: bytes, rel: str, model: type[M]) -> tuple[M, YamlDoc] | None:
    """The file's spec when it is plain and validates cleanly; None sends it to the full
    line-tracking path (which reports any problem with its line)."""
    if len(data) > MAX_BYTES:
        return None
    try:
        ok, loaded = fast_load(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return None
    if not ok or not isinstance(loaded, dict):
        return None
    doc = YamlDoc(rel, loaded)
    try:
        return parse_model(doc, model), doc
    except SpecError:
        return None
