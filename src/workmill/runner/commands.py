"""The step command files ``$GITHUB_OUTPUT``, ``$GITHUB_ENV`` and ``$GITHUB_PATH``.

Format as GitHub documents it: ``name=value`` lines, or a multi-line value
``name<<DELIMITER`` … ``DELIMITER``; ``$GITHUB_PATH`` holds one directory a
line. A malformed file fails the step, as on GitHub.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_COMMAND_FILE_BYTES = 16 * 1024 * 1024


class CommandFileError(Exception):
    """A command file the step wrote cannot be read as GitHub's format."""


def read_command_file(path: Path) -> str:
    """The text of a command file, refusing symlinks, non-files and huge files."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise CommandFileError(f"{path.name}: cannot be opened ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise CommandFileError(f"{path.name}: not a regular file")
        data = fh.read(MAX_COMMAND_FILE_BYTES + 1)
    if len(data) > MAX_COMMAND_FILE_BYTES:
        raise CommandFileError(f"{path.name}: larger than {MAX_COMMAND_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandFileError(f"{path.name}: not UTF-8") from exc


def parse_key_values(text: str, what: str) -> dict[str, str]:
    """``name=value`` and ``name<<DELIM`` blocks; later names win."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        i += 1
        if not line:
            continue
        eq = line.find("=")
        heredoc = line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            name, value = line[:eq], line[eq + 1 :]
        elif heredoc >= 0:
            name, delim = line[:heredoc], line[heredoc + 2 :]
            if not delim:
                raise CommandFileError(f"{what}: line {i}: empty delimiter after '<<'")
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise CommandFileError(
                        f"{what}: matching delimiter {delim!r} not found for {name!r}"
                    )
                nxt = lines[i].removesuffix("\r")
                i += 1
                if nxt == delim:
                    break
                body.append(nxt)
            value = "\n".join(body)
        else:
            raise CommandFileError(f"{what}: line {i}: expected 'name=value' or 'name<<DELIMITER'")
        if not name:
            raise CommandFileError(f"{what}: line {i}: empty name")
        out[name] = value
    return out


def parse_path_file(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
