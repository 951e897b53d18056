"""Pasting ``${{ }}`` into a ``run:`` script without letting data become code.

GitHub pastes the value's text into the script, so a param such as
``$(touch /tmp/pwned)`` would run. workmill instead puts each value that can
carry tenant data (``inputs``, ``env``, ``steps``) into an environment
variable it creates (``WM_EXPR_1``…) and pastes a *reference* to it, chosen
for where the expression sits in the script (bare, in quotes, in a heredoc,
in a Python string or f-string). Values from ``github``/``runner`` are
platform paths and are pasted as text, as on GitHub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from workmill.runner.evaluate import Contexts, evaluate, to_string
from workmill.runner.expressions import (
    ContextRef,
    ExpressionError,
    Literal,
    Node,
    Property,
    Segment,
    contexts_used,
    parse_template,
)

TAINTED_CONTEXTS = frozenset({"inputs", "env", "steps"})


@dataclass
class Substituted:
    script: str
    env: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# The only expressions a run: script may paste as text: platform paths, never tenant data.
PLATFORM_VALUES = frozenset(
    {("github", "action_path"), ("github", "workspace"), ("runner", "temp"), ("runner", "os")}
)


def _is_platform_value(node: Node) -> bool:
    if isinstance(node, Literal):
        return True
    return (
        isinstance(node, Property)
        and isinstance(node.obj, ContextRef)
        and (node.obj.name, node.name.lower()) in PLATFORM_VALUES
    )


def pasted_expressions(script: str) -> list[str]:
    """Each ``${{ … }}`` of a run: script that is not a platform path (any case, any form:
    ``inputs.x``, ``INPUTS.x``, ``format(…)``, ``github.event.…``), for validation to refuse.

    A script that does not parse is reported whole, so nothing slips by unchecked.
    """
    if "${{" not in script:
        return []
    try:
        segments = parse_template(script)
    except ExpressionError:
        return ["${{ … }} (the script's expressions do not parse)"]
    return [
        f"${{{{ {seg.text} }}}}"
        for seg in segments
        if seg.expr is not None and not _is_platform_value(seg.expr)
    ]


def is_tainted(seg: Segment) -> bool:
    return seg.expr is not None and bool(contexts_used(seg.expr) & TAINTED_CONTEXTS)


class _ShellScanner:
    """Quote state of a POSIX shell script, fed left to right."""

    def __init__(self) -> None:
        self.state = "normal"  # normal | sq | dq | comment | heredoc
        self.escape = False
        self.prev = "\n"
        self.line = ""  # current line so far (for heredoc detection)
        self.pending_heredocs: list[tuple[str, bool]] = []  # (delimiter, quoted)
        self.heredoc: tuple[str, bool] | None = None

    def feed(self, text: str) -> None:
        for c in text:
            self._char(c)

    def _char(self, c: str) -> None:
        if c == "\n":
            self._end_line()
            self.prev = c
            return
        self.line += c
        if self.state == "heredoc":
            pass
        elif self.escape:
            self.escape = False
        elif self.state == "normal":
            self._normal(c)
        elif self.state == "sq":
            if c == "'":
                self.state = "normal"
        elif self.state == "dq":
            self._double_quoted(c)
        self.prev = c

    def _normal(self, c: str) -> None:
        if c == "\\":
            self.escape = True
        elif c == "'":
            self.state = "sq"
        elif c == '"':
            self.state = "dq"
        elif c == "#" and self.prev in " \t\n;&|(":
            self.state = "comment"

    def _double_quoted(self, c: str) -> None:
        if c == "\\":
            self.escape = True
        elif c == '"':
            self.state = "normal"

    def _end_line(self) -> None:
        line, self.line = self.line, ""
        if self.state == "heredoc":
            assert self.heredoc is not None
            if line.lstrip("\t") == self.heredoc[0]:
                self.heredoc = None
                self.state = "normal"
        elif self.state in ("normal", "comment"):
            self.state = "normal"
            self.pending_heredocs += _heredocs_in(line)
        self.escape = False
        if self.state == "normal" and self.pending_heredocs:
            self.heredoc = self.pending_heredocs.pop(0)
            self.state = "heredoc"

    def reference(self, var: str) -> str:
        if self.state == "dq":
            return "${" + var + "}"
        if self.state == "sq":
            return "'\"${" + var + "}\"'"
        if self.state == "comment":
            return var
        if self.state == "heredoc":
            return "${" + var + "}"  # expands in <<EOF, stays literal text in <<'EOF'
        return '"${' + var + '}"'


def _heredocs_in(line: str) -> list[tuple[str, bool]]:
    out = []
    i = 0
    while True:
        k = line.find("<<", i)
        if k < 0:
            return out
        j = k + 2
        if line.startswith("<", j):  # <<< here-string
            i = j + 1
            continue
        if line.startswith("-", j):
            j += 1
        while j < len(line) and line[j] in " \t":
            j += 1
        word = ""
        quoted = False
        while j < len(line) and line[j] not in " \t;|&<>()":
            if line[j] in "'\"\\":
                quoted = True
            else:
                word += line[j]
            j += 1
        if word:
            out.append((word, quoted))
        i = j


class _PythonScanner:
    """String/comment state of Python source, fed left to right."""

    def __init__(self) -> None:
        self.state = "normal"  # normal | str | comment
        self.quote = ""
        self.prefix = ""
        self.escape = False
        self.buf = ""

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            c = text[i]
            if self.state == "comment":
                if c == "\n":
                    self.state = "normal"
            elif self.state == "str":
                if self.escape:
                    self.escape = False
                elif c == "\\":
                    self.escape = True
                elif text.startswith(self.quote, i):
                    self.state = "normal"
                    i += len(self.quote)
                    self.buf = ""
                    continue
                elif c == "\n" and len(self.quote) == 1:
                    self.state = "normal"
            else:
                if c == "#":
                    self.state = "comment"
                elif c in "'\"":
                    triple = c * 3
                    self.quote = triple if text.startswith(triple, i) else c
                    self.prefix = _string_prefix(self.buf)
                    self.state = "str"
                    i += len(self.quote)
                    self.buf = ""
                    continue
                self.buf = (self.buf + c)[-3:]
            i += 1

    def reference(self, var: str) -> str:
        if self.state == "comment":
            return var
        if self.state == "str":
            if "f" in self.prefix.lower():
                inner = "'" if '"' in self.quote else '"'
                return (
                    "{__import__("
                    + inner
                    + "os"
                    + inner
                    + ").environ["
                    + inner
                    + var
                    + inner
                    + "]}"
                )
            q = self.quote
            return q + " + __import__('os').environ['" + var + "'] + " + q
        return "__import__('os').environ['" + var + "']"


def _string_prefix(buf: str) -> str:
    p = ""
    for c in reversed(buf):
        if c.lower() in "rbfu":
            p = c + p
        else:
            break
    return p


def substitute_run(
    segments: list[Segment],
    ctx: Contexts,
    shell: str,
    next_var: Callable[[], str],
) -> Substituted:
    """The script to run, with tenant-reachable values referenced through env vars."""
    scanner: _ShellScanner | _PythonScanner = (
        _PythonScanner() if shell == "python" else _ShellScanner()
    )
    out: list[str] = []
    res = Substituted("")
    for seg in segments:
        if seg.expr is None:
            piece = seg.text
        elif is_tainted(seg):
            var = next_var()
            res.env[var] = to_string(evaluate(seg.expr, ctx))
            piece = scanner.reference(var)
            res.warnings.append(
                f"`${{{{ {seg.text} }}}}` is pasted into a run: script; workmill passes it "
                f"as ${var} instead of as text (read it through env: to silence this)"
            )
        else:
            piece = to_string(evaluate(seg.expr, ctx))
        scanner.feed(piece)
        out.append(piece)
    res.script = "".join(out)
    return res
