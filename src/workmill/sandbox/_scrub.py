"""What ``sandbox: none`` can still hide of workmill's own credentials.

Without a PID namespace a module runs as the same user as workmill and can read
``/proc/<workmill pid>/environ``. That file shows the environment block the
process started with, not ``os.environ``, so two things help:

- the credential values in that block are overwritten in place (through
  ``/proc/self/mem``); the live values stay in ``os.environ`` and libc's copy;
- the process is marked not dumpable (``PR_SET_DUMPABLE 0``), which makes its
  ``/proc`` files (``environ``, ``mem``) unreadable to other processes of the
  same user that lack ``CAP_SYS_PTRACE`` (root keeps it).

What stays readable is listed in docs/architecture.md "Threat model": the
environments of workmill's *ancestors* (the shell or CI step that started it),
and for root everything.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading

from workmill.sandbox._envpolicy import is_credential_name

PR_SET_DUMPABLE = 4
_lock = threading.Lock()
_done: set[str] = set()
_undumpable: list[bool] = []  # non-empty once PR_SET_DUMPABLE 0 was set


def _env_block() -> tuple[int, int] | None:
    """(start, end) of this process's initial environment block (``/proc/self/stat``)."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    # fields here start at field 3 (state); env_start/env_end are fields 50 and 51
    if len(fields) < 49:
        return None
    return int(fields[47]), int(fields[48])


def _blank_values(block: bytes, names: set[str]) -> bytes:
    out = []
    for entry in block.split(b"\0"):
        name, eq, value = entry.partition(b"=")
        if eq and name.decode("utf-8", "replace") in names:
            entry = name + eq + b"\0" * len(value)
        out.append(entry)
    return b"\0".join(out)


def scrub_own_secrets() -> list[str]:
    """Hide workmill's credentials from same-user processes; the names scrubbed."""
    names = {k for k in os.environ if is_credential_name(k)}
    with _lock:
        if not _undumpable:  # once per process: the flag stays set until exec
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
            _undumpable.append(True)
        todo = names - _done
        if not todo:
            return sorted(names)
        for name in todo:  # libc's environ points into the block: give it live copies first
            os.environ[name] = os.environ[name]
        span = _env_block()
        if span is not None and span[1] > span[0]:
            with contextlib.suppress(OSError), open("/proc/self/mem", "r+b", buffering=0) as mem:
                mem.seek(span[0])
                block = mem.read(span[1] - span[0])
                new = _blank_values(block, todo)
                if new != block:
                    mem.seek(span[0])
                    mem.write(new)
        _done.update(todo)
    return sorted(names)
