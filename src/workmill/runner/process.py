"""Running one step's process: through the run's step agent, with a deadline,
cancellation and a kill of everything the module started.

Every step of a module run is started by the run's one step agent
(:class:`workmill.sandbox.StepLauncher`), inside the sandbox when there is
one. Each step gets its own session, so a step's background children can be
told apart; at the end of the module every process of the run is stopped
(``ProcessGroups.kill_all``), as GitHub cleans up orphans at the end of a job,
and under bwrap the PID namespace guarantees it (docs/architecture.md
"Threat model").
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workmill.runner.logs import CappedLog, PipeDrain
from workmill.sandbox import SandboxError, StepHandle, StepLauncher

POLL_SECONDS = 0.1


@dataclass
class StepProcessResult:
    exit_code: int | None  # None when killed by workmill
    timed_out: bool = False
    cancelled: bool = False
    error: str = ""


@dataclass
class ProcessGroups:
    """The run's step launcher and the output drains still reading background writers."""

    launcher: StepLauncher
    drains: list[PipeDrain] = field(default_factory=list)
    # no process of the run is left but the agent: no step was started yet, or the agent
    # said so when the last one exited (the only processes that could start new ones)
    empty: bool = True

    def kill_all(self, grace_seconds: float) -> None:
        """SIGTERM every process of the run, SIGKILL after the grace; stop reading their output."""
        self.launcher.stop(grace_seconds)
        self.empty = True
        self._stop_draining()

    def end(self, grace_seconds: float) -> None:
        """At the end of the module: :meth:`kill_all`, without asking the agent when it
        already said nothing is left (closing the launcher then ends the sandbox)."""
        if self.empty:
            self._stop_draining()
        else:
            self.kill_all(grace_seconds)

    def _stop_draining(self) -> None:
        for d in self.drains:
            d.join(timeout=1.0)
            if d.is_alive():  # a writer that could not be killed: stop reading
                d.stop()
                d.join(timeout=1.0)
        self.drains.clear()


class _StepWaiter:
    """Waits for a step's exit while its output goes to the log, without busy polling.

    One ``select`` on the step's exit pipe (written by the agent when the step
    exits) and its output pipe does both. A background writer that outlives the
    step keeps its pipe drained by a ``PipeDrain`` until the module ends.
    """

    def __init__(self, handle: StepHandle, fd: int, log: CappedLog, groups: ProcessGroups) -> None:
        self.handle = handle
        self.log = log
        self.groups = groups
        self.fd: int | None = fd
        self.exited = False

    def wait(self, seconds: float) -> bool:
        """Up to ``seconds`` for the exit (less when output arrives); True once exited."""
        if self.exited:
            return True
        watch = [self.handle.exit_fd] if self.fd is None else [self.fd, self.handle.exit_fd]
        ready, _, _ = select.select(watch, [], [], seconds)
        if self.fd is not None and self.fd in ready:
            self._read()
        self.exited = self.handle.exit_fd in ready
        return self.exited

    def finish_output(self) -> None:
        """Output written just before exit is read before the step's outputs are; a process
        left in the step's session keeps the pipe, read on in a thread."""
        end = time.monotonic() + (0.05 if self.handle.group_alive else 1.0)
        while self.fd is not None and (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self._read()
        self.hand_over()

    def hand_over(self) -> None:
        """Let a ``PipeDrain`` thread read the pipe from now on."""
        if self.fd is not None:
            drain = PipeDrain(self.fd, self.log)
            drain.start()
            self.groups.drains.append(drain)
            self.fd = None

    def _read(self) -> None:
        assert self.fd is not None
        try:
            chunk = os.read(self.fd, 1 << 16)
        except OSError:
            chunk = b""
        if chunk:
            self.log.feed(chunk)
        else:  # end of file: every writer has closed it
            os.close(self.fd)
            self.fd = None


def run_step_process(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: CappedLog,
    deadline: float,
    cancel: threading.Event | None,
    groups: ProcessGroups,
    grace_seconds: float,
) -> StepProcessResult:
    """Run ``argv`` to completion, the deadline (monotonic) or cancellation."""
    read_fd, write_fd = os.pipe()
    try:
        groups.empty = False
        handle = groups.launcher.spawn(argv, env, str(cwd), write_fd)
    except SandboxError as exc:
        os.close(read_fd)
        return StepProcessResult(None, error=f"could not start {argv[0]}: {exc}")
    finally:
        os.close(write_fd)
    waiter = _StepWaiter(handle, read_fd, log, groups)
    timed_out = cancelled = False
    try:
        while not waiter.wait(0):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            waiter.wait(min(remaining, POLL_SECONDS))
        if timed_out or cancelled:
            waiter.hand_over()
            groups.kill_all(grace_seconds)
            return StepProcessResult(None, timed_out=timed_out, cancelled=cancelled)
        code = handle.read_exit()
        groups.empty = not handle.run_alive
        waiter.finish_output()
    finally:
        handle.close()
    return StepProcessResult(code)
