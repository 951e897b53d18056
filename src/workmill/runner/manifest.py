"""``outputs_manifest.json``: what a module run left in its outputs (docs/reference.md "Running a module").

Written after every run, published or not. The same shape describes
outputs restored from cache, a release or tenant assets.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workmill.errors import SpecError
from workmill.fsio import atomic_write_text, sha256_bytes
from workmill.runner.contract import FileCheck

MANIFEST_FILE = "outputs_manifest.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size_bytes: int
    sha256: str
    format: str


@dataclass(frozen=True)
class OutputsManifest:
    module_id: str
    module_run_id: str
    module_version: str
    files: list[ManifestFile] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "module_id": self.module_id,
            "module_run_id": self.module_run_id,
            "module_version": self.module_version,
            "files": [asdict(f) for f in self.files],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @property
    def outputs_sha256(self) -> str:
        """One hash over every (path, sha256): the ``outputs_sha256`` of module_runs_log."""
        text = "\n".join(f"{f.path}\t{f.sha256}" for f in sorted(self.files, key=lambda f: f.path))
        return sha256_bytes(text.encode("utf-8"))

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE) -> OutputsManifest:
        try:
            files = [
                ManifestFile(
                    str(f["path"]),
                    int(f["size_bytes"]),
                    str(f["sha256"]),
                    str(f.get("format") or "binary"),
                )
                for f in data["files"]
            ]
            return cls(
                str(data["module_id"]),
                str(data.get("module_run_id", "")),
                str(data.get("module_version", "")),
                files,
                int(data.get("schema_version", SCHEMA_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError.at(source, f"not an outputs manifest: {exc}") from exc


def build_manifest(
    module_id: str, module_run_id: str, module_version: str, files: list[FileCheck]
) -> OutputsManifest:
    return OutputsManifest(
        module_id,
        module_run_id,
        module_version,
        [
            ManifestFile(f.path, f.size_bytes, f.sha256, f.format)
            for f in sorted(files, key=lambda f: f.path)
        ],
    )


def write_manifest(path: Path, manifest: OutputsManifest) -> None:
    atomic_write_text(path, manifest.to_json(), durable=False)


def read_manifest(path: Path) -> OutputsManifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError.at(str(path), f"cannot read outputs manifest: {exc}") from exc
    return OutputsManifest.from_dict(data, str(path))
