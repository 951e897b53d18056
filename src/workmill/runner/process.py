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
    drain = PipeDrain(read_fd, log)
    drain.start()
    groups.drains.append(drain)

    waiter = _ExitWaiter(proc)
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
    # output written just before exit is drained before the step's outputs are read
    drain.join(timeout=0.05 if _group_alive(proc.pid) else 1.0)
    return StepProcessResult(proc.returncode)
