"""GitHub Actions expressions: tokenizer, recursive-descent parser and AST.

Written from GitHub's documented syntax (literals, ``a.b``, ``a['b']``, ``!``,
comparisons, ``&&``/``||``, function calls) so that an action behaves here as
on GitHub. Every malformed input raises :class:`ExpressionError`; nothing else
escapes (hypothesis checks that).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from workmill.errors import WorkmillError

MAX_EXPRESSION_CHARS = 20_000
MAX_DEPTH = 50

# Contexts a composite action run by workmill can read (lower-case: lookups ignore case).
CONTEXTS = ("inputs", "env", "steps", "github", "runner")
# Contexts GitHub has but a locally run composite action does not.
FOREIGN_CONTEXTS = ("secrets", "vars", "job", "jobs", "matrix", "strategy", "needs")
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled")
# name (lower-case) -> (canonical name, min args, max args)
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "success": ("success", 0, 0),
    "failure": ("failure", 0, 0),
    "always": ("always", 0, 0),
    "cancelled": ("cancelled", 0, 0),
    "contains": ("contains", 2, 2),
    "startswith": ("startsWith", 2, 2),
    "endswith": ("endsWith", 2, 2),
    "format": ("format", 1, 64),
    "join": ("join", 1, 2),
    "tojson": ("toJSON", 1, 1),
    "fromjson": ("fromJSON", 1, 1),
}


class ExpressionError(WorkmillError):
    """A ``${{ }}`` expression is malformed, unknown, or failed to evaluate."""


# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class ContextRef:
    name: str  # lower-case


@dataclass(frozen=True)
class Property:
    obj: Node
    name: str


@dataclass(frozen=True)
class Index:
    obj: Node
    index: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # < <= > >= == !=
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical:
    op: str  # && ||
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    name: str  # canonical
    args: tuple[Node, ...]


Node = Literal | ContextRef | Property | Index | Not | Binary | Logical | Call


def walk(node: Node):
    """Every node of the tree, parents first."""
    yield node
    match node:
        case Property(obj=o) | Not(operand=o):
            yield from walk(o)
        case Index(obj=o, index=i):
            yield from walk(o)
            yield from walk(i)
        case Binary(left=a, right=b) | Logical(left=a, right=b):
            yield from walk(a)
            yield from walk(b)
        case Call(args=args):
            for a in args:
                yield from walk(a)


def uses_status_function(node: Node) -> bool:
    return any(isinstance(n, Call) and n.name in STATUS_FUNCTIONS for n in walk(node))


def contexts_used(node: Node) -> set[str]:
    return {n.name for n in walk(node) if isinstance(n, ContextRef)}


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # num str ident op end
    text: str
    value: Any
    pos: int


_OPS = ("<=", ">=", "==", "!=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ".", ",", "*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(
    r"[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_])"
)


def parse_number(text: str) -> float | None:
    """A JSON-ish number as GitHub reads it (hex, octal, exponent, Infinity, NaN); None if not."""
    t = text.strip()
    if t == "":
        return 0.0
    sign = 1.0
    body = t
    if body[:1] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    low = body.lower()
    if body == "Infinity":
        return sign * math.inf
    if body == "NaN":
        return math.nan
    try:
        if low.startswith("0x"):
            return sign * int(low[2:], 16)
        if low.startswith("0o"):
            return sign * int(low[2:], 8)
        if re.fullmatch(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", body):
            return sign * float(body)
    except (ValueError, OverflowError):
        return None
    return None


def tokenize(text: str, start: int = 0, *, in_template: bool = False) -> tuple[list[Token], int]:
    """Tokens from ``start``; in a template, stops at ``}}`` and returns the index after it."""
    toks: list[Token] = []
    i = start
    n = len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            if in_template:
                raise ExpressionError(f"unterminated '${{{{' expression at column {start}")
            toks.append(Token("end", "", None, i))
            return toks, i
        if in_template and text.startswith("}}", i):
            toks.append(Token("end", "}}", None, i))
            return toks, i + 2
        tok = _next_token(text, i, toks)
        toks.append(tok)
        i += len(tok.text)


def _next_token(text: str, i: int, toks: list[Token]) -> Token:
    """The token starting at ``i`` (``toks`` so far tell a sign from a binary operator)."""
    c = text[i]
    if c == "'":
        return _string_token(text, i)
    if c == '"':
        raise ExpressionError(f"strings take single quotes, not double quotes (column {i + 1})")
    prev_operand = bool(toks) and (
        toks[-1].kind in ("num", "str", "ident") or toks[-1].text in (")", "]")
    )
    m = _NUMBER.match(text, i)
    if m and not (prev_operand and c in "+-"):
        value = parse_number(m.group(0))
        if value is None:
            raise ExpressionError(f"invalid number {m.group(0)!r} at column {i + 1}")
        return Token("num", m.group(0), value, i)
    m = _IDENT.match(text, i)
    if m:
        return Token("ident", m.group(0), m.group(0), i)
    for op in _OPS:
        if text.startswith(op, i):
            return Token("op", op, None, i)
    raise ExpressionError(f"unexpected character {c!r} at column {i + 1}")


def _string_token(text: str, i: int) -> Token:
    """A single-quoted literal; ``''`` inside it is one quote."""
    j = i + 1
    buf = []
    while True:
        k = text.find("'", j)
        if k < 0:
            raise ExpressionError(f"unterminated string literal at column {i + 1}")
        buf.append(text[j:k])
        if not text.startswith("''", k):
            return Token("str", text[i : k + 1], "".join(buf), i)
        buf.append("'")
        j = k + 2


# ---------------------------------------------------------------- parser

_KEYWORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": math.nan,
    "Infinity": math.inf,
}


class _Parser:
    def __init__(self, toks: list[Token], source: str) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0
        self.source = source

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def error(self, msg: str, tok: Token | None = None) -> ExpressionError:
        t = tok or self.tok
        return ExpressionError(f"{msg} at column {t.pos + 1} in {self.source!r}")

    def take(self, text: str) -> bool:
        if self.tok.kind == "op" and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            found = self.tok.text or "end of expression"
            raise self.error(f"expected {text!r}, found {found!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        node = self.or_()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.take("||"):
            node = Logical("||", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.equality()
        while self.take("&&"):
            node = Logical("&&", node, self.equality())
        return node

    def equality(self) -> Node:
        node = self.comparison()
        while self.tok.kind == "op" and self.tok.text in ("==", "!="):
            op = self.tok.text
            self.i += 1
            node = Binary(op, node, self.comparison())
        return node

    def comparison(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("<", "<=", ">", ">="):
            op = self.tok.text
            self.i += 1
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.take("!"):
            self.enter()
            node = Not(self.unary())
            self.depth -= 1
            return node
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.take("."):
                t = self.tok
                if t.kind == "op" and t.text == "*":
                    raise self.error("object filters ('.*') are not supported by workmill")
                if t.kind != "ident":
                    raise self.error("expected a property name after '.'")
                self.i += 1
                node = Property(node, t.text)
            elif self.take("["):
                self.enter()
                if self.tok.kind == "op" and self.tok.text == "*":
                    raise self.error("object filters ('[*]') are not supported by workmill")
                idx = self.or_()
                self.expect("]")
                self.depth -= 1
                node = Index(node, idx)
            else:
                return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            return Literal(float(t.value))
        if t.kind == "str":
            self.i += 1
            return Literal(t.value)
        if t.kind == "op" and t.text == "(":
            self.i += 1
            self.enter()
            node = self.or_()
            self.expect(")")
            self.depth -= 1
            return node
        if t.kind == "ident":
            self.i += 1
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(t)
            if t.text in _KEYWORDS:
                return Literal(_KEYWORDS[t.text])
            name = t.text.lower()
            if name in CONTEXTS:
                return ContextRef(name)
            if name in FOREIGN_CONTEXTS:
                raise self.error(
                    f"context {t.text!r} is not available to a composite action run by workmill",
                    t,
                )
            raise self.error(f"unknown context or literal {t.text!r}", t)
        found = t.text or "end of expression"
        raise self.error(f"expected a value, found {found!r}")

    def call(self, name_tok: Token) -> Node:
        key = name_tok.text.lower()
        if key not in FUNCTIONS:
            if key == "hashfiles":
                raise self.error("hashFiles() is not supported by workmill", name_tok)
            raise self.error(f"unknown function {name_tok.text!r}", name_tok)
        canonical, lo, hi = FUNCTIONS[key]
        self.expect("(")
        self.enter()
        args: list[Node] = []
        if not self.take(")"):
            while True:
                args.append(self.or_())
                if self.take(")"):
                    break
                self.expect(",")
        self.depth -= 1
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise self.error(f"{canonical}() takes {want} argument(s), got {len(args)}", name_tok)
        return Call(canonical, tuple(args))


def parse(text: str) -> Node:
    """Parse a bare expression (the inside of ``${{ }}``, or an ``if:`` value)."""
    if not isinstance(text, str):
        raise ExpressionError("an expression must be a string")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    toks, _ = tokenize(text)
    return _Parser(toks, text).parse()


# ---------------------------------------------------------------- templates


@dataclass(frozen=True)
class Segment:
    """A piece of a template: literal text, or an expression with its source text."""

    text: str
    expr: Node | None = None
    start: int = 0
    end: int = 0


def parse_template(text: str) -> list[Segment]:
    """Split ``text`` into literal text and ``${{ expr }}`` segments (parsed)."""
    if len(text) > 1_000_000:
        raise ExpressionError("value longer than 1,000,000 characters")
    out: list[Segment] = []
    i = 0
    while True:
        j = text.find("${{", i)
        if j < 0:
            if i < len(text):
                out.append(Segment(text[i:], None, i, len(text)))
            return out
        if j > i:
            out.append(Segment(text[i:j], None, i, j))
        toks, end = tokenize(text, j + 3, in_template=True)
        inner = text[j + 3 : end - 2]
        if len(inner) > MAX_EXPRESSION_CHARS:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
        out.append(Segment(inner.strip(), _Parser(toks, inner.strip()).parse(), j, end))
        i = end


def has_expression(text: str) -> bool:
    return "${{" in text


def parse_condition(value: str | bool | None) -> Node:
    """An ``if:`` value: a bare expression or one wrapped in ``${{ }}``; default success().

    Without a status function GitHub evaluates ``success() && (expr)``.
    """
    if value is None:
        node: Node = Call("success", ())
    elif isinstance(value, bool):
        node = Literal(value)
    else:
        text = value.strip()
        if has_expression(text):
            segs = parse_template(text)
            if len(segs) != 1 or segs[0].expr is None:
                raise ExpressionError(
                    f"if: {value!r} mixes text and ${{{{ }}}}; write one expression"
                )
            node = segs[0].expr
        else:
            node = parse(text)
    if not uses_status_function(node):
        node = Logical("&&", Call("success", ()), node)
    return node
