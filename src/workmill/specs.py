"""Typed models of every YAML spec a platform repo holds (docs/reference.md "Files of a platform repo").

Unknown keys are errors everywhere (``extra="forbid"``); IDs must be quoted
strings because YAML would read ``010`` as the number 8.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from workmill import ids
from workmill.errors import Problem, SpecError
from workmill.yamlio import YamlDoc, read_yaml

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
RELEASE_TAG = re.compile(r"wo-([0-9A-Za-z]{6})-([0-9A-Za-z]{8})")
REASON_NAME = re.compile(r"[A-Z][A-Z0-9_]{1,63}")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")

FORMATS = (
    "json",
    "csv",
    "text",
    "md",
    "html",
    "svg",
    "xml",
    "yaml",
    "png",
    "jpeg",
    "gif",
    "webp",
    "wav",
    "mp3",
    "ogg",
    "pdf",
    "binary",
)
Format = Literal[
    "json",
    "csv",
    "text",
    "md",
    "html",
    "svg",
    "xml",
    "yaml",
    "png",
    "jpeg",
    "gif",
    "webp",
    "wav",
    "mp3",
    "ogg",
    "pdf",
    "binary",
]


class Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=False, defer_build=True
    )


def _id_validator(kind: ids.IdKind):
    def check(value: str) -> str:
        msg = ids.check(kind, value)
        if msg:
            raise ValueError(msg)
        return value

    return check


def _safe_relpath(value: str) -> str:
    """A relative path of safe segments: no '..', no absolute path, no backslash."""
    parts = value.split("/")
    if not value or any(not SAFE_NAME.fullmatch(p) or p in {".", ".."} for p in parts):
        raise ValueError(
            f"{value!r} is not a safe relative file name "
            "(segments of [A-Za-z0-9._-], not starting with '.' or '-', no '..')"
        )
    return value


def _safe_name(value: str) -> str:
    if not SAFE_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"{value!r} is not a safe folder name ([A-Za-z0-9._-], no '/', not '..')")
    return value


ModuleIdStr = Annotated[StrictStr, Field(description="3-character Base62 module id, quoted")]
TenantIdStr = Annotated[StrictStr, Field(description="6-character Base62 tenant id")]


# ---------------------------------------------------------------- workmill.yml


class GithubConfig(Strict):
    repository: StrictStr | None = Field(None, description="owner/name; default GITHUB_REPOSITORY")
    api_url: StrictStr = Field("https://api.github.com", description="REST API root")


class DashboardConfig(Strict):
    stages: list[StrictStr] = Field(
        # each default stage is owned by a job of the shipped workflows (docs/reference.md
        # "Status dashboard"); a stage no job updates would stay pending forever
        # (smoke: pr-checks.yml and promote.yml, docs/supply-chain.md)
        default_factory=lambda: ["validate", "maintenance", "plan", "execute", "settle", "smoke"],
        description="stage keys of the status dashboard, in display order",
    )


class PlatformConfig(Strict):
    """``workmill.yml``: every key optional."""

    billing_state_tag: StrictStr = "billing-state-v1"
    store: Literal["local", "github"] = "local"
    local_store_dir: StrictStr = ".workmill/releases"
    cache_backend: Literal["local", "github"] = "local"
    local_cache_dir: StrictStr = ".workmill/cache"
    github: GithubConfig = GithubConfig()
    max_parallel: int | None = Field(None, ge=1, le=256)
    artifact_name_max_length: int = Field(128, ge=40, le=255)
    orphan_cache_hold_days: int = Field(365, ge=1, le=36500)
    # isolation and money (docs/reference.md "Sandbox", "Ledger checks")
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    max_output_bytes: int = Field(2 * 1024**3, ge=1, description="cap on one module run's outputs")
    unsettled_alert_hours: int = Field(24, ge=1, le=8760)
    # supply chain (docs/supply-chain.md)
    require_pinned: StrictBool = False
    environments: list[StrictStr] = Field(default_factory=list, description="branches, in order")
    # status dashboard
    dashboard: DashboardConfig = DashboardConfig()
    # registry and licences
    registry_tag: StrictStr = "registry-v1"
    registry_public_key: StrictStr | None = None
    licence_public_key: StrictStr | None = None
    licence_grace_hours: int = Field(72, ge=0, le=87600)
    licence_url: StrictStr | None = None

    @field_validator("billing_state_tag", "registry_tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", v):
            raise ValueError(f"{v!r} is not a valid release tag")
        return v


# ---------------------------------------------------------------- module.yml


class Capabilities(Strict):
    supports_downloadable_artifacts: StrictBool = False


class CacheSpec(Strict):
    enabled: StrictBool = False
    retention_days: int = Field(30, ge=1, le=3650)


class InputSpec(Strict):
    module: ModuleIdStr
    name: StrictStr
    format: Format = "binary"

    _m = field_validator("module")(_id_validator(ids.IdKind.MODULE))
    _n = field_validator("name")(_safe_relpath)


class OutputSpec(Strict):
    name: StrictStr
    format: Format = "binary"

    _n = field_validator("name")(_safe_relpath)


class SmokeSpec(Strict):
    params: dict[str, Any] = Field(default_factory=dict)


SECRET_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Names a secret may not take: workmill's own credentials and variables, and what
# changes how a shell, loader or interpreter starts (docs/supply-chain.md "Secrets").
RESERVED_SECRET_PREFIXES = (
    "WM_",
    "WORKMILL_",
    "GITHUB_",
    "RUNNER_",
    "ACTIONS_",
    "LD_",
    "PYTHON",
    "BASH",
    "NODE_",
    "PERL5",
    "LC_",
    "SSL_",
)
RESERVED_SECRET_NAMES = frozenset(
    {
        "GH_TOKEN",
        "PATH",
        "HOME",
        "ENV",
        "IFS",
        "PS4",
        "SHELLOPTS",
        "RUBYOPT",
        "LANG",
        "TMPDIR",
        "SHELL",
        "USER",
        "PWD",
        "CI",
        "TZ",
        "LOGNAME",
        "TERM",
        "VIRTUAL_ENV",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    }
)


class SecretsSpec(Strict):
    """Environment variables this module receives (from workmill's own environment)."""

    required: list[StrictStr] = Field(default_factory=list)
    optional: list[StrictStr] = Field(default_factory=list)

    @field_validator("required", "optional")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not SECRET_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an UPPER_SNAKE_CASE environment variable name")
            if name in RESERVED_SECRET_NAMES or name.startswith(RESERVED_SECRET_PREFIXES):
                raise ValueError(
                    f"{name!r} is reserved by workmill or the shell; rename the secret"
                )
        if len(set(v)) != len(v):
            raise ValueError("a secret is listed twice")
        return v


class ModuleSpec(Strict):
    """``modules/<module_id>/module.yml``."""

    module_id: ModuleIdStr
    name: StrictStr = Field(min_length=1, max_length=200)
    version: StrictStr = Field(min_length=1, max_length=64, description="quoted, e.g. '1.4.0'")
    description: StrictStr = ""
    depends_on: list[ModuleIdStr] | None = None
    capabilities: Capabilities = Capabilities()
    cache: CacheSpec = CacheSpec()
    inputs: list[InputSpec] = Field(default_factory=list)
    outputs: list[OutputSpec] = Field(default_factory=list)
    timeout_minutes: float = Field(10, gt=0, le=1440)
    smoke: SmokeSpec = SmokeSpec()
    tier: Literal["core", "community", "premium"] = "core"
    network: StrictBool = True
    secrets: SecretsSpec = SecretsSpec()

    _m = field_validator("module_id")(_id_validator(ids.IdKind.MODULE))

    @field_validator("depends_on")
    @classmethod
    def _deps(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for d in v:
            msg = ids.check(ids.IdKind.MODULE, d)
            if msg:
                raise ValueError(msg)
        if len(set(v)) != len(v):
            raise ValueError("a dependency is listed twice")
        return v

    @field_validator("outputs")
    @classmethod
    def _unique_outputs(cls, v: list[OutputSpec]) -> list[OutputSpec]:
        names = [o.name for o in v]
        if len(set(names)) != len(names):
            raise ValueError("an output name is listed twice")
        return v

    @property
    def deps(self) -> list[str]:
        return list(self.depends_on or [])


# ---------------------------------------------------------------- reasons


class ModuleReason(Strict):
    key: StrictStr
    name: StrictStr
    description: StrictStr = ""
    fail: StrictBool = True
    refundable: StrictBool = True

    _k = field_validator("key")(_id_validator(ids.IdKind.REASON_KEY))

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not REASON_NAME.fullmatch(v):
            raise ValueError(f"{v!r} is not an UPPER_SNAKE_CASE reason name")
        return v


def _unique_reasons(reasons: list[ModuleReason]) -> list[ModuleReason]:
    for attr in ("key", "name"):
        seen: set[str] = set()
        for r in reasons:
            v = getattr(r, attr)
            folded = v.lower() if attr == "key" else v
            if folded in seen:
                raise ValueError(f"reason {attr} {v!r} is listed twice")
            seen.add(folded)
    return reasons


class ValidationSpec(Strict):
    """``modules/<module_id>/validation.yml``: the module's own reasons."""

    reasons: list[ModuleReason] = Field(default_factory=list)

    _u = field_validator("reasons")(_unique_reasons)


class GlobalReason(ModuleReason):
    category_id: StrictStr

    _c = field_validator("category_id")(_id_validator(ids.IdKind.CATEGORY))


class GlobalReasonsSpec(Strict):
    """``config/global_reasons.yml``."""

    reasons: list[GlobalReason] = Field(default_factory=list)

    _u = field_validator("reasons")(_unique_reasons)


# ---------------------------------------------------------------- action.yml


class ActionInput(Strict):
    description: StrictStr = ""
    required: StrictBool = False
    default: StrictStr | int | float | bool | None = None
    deprecationMessage: StrictStr | None = None


class ActionOutput(Strict):
    description: StrictStr = ""
    value: StrictStr | None = None


class ActionStep(BaseModel):
    """One composite step; GitHub's key names (``working-directory``) are kept."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    name: StrictStr | None = None
    id: StrictStr | None = None
    if_: StrictStr | StrictBool | None = Field(None, alias="if")
    run: StrictStr | None = None
    shell: StrictStr | None = None
    env: dict[str, StrictStr | int | float | bool] = Field(default_factory=dict)
    working_directory: StrictStr | None = Field(None, alias="working-directory")
    uses: StrictStr | None = None
    with_: dict[str, StrictStr | int | float | bool] | None = Field(None, alias="with")
    continue_on_error: StrictBool | StrictStr = Field(False, alias="continue-on-error")
    timeout_minutes: float | None = Field(None, alias="timeout-minutes", gt=0)

    @model_validator(mode="after")
    def _kind(self) -> ActionStep:
        if (self.run is None) == (self.uses is None):
            raise ValueError("a step needs exactly one of 'run' or 'uses'")
        if self.run is not None and self.shell is None:
            raise ValueError("a composite 'run' step needs 'shell' (bash, sh or python)")
        if self.id is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", self.id):
            raise ValueError(f"step id {self.id!r} must start with a letter or '_'")
        return self


class ActionRuns(Strict):
    using: StrictStr
    steps: list[ActionStep] = Field(default_factory=list)


class ActionSpec(Strict):
    """``modules/<module_id>/action.yml``: a GitHub composite action."""

    name: StrictStr = ""
    description: StrictStr = ""
    author: StrictStr | None = None
    branding: dict[str, StrictStr] | None = None
    inputs: dict[str, ActionInput] = Field(default_factory=dict)
    outputs: dict[str, ActionOutput] = Field(default_factory=dict)
    runs: ActionRuns

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, v: dict[str, ActionInput]) -> dict[str, ActionInput]:
        for k in v:
            if not PARAM_NAME.fullmatch(k):
                raise ValueError(f"input name {k!r} must match {PARAM_NAME.pattern}")
        return v


# ---------------------------------------------------------------- tenant.yml


class QuotasSpec(Strict):
    max_work_orders_per_day: int | None = Field(None, ge=0)
    max_credits_per_month: int | None = Field(None, ge=0)
    max_parallel_modules: int | None = Field(None, ge=1)


class TenantSpec(Strict):
    """``tenants/<tenant_id>/tenant.yml``."""

    tenant_id: TenantIdStr
    name: StrictStr = Field(min_length=1, max_length=200)
    status: Literal["active", "suspended"] = "active"
    allow_release_consumers: list[TenantIdStr] = Field(default_factory=list)
    quotas: QuotasSpec = QuotasSpec()

    _t = field_validator("tenant_id")(_id_validator(ids.IdKind.TENANT))

    @field_validator("allow_release_consumers")
    @classmethod
    def _consumers(cls, v: list[str]) -> list[str]:
        for t in v:
            msg = ids.check(ids.IdKind.TENANT, t)
            if msg:
                raise ValueError(msg)
        return v


# ---------------------------------------------------------------- work order


class WorkOrderModule(Strict):
    module_id: ModuleIdStr
    params: dict[str, Any] = Field(default_factory=dict)
    reuse_output_type: Literal["new", "cache", "release", "assets"] = "new"
    purchase_release_artifacts: StrictBool = False
    cache_retention_override: int | None = Field(None, ge=1, le=3650)
    release_tag: StrictStr | None = None
    assets_folder_name: StrictStr | None = None

    _m = field_validator("module_id")(_id_validator(ids.IdKind.MODULE))

    @field_validator("release_tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        if v is not None and not RELEASE_TAG.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a work-order release tag wo-<tenant_id>-<work_order_id>"
            )
        return v

    @field_validator("assets_folder_name")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        return None if v is None else _safe_name(v)

    @model_validator(mode="after")
    def _mode_fields(self) -> WorkOrderModule:
        mode = self.reuse_output_type
        if mode == "release" and self.release_tag is None:
            raise ValueError("reuse_output_type 'release' needs release_tag")
        if mode == "assets" and self.assets_folder_name is None:
            raise ValueError("reuse_output_type 'assets' needs assets_folder_name")
        if mode != "release" and self.release_tag is not None:
            raise ValueError("release_tag is only allowed with reuse_output_type 'release'")
        if mode != "assets" and self.assets_folder_name is not None:
            raise ValueError("assets_folder_name is only allowed with reuse_output_type 'assets'")
        if mode != "cache" and self.cache_retention_override is not None:
            raise ValueError(
                "cache_retention_override is only allowed with reuse_output_type 'cache'"
            )
        return self


class WorkOrderSpec(Strict):
    """``tenants/<tenant_id>/workorders/<work_order_id>.yml``."""

    work_order_id: StrictStr
    enabled: StrictBool = True
    mode: Literal["STRICT", "PARTIAL_ALLOWED"] = "STRICT"
    promo_codes: list[StrictStr] = Field(default_factory=list)
    modules: list[WorkOrderModule] = Field(min_length=1, max_length=999)

    _w = field_validator("work_order_id")(_id_validator(ids.IdKind.WORK_ORDER))

    @field_validator("promo_codes")
    @classmethod
    def _promos(cls, v: list[str]) -> list[str]:
        for p in v:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", p):
                raise ValueError(f"{p!r} is not a promo code ([A-Za-z0-9_-], up to 64)")
        if len(set(v)) != len(v):
            raise ValueError("a promo code is listed twice")
        return v

    @field_validator("modules")
    @classmethod
    def _once(cls, v: list[WorkOrderModule]) -> list[WorkOrderModule]:
        seen: set[str] = set()
        for m in v:
            if m.module_id in seen:
                raise ValueError(f"module {m.module_id} is listed twice")
            seen.add(m.module_id)
        return v

    @property
    def module_ids(self) -> list[str]:
        return [m.module_id for m in self.modules]


# ---------------------------------------------------------------- loading

M = TypeVar("M", bound=BaseModel)

SCHEMA_KINDS: dict[str, type[BaseModel]] = {
    "workmill": PlatformConfig,
    "module": ModuleSpec,
    "validation": ValidationSpec,
    "action": ActionSpec,
    "tenant": TenantSpec,
    "work-order": WorkOrderSpec,
    "global-reasons": GlobalReasonsSpec,
}


def problems_from_validation(doc: YamlDoc, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] in {"string_type"} and isinstance(err.get("input"), int | float):
            msg = f"expected a string, got the number {err['input']!r} (quote it)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif msg.startswith("Assertion failed, "):
            msg = msg[len("Assertion failed, ") :]
        out.append(Problem(doc.path, doc.line_of(loc), ".".join(str(p) for p in loc), msg))
    return out


def parse_model(doc: YamlDoc, model: type[M]) -> M:
    data = {} if doc.data is None and model is PlatformConfig else doc.data
    if not isinstance(data, dict):
        raise SpecError(
            Problem(doc.path, doc.line_of(()), "", f"expected a mapping, got {type(data).__name__}")
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(doc, exc)) from None


def load_spec(path: Path, model: type[M], display: str | None = None) -> M:
    """Read ``path`` and validate it as ``model``; every problem is in the SpecError."""
    return parse_model(read_yaml(path, display), model)


# What each kind's schema is called in editors (its top-level title); kinds other
# areas register get a title made from their name.
SCHEMA_TITLES: dict[str, str] = {
    "workmill": "workmill platform config (workmill.yml)",
    "module": "workmill module (modules/<module_id>/module.yml)",
    "validation": "workmill module reasons (modules/<module_id>/validation.yml)",
    "action": "workmill module action (modules/<module_id>/action.yml)",
    "tenant": "workmill tenant (tenants/<tenant_id>/tenant.yml)",
    "work-order": "workmill work order (tenants/<tenant_id>/workorders/<work_order_id>.yml)",
    "global-reasons": "workmill platform reasons (config/global_reasons.yml)",
    "outputs-manifest": "workmill outputs manifest (outputs_manifest.json)",
    "release-manifest": "workmill release manifest",
}
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(kind: str) -> str:
    """The schema's ``$id``: a name, not a download address (schemas ship with workmill)."""
    return f"urn:workmill:schema:{kind}"


def _readable(class_name: str) -> str:
    """``WorkOrderModule`` -> ``Work order module``: $defs titles without Python names."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", class_name.removesuffix("Spec"))
    text = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return text[:1].upper() + text[1:]


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a spec kind, with ``$schema``, ``$id`` and titles
    people can read (docs/reference.md "Files of a platform repo")."""
    try:
        model = SCHEMA_KINDS[kind]
    except KeyError:
        raise SpecError.at(
            "schema", f"unknown kind {kind!r}; one of {', '.join(sorted(SCHEMA_KINDS))}"
        ) from None
    body = model.model_json_schema(by_alias=True)
    for name, sub in body.get("$defs", {}).items():
        if sub.get("title") == name:
            sub["title"] = _readable(name)
    body.pop("title", None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(kind),
        "title": SCHEMA_TITLES.get(kind, f"workmill {kind.replace('-', ' ')}"),
        **body,
    }


def _register_manifest_kinds() -> None:
    from workmill.artifacts.manifest import OutputsManifestModel, ReleaseManifest

    SCHEMA_KINDS["outputs-manifest"] = OutputsManifestModel
    SCHEMA_KINDS["release-manifest"] = ReleaseManifest


_register_manifest_kinds()
