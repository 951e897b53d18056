"""Evaluating expressions with GitHub's value rules.

Loose equality coerces mismatched types to numbers (null→0, bools→1/0,
strings parsed as JSON numbers or NaN); strings compare ignoring case;
``&&``/``||`` return an operand, as on GitHub.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workmill.runner.expressions import (
    Binary,
    Call,
    ContextRef,
    ExpressionError,
    Index,
    Literal,
    Logical,
    Node,
    Not,
    Property,
    Segment,
    parse_number,
)


@dataclass
class Status:
    """What the status functions see: has an earlier step failed, was the run cancelled."""

    failed: bool = False
    cancelled: bool = False


@dataclass
class Contexts:
    """The values ``inputs``, ``env``, ``steps``, ``github`` and ``runner`` resolve to."""

    values: dict[str, Any] = field(default_factory=dict)
    status: Status = field(default_factory=Status)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def to_number(v: Any) -> float:
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        n = parse_number(v)
        return math.nan if n is None else n
    return math.nan


def truthy(v: Any) -> bool:
    if v is None or v is False:
        return False
    if v is True:
        return True
    if is_number(v):
        return not (v == 0 or math.isnan(v))
    if isinstance(v, str):
        return v != ""
    return True


def format_number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def to_string(v: Any) -> str:
    """How a value is pasted into text (``${{ }}`` in a string): null is empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if is_number(v):
        return format_number(float(v))
    if isinstance(v, str):
        return v
    return to_json(v)


def to_json(v: Any) -> str:
    def norm(x: Any) -> Any:
        if is_number(x):
            f = float(x)
            if math.isnan(f) or math.isinf(f):
                return None
            return int(f) if f == int(f) and abs(f) < 1e15 else f
        if isinstance(x, dict):
            return {str(k): norm(val) for k, val in x.items()}
        if isinstance(x, list | tuple):
            return [norm(i) for i in x]
        return x

    return json.dumps(norm(v), indent=2, ensure_ascii=False)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if is_number(v):
        return "num"
    if isinstance(v, str):
        return "str"
    return "obj"


def loose_equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka == kb:
        if ka == "str":
            return a.casefold() == b.casefold()
        if ka == "num":
            return float(a) == float(b)
        if ka == "obj":
            return a is b
        return a == b
    if ka == "obj" or kb == "obj":
        return False
    return to_number(a) == to_number(b)


