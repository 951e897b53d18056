"""The release manifest: authoritative for discovery and for ownership (docs/reference.md "Files of a platform repo")."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workmill.errors import SpecError

# a release asset name: one path component, no separators, no "." or ".." (a stored
# manifest is data from a store; `release download` writes these names under --dir)
ASSET_FILENAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$"


class ReleaseItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    filename: str = Field(pattern=ASSET_FILENAME)
    module_id: str
    module_version: str
    item_id: str
    source_name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    content_type: str


class ReleaseManifest(BaseModel):
    """``<tenant>-<work_order>-manifest.json``, uploaded last: without it a release is incomplete."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    schema_version: int = 1
    owning_tenant_id: str
    work_order_id: str
    release_tag: str
    created_at: str
    items: list[ReleaseItem]

    def items_for(self, module_id: str) -> list[ReleaseItem]:
        return [i for i in self.items if i.module_id == module_id]

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, name: str) -> ReleaseManifest:
        try:
            raw: Any = json.loads(data)
            return cls.model_validate(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SpecError.at(name, f"not valid JSON: {exc}") from exc
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise SpecError.at(name, first["msg"], field=field) from exc


class OutputsManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    path: str
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: str | None = None


class OutputsManifestModel(BaseModel):
    """The shape of ``outputs_manifest.json`` and of a tenant assets folder's ``manifest.json``
    (the runner writes it from ``workmill.runner.manifest``; this model is its JSON Schema)."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    schema_version: int = 1
    module_id: str
    module_run_id: str | None = None
    module_version: str | None = None
    files: list[OutputsManifestFile]
