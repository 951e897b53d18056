"""A fast path for small, plain spec files (work orders, and modules a run reads).

``yamlio.parse_yaml`` drives libyaml event by event so it can refuse hostile
input and remember lines; that costs several times libyaml's own composer. A
file that *cannot* be hostile in those ways (no anchors, aliases, tags or
merge keys, small, shallow) is composed by libyaml in C and turned into data
here, with the same scalar rules as ``parse_yaml`` (timestamps and other
exotic implicit types stay text, keys are normalised the same way). The
result is only trusted when it validates cleanly: on any problem the caller
re-reads the file with ``parse_yaml`` so errors carry line numbers and the
same rules.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from workmill.errors import SpecError
from workmill.specs import parse_model
from workmill.yamlio import MAX_BYTES, MAX_DEPTH, YamlDoc, key_text

M = TypeVar("M", bound=BaseModel)

try:
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - libyaml missing
    _Parser = None

MAX_FAST_BYTES = 64 * 1024
# an upper bound of the nesting the composer could meet (each level needs one of these)
MAX_NESTING_MARKS = 2000
_FORBIDDEN = ("&", "*", "!", "<<", "%", "\t")
_STR = "tag:yaml.org,2002:str"
# the scalar types parse_yaml constructs; any other implicit type keeps its text
_CONSTRUCTED = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MEMO_LIMIT = 50_000

_resolver = yaml.resolver.Resolver()
_COLLECTION_TAGS = (
    {}
    if _resolver.yaml_path_resolvers
    else {
        MappingNode: _resolver.DEFAULT_MAPPING_TAG,
        SequenceNode: _resolver.DEFAULT_SEQUENCE_TAG,
    }
)
_FIRST_CHARS = frozenset(k for k in _resolver.yaml_implicit_resolvers if k)
assert None not in _resolver.yaml_implicit_resolvers  # no resolver for every first character
_constructor = yaml.constructor.SafeConstructor()
# plain scalars repeat across thousands of files (keys, small numbers, enum values):
# resolving and constructing each distinct text once is most of the saving
_tags: dict[tuple[str, tuple[bool, bool]], str] = {}
_values: dict[tuple[str, str], Any] = {}


class _NotPlain(Exception):
    pass


if _Parser is not None:

    class _PlainParser(_Parser):  # type: ignore[misc, valid-type]
        """libyaml's C composer with a memoised implicit-type resolver.

        Path resolvers are never registered, so descending needs no bookkeeping.
        """

        def descend_resolver(self, parent: Any, index: Any) -> None:
            return None

        def ascend_resolver(self) -> None:
            return None

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is not ScalarNode:
                # no path resolvers: collections resolve by kind alone
                return _COLLECTION_TAGS.get(kind) or _resolver.resolve(kind, value, implicit)
            if not implicit[0] or (value and value[0] not in _FIRST_CHARS):
                return _STR  # quoted, or no implicit type starts with this character
            key = (value, implicit)
            tag = _tags.get(key)
            if tag is None:
                if len(_tags) > _MEMO_LIMIT:
                    _tags.clear()
                tag = _tags[key] = _resolver.resolve(kind, value, implicit)
            return tag


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    if tag == _STR or tag not in _CONSTRUCTED:
        return node.value
    key = (tag, node.value)
    try:
        return _values[key]
    except KeyError:
        pass
    if len(_values) > _MEMO_LIMIT:
        _values.clear()
    value = _values[key] = _constructor.yaml_constructors[tag](_constructor, node)
    return value


def _build(node: Any, depth: int) -> Any:
    cls = node.__class__
    if cls is ScalarNode:
        return _scalar(node)
    if depth >= MAX_DEPTH - 1:
        raise _NotPlain  # the full path reports the depth with its line
    if cls is SequenceNode:
        return [_build(item, depth + 1) for item in node.value]
    if cls is not MappingNode:
        raise _NotPlain
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is not ScalarNode:
            raise _NotPlain
        key = _scalar(key_node)
        if key.__class__ is not str:
            key = key_text(key)
        if key in out:
            raise _NotPlain  # duplicate key: the full path reports it with lines
        out[key] = _build(value_node, depth + 1)
    return out


def fast_load(text: str) -> tuple[bool, Any]:
    """(True, data) when ``text`` is plain enough to load fast; (False, None) otherwise."""
    if _Parser is None or len(text) > MAX_FAST_BYTES or any(s in text for s in _FORBIDDEN):
        return False, None
    marks = text.count("\n") + text.count("-") + text.count("[") + text.count("{") + text.count("?")
    if marks > MAX_NESTING_MARKS:
        return False, None
    try:
        node = _PlainParser(text).get_single_node()
        if node is None:
            return False, None
        return True, _build(node, 0)
    except (_NotPlain, yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        return False, None


def fast_model(data: bytes, rel: str, model: type[M]) -> tuple[M, YamlDoc] | None:
    """The file's spec when it is plain and validates cleanly; None sends it to the full
    line-tracking path (which reports any problem with its line)."""
    if len(data) > MAX_BYTES:
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    ok, loaded = fast_load(text)
    if not ok or not isinstance(loaded, dict):
        return None
    doc = YamlDoc(rel, loaded, source=text)
    try:
        return parse_model(doc, model), doc
    except SpecError:
        return None
