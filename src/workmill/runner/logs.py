"""Step logs: secrets masked in every line, size capped, the pipe always drained.

A child that writes gigabytes must neither fill the disk nor block on a full
pipe, so past the cap bytes are counted and dropped; a secret split across
two reads is still masked because a tail that could start a secret is held
back until the next read.
"""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Iterable
from pathlib import Path

MASK = b"***"
DEFAULT_LOG_CAP = 10 * 1024 * 1024
_HOLD_LIMIT = 64 * 1024


class Masker:
    """Replaces every secret value (and each line of a multi-line one) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        parts: set[bytes] = set()
        for s in secrets:
            if not s or not s.strip():
                continue
            parts.add(s.encode("utf-8"))
            for line in s.splitlines():
                if line.strip():
                    parts.add(line.encode("utf-8"))
        self.secrets = sorted(parts, key=len, reverse=True)
        self.longest = len(self.secrets[0]) if self.secrets else 0
        self._re = re.compile(b"|".join(re.escape(p) for p in self.secrets)) if parts else None

    def mask(self, data: bytes) -> bytes:
        return self._re.sub(MASK, data) if self._re else data

    def mask_text(self, text: str) -> str:
        return self.mask(text.encode("utf-8", "replace")).decode("utf-8", "replace")

    def safe_cut(self, data: bytes) -> int:
        """How much of ``data`` can be masked and written now without splitting a secret."""
        if not self.secrets:
            return len(data)
        nl = data.rfind(b"\n")
        if nl >= 0 and len(data) - nl - 1 < self.longest:
            cut = nl + 1
        else:
            cut = max(0, len(data) - (self.longest - 1))
        # an occurrence starting before ``cut`` must end before it (repeat until stable)
        changed = True
        while changed:
            changed = False
            for s in self.secrets:
                k = data.find(s, max(0, cut - len(s) + 1), cut + len(s) - 1)
                if 0 <= k < cut < k + len(s):
                    cut = k
                    changed = True
        return cut


class CappedLog:
    """An append-only log file that stops growing at ``cap`` bytes and says so."""

    def __init__(self, path: Path, masker: Masker, cap: int = DEFAULT_LOG_CAP) -> None:
        self.path = path
        self.masker = masker
        self.cap = cap
        self.written = 0
        self.dropped = 0
        self._pending = b""
        self._lock = threading.Lock()
        self._fh = path.open("ab", buffering=0)

    def feed(self, data: bytes) -> None:
        with self._lock:
            buf = self._pending + data
            cut = self.masker.safe_cut(buf)
            if len(buf) - cut > _HOLD_LIMIT:  # pathological: never hold more than this
                cut = len(buf) - _HOLD_LIMIT
            self._pending = buf[cut:]
            self._write(self.masker.mask(buf[:cut]))

    def _write(self, data: bytes) -> None:
        if not data:
            return
        room = self.cap - self.written
        if room <= 0:
            self.dropped += len(data)
            return
        self._fh.write(data[:room])
        self.written += min(room, len(data))
        self.dropped += max(0, len(data) - room)

    def line(self, text: str) -> None:
        """A line of workmill's own (masked too: messages may quote step output)."""
        self.feed(text.encode("utf-8", "replace") + b"\n")

    def close(self) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._write(self.masker.mask(self._pending))
            self._pending = b""
            if self.dropped:
                self._fh.write(
                    f"\n[workmill: log truncated at {self.cap} bytes; "
                    f"{self.dropped} more bytes discarded]\n".encode()
                )
            self._fh.close()


class PipeDrain(threading.Thread):
    """Reads a child's output pipe into a CappedLog until EOF or ``stop()``."""

    def __init__(self, fd: int, log: CappedLog) -> None:
        super().__init__(daemon=True, name=f"drain-{log.path.name}")
        self.fd = fd
        self.log = log
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while True:
                if self._halt.is_set():
                    ready, _, _ = select.select([self.fd], [], [], 0)
                    if not ready:
                        return
                else:
                    ready, _, _ = select.select([self.fd], [], [], 0.2)
                    if not ready:
                        continue
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return
                self.log.feed(chunk)
        except OSError:
            return
        finally:
            os.close(self.fd)

    def stop(self) -> None:
        self._halt.set()
