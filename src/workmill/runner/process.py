"""Running one step's process: its own session, a deadline, cancellation, group kill.

Each step runs in a new session (``start_new_session``) so that killing its
process group also kills whatever it forked (``sleep 1000 &`` daemons);
groups are remembered and all killed when the module ends, as GitHub cleans
up orphan processes at the end of a job.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workmill.runner.logs import CappedLog, PipeDrain

POLL_SECONDS = 0.1


@dataclass
class StepProcessResult:
    exit_code: int | None  # None when killed by workmill
    timed_out: bool = False
    cancelled: bool = False
    error: str = ""


@dataclass
class ProcessGroups:
    """Every process group a module started, so all can be killed at the end."""

    pgids: list[int] = field(default_factory=list)
    drains: list[PipeDrain] = field(default_factory=list)

    def kill_all(self, grace_seconds: float) -> None:
        live = [g for g in self.pgids if _signal_group(g, signal.SIGTERM)]
        if live:
            end = time.monotonic() + grace_seconds
            while time.monotonic() < end and any(_group_alive(g) for g in live):
                time.sleep(0.02)
            for g in live:
                _signal_group(g, signal.SIGKILL)
        self.pgids.clear()
        for d in self.drains:
            d.join(timeout=1.0)
            if d.is_alive():  # a writer escaped the group (setsid): stop reading
                d.stop()
                d.join(timeout=1.0)
        self.drains.clear()


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class _StepWaiter:
    """Waits for a step's exit while its output goes to the log, without busy polling.

    Where the kernel has pidfds, one ``select`` on the pidfd and the output pipe
    does both (no thread per step). Otherwise a thread blocks in waitpid and a
    ``PipeDrain`` thread reads the pipe. Either way a background writer that
    outlives the step keeps its pipe drained by a ``PipeDrain`` until the module
    ends (``ProcessGroups.kill_all``).
    """

    def __init__(
        self, proc: subprocess.Popen[bytes], fd: int, log: CappedLog, groups: ProcessGroups
    ) -> None:
        self.proc = proc
        self.log = log
        self.groups = groups
        self.fd: int | None = fd
        self.exited = False
        self.done: threading.Event | None = None
        self.drain: PipeDrain | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None
            done = threading.Event()
            self.done = done
            threading.Thread(target=lambda: (proc.wait(), done.set()), daemon=True).start()
            self.hand_over()

    def wait(self, seconds: float) -> bool:
        """Up to ``seconds`` for the exit (less when output arrives); True once exited."""
        if self.exited:
            return True
        if self.done is not None:
            self.exited = self.done.wait(seconds)
            return self.exited
        assert self.pidfd is not None
        watch = [self.pidfd] if self.fd is None else [self.fd, self.pidfd]
        ready, _, _ = select.select(watch, [], [], seconds)
        if self.fd is not None and self.fd in ready:
            self._read()
        self.exited = self.pidfd in ready
        return self.exited

    def finish_output(self) -> None:
        """Output written just before exit is read before the step's outputs are; a process
        left in the group (or escaped from it) keeps the pipe, read on in a thread."""
        end = time.monotonic() + (0.05 if _group_alive(self.proc.pid) else 1.0)
        if self.drain is not None:
            self.drain.join(timeout=max(0.0, end - time.monotonic()))
            return
        while self.fd is not None and (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self._read()
        self.hand_over()

    def hand_over(self) -> None:
        """Let a ``PipeDrain`` thread read the pipe from now on."""
        if self.fd is not None:
            self.drain = PipeDrain(self.fd, self.log)
            self.drain.start()
            self.groups.drains.append(self.drain)
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

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


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
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return StepProcessResult(None, error=f"could not start {argv[0]}: {exc.strerror}")
    os.close(write_fd)
    groups.pgids.append(proc.pid)
    waiter = _StepWaiter(proc, read_fd, log, groups)
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
        if not (timed_out or cancelled):
            proc.wait()
            waiter.finish_output()
    finally:
        waiter.close()
    if timed_out or cancelled:
        waiter.hand_over()
        groups.kill_all(grace_seconds)
        proc.wait()
        return StepProcessResult(None, timed_out=timed_out, cancelled=cancelled)
    return StepProcessResult(proc.returncode)