def _compare(op: str, a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka == "obj" or kb == "obj":
        return False
    if ka == kb == "str":
        x: Any = a.casefold()
        y: Any = b.casefold()
    else:
        x, y = to_number(a), to_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def _lookup(obj: Any, key: Any) -> Any:
    """Property/index access; missing or mistyped → null (GitHub never raises here)."""
    if isinstance(obj, Mapping):
        if not isinstance(key, str):
            key = to_string(key)
        if key in obj:
            return obj[key]
        folded = key.casefold()
        for k, v in obj.items():
            if isinstance(k, str) and k.casefold() == folded:
                return v
        return None
    if isinstance(obj, list | tuple):
        if isinstance(key, str):
            return None
        n = to_number(key)
        if math.isnan(n) or math.isinf(n) or n < 0:
            return None
        i = int(n)
        return obj[i] if i < len(obj) else None
    return None


def evaluate(node: Node, ctx: Contexts) -> Any:
    match node:
        case Literal(value=v):
            return v
        case ContextRef(name=name):
            return ctx.values.get(name)
        case Property(obj=o, name=name):
            return _lookup(evaluate(o, ctx), name)
        case Index(obj=o, index=i):
            return _lookup(evaluate(o, ctx), evaluate(i, ctx))
        case Not(operand=o):
            return not truthy(evaluate(o, ctx))
        case Logical(op="&&", left=a, right=b):
            left = evaluate(a, ctx)
            return evaluate(b, ctx) if truthy(left) else left
        case Logical(left=a, right=b):
            left = evaluate(a, ctx)
            return left if truthy(left) else evaluate(b, ctx)
        case Binary(op="==", left=a, right=b):
            return loose_equal(evaluate(a, ctx), evaluate(b, ctx))
        case Binary(op="!=", left=a, right=b):
            return not loose_equal(evaluate(a, ctx), evaluate(b, ctx))
        case Binary(op=op, left=a, right=b):
            return _compare(op, evaluate(a, ctx), evaluate(b, ctx))
        case Call(name=name, args=args):
            return _call(name, [evaluate(a, ctx) for a in args], ctx)
    raise ExpressionError(f"cannot evaluate {node!r}")  # pragma: no cover


def _call(name: str, args: list[Any], ctx: Contexts) -> Any:
    st = ctx.status
    if name in _STATUS_FUNCTIONS:
        return _STATUS_FUNCTIONS[name](st.failed, st.cancelled)
    if name not in _FUNCTIONS:
        raise ExpressionError(f"unknown function {name!r}")  # pragma: no cover
    return _FUNCTIONS[name](args)


_STATUS_FUNCTIONS: dict[str, Callable[[bool, bool], bool]] = {
    "success": lambda failed, cancelled: not failed and not cancelled,
    "failure": lambda failed, cancelled: failed,
    "always": lambda failed, cancelled: True,
    "cancelled": lambda failed, cancelled: cancelled,
}


def _contains(args: list[Any]) -> bool:
    hay, needle = args
    if isinstance(hay, list | tuple):
        return any(loose_equal(x, needle) for x in hay)
    return to_string(needle).casefold() in to_string(hay).casefold()


def _join(args: list[Any]) -> str:
    sep = to_string(args[1]) if len(args) > 1 else ","
    if isinstance(args[0], list | tuple):
        return sep.join(to_string(x) for x in args[0])
    return to_string(args[0])


def _parse_json(args: list[Any]) -> Any:
    text = to_string(args[0])
    try:
        value = json.loads(text, parse_constant=lambda c: None)
    except (ValueError, RecursionError) as exc:
        raise ExpressionError(f"fromJSON(): not valid JSON: {text[:80]!r}") from exc
    return _from_json(value)


_FUNCTIONS: dict[str, Callable[[list[Any]], Any]] = {
    "contains": _contains,
    "startsWith": lambda a: to_string(a[0]).casefold().startswith(to_string(a[1]).casefold()),
    "endsWith": lambda a: to_string(a[0]).casefold().endswith(to_string(a[1]).casefold()),
    "format": lambda a: _format(to_string(a[0]), [to_string(x) for x in a[1:]]),
    "join": _join,
    "toJSON": lambda a: to_json(a[0]),
    "fromJSON": _parse_json,
}


def _from_json(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def _format(fmt: str, args: list[str]) -> str:
    out: list[str] = []
    i = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c == "{":
            if fmt.startswith("{{", i):
                out.append("{")
                i += 2
                continue
            j = fmt.find("}", i)
            idx = fmt[i + 1 : j] if j > 0 else ""
            if j < 0 or not idx.isdigit():
                raise ExpressionError(f"format(): invalid placeholder in {fmt!r}")
            k = int(idx)
            if k >= len(args):
                raise ExpressionError(f"format(): no argument for {{{k}}} in {fmt!r}")
            out.append(args[k])
            i = j + 1
        elif c == "}":
            if fmt.startswith("}}", i):
                out.append("}")
                i += 2
                continue
            raise ExpressionError(f"format(): unbalanced '}}' in {fmt!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def render(segments: list[Segment], ctx: Contexts) -> str:
    """A template's text with every expression pasted as a string."""
    return "".join(s.text if s.expr is None else to_string(evaluate(s.expr, ctx)) for s in segments)


def evaluate_value(segments: list[Segment], ctx: Contexts) -> Any:
    """A value that is exactly one ``${{ }}`` keeps its type; anything else is text."""
    if len(segments) == 1 and segments[0].expr is not None:
        return evaluate(segments[0].expr, ctx)
    return render(segments, ctx)
