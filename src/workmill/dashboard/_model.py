"""What a dashboard holds: stages with a status, and the last orchestrator run.

docs/reference.md "Status dashboard". The state is plain data (pydantic, so the
copy embedded in a comment — which anyone with write access could have edited —
is validated before it is trusted); merging two copies is a pure function.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workmill import clock
from workmill.errors import UsageError

STAGE_KEY = re.compile(r"[a-z0-9][a-z0-9._-]{0,47}")
SHA = re.compile(r"[0-9a-f]{7,64}")
MAX_STAGES = 32
MAX_NOTE = 120
MAX_LINK = 400


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"


ICONS: dict[Status, str] = {
    Status.PENDING: "⏳",
    Status.RUNNING: "🔄",
    Status.SUCCESS: "✅",
    Status.FAILURE: "❌",
    Status.SKIPPED: "⏭️",
}

# GitHub's job / step results that are not one of ours: the word is kept as the note
GITHUB_RESULTS: dict[str, Status] = {"cancelled": Status.FAILURE}

# when two copies disagree about a stage at the same instant, the later phase wins
_RANK = {
    Status.PENDING: 0,
    Status.RUNNING: 1,
    Status.SKIPPED: 2,
    Status.SUCCESS: 3,
    Status.FAILURE: 4,
}


def parse_status(text: str | Status) -> tuple[Status, str | None]:
    """A status word (ours, or GitHub's ``cancelled``) → (status, the word to show or None)."""
    word = str(text).strip().lower()
    if word in GITHUB_RESULTS:
        return GITHUB_RESULTS[word], word
    try:
        return Status(word), None
    except ValueError:
        allowed = ", ".join([*(s.value for s in Status), *GITHUB_RESULTS])
        raise UsageError(f"--status: {text!r} is not a dashboard status ({allowed})") from None


def check_stage_key(key: str) -> str:
    if not STAGE_KEY.fullmatch(key):
        raise UsageError(
            f"--stage: {key!r} is not a stage key (lower-case letters, digits, '.', '_', '-')"
        )
    return key


def check_sha(sha: str) -> str:
    sha = sha.strip().lower()
    if not SHA.fullmatch(sha):
        raise UsageError(f"--sha: {sha!r} is not a commit sha (7 to 64 hex digits)")
    return sha


def check_link(link: str | None) -> str | None:
    """Only plain http(s) URLs without credentials: a link is shown to everyone who reads the PR."""
    if link is None or link == "":
        return None
    if len(link) > MAX_LINK or not re.fullmatch(r"https?://[^\s@<>\"'`|()\[\]]+", link):
        raise UsageError(
            f"--link: {link[:80]!r} is not an http(s) URL without credentials "
            f"(at most {MAX_LINK} characters)"
        )
    return link


def clip_note(note: str | None) -> str | None:
    if not note:
        return None
    note = " ".join(note.split())
    return note if len(note) <= MAX_NOTE else note[: MAX_NOTE - 1] + "…"


def now_stamp() -> str:
    """Full-precision UTC timestamp: the order of two updates of one stage."""
    return clock.now().astimezone(UTC).isoformat()


def parse_stamp(value: str) -> datetime:
    return clock.parse_iso(value)


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Stage(_Data):
    key: str = Field(pattern=STAGE_KEY.pattern)
    status: Status = Status.PENDING
    link: str | None = Field(None, max_length=MAX_LINK)
    note: str | None = Field(None, max_length=MAX_NOTE)
    word: str | None = Field(None, pattern=r"[a-z_]{1,20}")  # GitHub's result when not ours
    at: str | None = None  # when it was last set (None: never, e.g. a pending stage from init)

    def newer_than(self, other: Stage) -> bool:
        """Whether this copy of the stage should replace ``other`` in a merge (a total order)."""
        return self._order() > other._order()

    def _order(self) -> tuple[datetime, int, str]:
        # the later update wins; at the same instant the later phase; then any fixed order
        at = parse_stamp(self.at) if self.at else datetime.min.replace(tzinfo=UTC)
        return at, _RANK[self.status], self.model_dump_json()


class RunLine(_Data):
    """One work order of an orchestrator run, as the dashboard shows it."""

    work_order_id: str
    tenant_id: str
    status: str
    spend: int | None = None
    refund: int | None = None
    reasons: list[str] = Field(default_factory=list)  # "103002001 BAD_INPUT (module 002)"


class RunSection(_Data):
    """The last orchestrator run on this commit; replaced as a whole by the next one."""

    title: str = "workmill run"
    link: str | None = None
    at: str
    lines: list[RunLine] = Field(default_factory=list)
    more: int = 0  # lines cut to keep the comment under GitHub's limit
    total_spend: int = 0
    total_refund: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    not_run: int = 0  # work orders the run passed over (already processed, disabled)


class State(_Data):
    sha: str
    pr: int | None = None
    stages: list[Stage] = Field(default_factory=list)
    run: RunSection | None = None

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)

    def with_stage(self, stage: Stage) -> State:
        """This state with ``stage`` set (replacing a stage of the same key, else appended)."""
        if self.stage(stage.key) is None:
            if len(self.stages) >= MAX_STAGES:
                raise UsageError(f"a dashboard holds at most {MAX_STAGES} stages")
            return self.model_copy(update={"stages": [*self.stages, stage]})
        stages = [stage if s.key == stage.key else s for s in self.stages]
        return self.model_copy(update={"stages": stages})

    def ordered(self, configured: list[str]) -> State:
        """Configured stages first, in their order (missing ones added as pending), then the rest."""
        known = {s.key: s for s in self.stages}
        first = [known.get(k) or Stage(key=k) for k in configured]
        rest = [s for s in self.stages if s.key not in configured]
        return self.model_copy(update={"stages": (first + rest)[: max(MAX_STAGES, len(first))]})


def parse_state(raw: str) -> State | None:
    """The embedded JSON, validated; None when it is not ours (edited, or another version)."""
    try:
        return State.model_validate_json(raw)
    except ValidationError:
        return None


def merge(states: list[State]) -> State:
    """One state holding every stage of every copy, each at its newest value.

    Used when duplicates are found (two writers created a comment at once): the
    oldest comment survives and carries everything the others knew.
    """
    if not states:
        raise ValueError("merge of nothing")
    out = states[0]
    for other in states[1:]:
        for stage in other.stages:
            mine = out.stage(stage.key)
            if mine is None or stage.newer_than(mine):
                out = out.with_stage(stage) if len(out.stages) < MAX_STAGES or mine else out
        if other.run is not None and (
            out.run is None or parse_stamp(other.run.at) > parse_stamp(out.run.at)
        ):
            out = out.model_copy(update={"run": other.run})
        if out.pr is None and other.pr is not None:
            out = out.model_copy(update={"pr": other.pr})
    return out


def reflects(state: State, stage: Stage) -> bool:
    """Whether ``state`` holds ``stage`` or something newer (our write was not lost)."""
    have = state.stage(stage.key)
    return have is not None and (have == stage or have.newer_than(stage))
