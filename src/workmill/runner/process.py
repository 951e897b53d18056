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


class _ExitWaiter:
    """``wait(seconds) -> exited?`` without busy polling: a pidfd where the kernel has
    one (no extra thread, woken at exit), else a thread blocked in waitpid."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.exited = False
        self.done: threading.Event | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self.pidfd = None
            done = threading.Event()
            self.done = done
            threading.Thread(target=lambda: (proc.wait(), done.set()), daemon=True).start()

    def wait(self, seconds: float) -> bool:
        if self.exited:
            return True
        if self.done is not None:
            self.exited = self.done.wait(seconds)
        else:
            assert self.pidfd is not None
            ready, _, _ = select.select([self.pidfd], [], [], seconds)
            self.exited = bool(ready)
        return self.exited

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
    waiter = _ExitWaiter(proc)
    if waiter.pidfd is None:
        return _wait_with_drain_thread(
            proc, waiter, read_fd, log, deadline, cancel, groups, grace_seconds
        )
    # one thread waits for both the exit (pidfd) and the output (pipe): no drain thread
    timed_out = cancelled = False
    fd: int | None = read_fd
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            watch = [waiter.pidfd] if fd is None else [fd, waiter.pidfd]
            ready, _, _ = select.select(watch, [], [], min(remaining, POLL_SECONDS))
            if fd is not None and fd in ready:
                fd = _read_into(fd, log)
            if waiter.pidfd in ready:
                break
    finally:
        waiter.close()
    if timed_out or cancelled:
        if fd is not None:
            _hand_over(fd, log, groups)
        groups.kill_all(grace_seconds)
        proc.wait()
        return StepProcessResult(None, timed_out=timed_out, cancelled=cancelled)
    proc.wait()
    if fd is not None:
        # output written just before exit is drained before the step's outputs are read;
        # a process left in the group (or escaped from it) keeps the pipe: read on in a thread
        end = time.monotonic() + (0.05 if _group_alive(proc.pid) else 1.0)
        while fd is not None and (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                fd = _read_into(fd, log)
        if fd is not None:
            _hand_over(fd, log, groups)
    return StepProcessResult(proc.returncode)


def _read_into(fd: int, log: CappedLog) -> int | None:
    """Read what is there into the log; None (and the fd closed) at end of file."""
    try:
        chunk = os.read(fd, 1 << 16)
    except OSError:
        chunk = b""
    if chunk:
        log.feed(chunk)
        return fd
    os.close(fd)
    return None


def _hand_over(fd: int, log: CappedLog, groups: ProcessGroups) -> None:
    drain = PipeDrain(fd, log)
    drain.start()
    groups.drains.append(drain)


def _wait_with_drain_thread(
    proc: subprocess.Popen[bytes],
    waiter: _ExitWaiter,
    read_fd: int,
    log: CappedLog,
    deadline: float,
    cancel: threading.Event | None,
    groups: ProcessGroups,
    grace_seconds: float,
) -> StepProcessResult:
    """Kernels without pidfd: a thread drains the pipe while this one waits."""
    drain = PipeDrain(read_fd, log)
    drain.start()
    groups.drains.append(drain)
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
    finally:
        waiter.close()
    if timed_out or cancelled:
        groups.kill_all(grace_seconds)
        proc.wait()
        return StepProcessResult(None, timed_out=timed_out, cancelled=cancelled)
    proc.wait()
    drain.join(timeout=0.05 if _group_alive(proc.pid) else 1.0)
    return StepProcessResult(proc.returncode)
