"""Running one step's process: its own session, a deadline, cancellation, group kill.

Each step runs in a new session (``start_new_session``) so that killing its
process group also kills whatever it forked (``sleep 1000 &`` daemons);
groups are remembered and all killed when the module ends, as GitHub cleans
up orphan processes at the end of a job.
"""

from __future__ import annotations

import os
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

    done = threading.Event()
    waiter = threading.Thread(target=lambda: (proc.wait(), done.set()), daemon=True)
    waiter.start()
    timed_out = cancelled = False
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        done.wait(min(remaining, POLL_SECONDS))
    if timed_out or cancelled:
        groups.kill_all(grace_seconds)
        waiter.join()
        return StepProcessResult(None, timed_out=timed_out, cancelled=cancelled)
    waiter.join()
    # output written just before exit is drained before the step's outputs are read
    drain.join(timeout=0.05 if _group_alive(proc.pid) else 1.0)
    return StepProcessResult(proc.returncode)
