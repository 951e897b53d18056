"""Who is working on a work order right now, on this machine.

A lease is a small file naming the owning process and a token. A lease whose
process is gone is stale and may be taken over — that is how a run killed
between SPEND and REFUND gets finished by the next ``workmill run``, while a
second live ``workmill run`` leaves the work order alone. The ``plan`` →
``execute`` → ``settle`` commands pass the token along in the plan file so
the later phases may take over the leases of the (exited) planning process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Leases:
    directory: Path
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    held: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.directory / ".leases.lock"), timeout=60)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}.lease"

    def claim(self, name: str) -> bool:
        """Take the lease on ``name`` unless a live process (other than ours) holds it."""
        if name in self.held:
            return True
        path = self._path(name)
        with self._lock:
            try:
                info = json.loads(path.read_text())
                pid, token = int(info.get("pid", 0)), str(info.get("token", ""))
                if token != self.token and pid != os.getpid() and _alive(pid):
                    return False
            except FileNotFoundError:
                pass
            except (OSError, ValueError):
                pass  # unreadable lease: its writer died mid-write
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "token": self.token}))
            os.replace(tmp, path)
        self.held.add(name)
        return True

    def release(self, name: str) -> None:
        with self._lock:
            path = self._path(name)
            with contextlib.suppress(OSError, ValueError):
                info = json.loads(path.read_text())
                if info.get("token") == self.token:
                    path.unlink()
        self.held.discard(name)

    def release_all(self) -> None:
        for name in list(self.held):
            self.release(name)
