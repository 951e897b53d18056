"""Artifact file names (docs/reference.md "Files of a platform repo"): ``<tenant>-<work_order>-<module>-<item>-<shorthash>.<ext>``.

Lower-case, no spaces, bounded length. Pure functions.
"""

from __future__ import annotations

import mimetypes
import re

MANIFEST_SUFFIX = "manifest.json"
_EXT = re.compile(r"[a-z0-9]{1,16}")

CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "text": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "svg": "image/svg+xml",
    "xml": "application/xml",
    "yaml": "application/yaml",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "pdf": "application/pdf",
}


def release_tag(tenant_id: str, work_order_id: str) -> str:
    return f"wo-{tenant_id}-{work_order_id}"


def manifest_name(tenant_id: str, work_order_id: str) -> str:
    return f"{tenant_id}-{work_order_id}-{MANIFEST_SUFFIX}".lower()


def extension(source_name: str) -> str:
    base = source_name.rsplit("/", 1)[-1]
    if "." not in base.strip("."):
        return "bin"
    ext = base.rsplit(".", 1)[-1].lower()
    return ext if _EXT.fullmatch(ext) else "bin"


def artifact_name(
    tenant_id: str,
    work_order_id: str,
    module_id: str,
    item_id: str,
    sha256: str,
    source_name: str,
    max_length: int = 128,
) -> str:
    """The published name of one output file; raises ValueError if it cannot fit ``max_length``."""
    stem = f"{tenant_id}-{work_order_id}-{module_id}-{item_id}-{sha256[:8]}".lower()
    ext = extension(source_name)
    room = max_length - len(stem) - 1
    if room < 1:
        raise ValueError(f"artifact name {stem!r} is longer than {max_length} characters")
    return f"{stem}.{ext[:room]}"


def content_type(fmt: str | None, source_name: str) -> str:
    if fmt and fmt in CONTENT_TYPES:
        return CONTENT_TYPES[fmt]
    guessed, _ = mimetypes.guess_type(source_name)
    return guessed or "application/octet-stream"
