"""Step logs: secrets masked in every line, size capped, the pipe always drained.

A child that writes gigabytes must neither fill the disk nor block on a full
pipe, so past the cap bytes are counted and dropped; a secret split across
two reads is still masked because a tail that could start a secret is held
back until the next read.
"""

from __future__ import annotations

import base64
import os
import re
import select
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

MASK = b"***"
DEFAULT_LOG_CAP = 10 * 1024 * 1024
_HOLD_LIMIT = 64 * 1024


# Encoded forms of a secret shorter than this are not masked: three characters of
# base64 would match ordinary words in every log.
_MIN_ENCODED = 6


def _base64_forms(secret: bytes) -> set[bytes]:
    """The base64 (standard and URL-safe) text a secret produces wherever it starts.

    Inside a longer encoded blob (``user:secret`` in a Basic auth header) the
    secret starts at byte offset 0, 1 or 2 of a 3-byte group; for each offset the
    characters that depend only on the secret's bytes are kept (padding dropped).
    """
    out: set[bytes] = set()
    for shift in range(3):
        total = shift + len(secret)
        first = -(-shift * 8 // 6)  # characters touched by the unknown leading bytes
        last = total * 8 // 6  # characters fully decided by these bytes
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(bytes(shift) + secret).rstrip(b"=")[first:last]
            if len(text) >= _MIN_ENCODED:
                out.add(text)
    return out


def secret_forms(secret: str) -> set[bytes]:
    """Every form of ``secret`` a log may show: the value, each of its lines, its base64
    (any alignment) and its URL encodings (docs/supply-chain.md "Secrets")."""
    forms: set[bytes] = set()
    for part in {secret, *(line for line in secret.splitlines() if line.strip())}:
        raw = part.encode("utf-8")
        forms.add(raw)
        encoded = {quote(part, safe="").encode(), quote_plus(part).encode()}
        forms |= {e for e in encoded if len(e) >= _MIN_ENCODED}
        if len(raw) >= 4:
            forms |= _base64_forms(raw)
    return forms


class Masker:
    """Replaces every secret value (plain, per line, base64, URL-encoded) with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        parts: set[bytes] = set()
        for s in secrets:
            if not s or not s.strip():
                continue
            parts |= secret_forms(s)
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
