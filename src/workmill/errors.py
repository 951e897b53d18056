"""The one exception tree of workmill.

Lower-level errors (YAML, CSV, OS, HTTP) are translated into these at the
boundary (``raise SpecError(...) from exc``) so the CLI can print one clear
line and exit with the right code, never a traceback.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path


def one_line(text: str) -> str:
    """``text`` with every control character escaped (newlines too): a hostile value quoted
    in a message cannot forge extra lines or terminal escapes."""
    return "".join(
        ch
        if ch == "\t" or (unicodedata.category(ch)[0] != "C" and ch not in "\u2028\u2029")
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def printable(text: str) -> str:
    """Like ``one_line`` but keeps the newlines a message puts there itself (one problem a line)."""
    return "\n".join(one_line(line) for line in text.split("\n"))


class WorkmillError(Exception):
    """Base of every error workmill raises on purpose. Exit code 1."""

    exit_code = 1


class UsageError(WorkmillError):
    """The command line itself is wrong. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One finding of a validator: where, which field, what is wrong."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        field = self.field or "-"
        return f"{where}: {field}: {self.message}"


class SpecError(WorkmillError):
    """A spec file (YAML/CSV/JSON) is malformed; carries every problem found."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, path: Path | str, message: str, *, field: str = "", line: int | None = None):
        return cls(Problem(str(path), line, field, message))


class ValidationFailed(SpecError):
    """The repository failed validation (all problems are listed)."""


class StaleMaintenance(WorkmillError):
    """maintenance-state/ was compiled from other inputs than the repo holds now."""


class StateError(WorkmillError):
    """The billing state is missing, corrupt or violates a ledger invariant."""


class StateConflict(StateError):
    """A commit was based on a revision that is no longer the head."""


class LedgerError(StateError):
    """A billing operation was refused (bad amount, unknown tenant, ...)."""


class NotFound(WorkmillError):
    """A named thing (tenant, module, work order, release, tag) does not exist."""
