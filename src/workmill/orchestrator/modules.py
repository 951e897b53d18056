"""Executing one module of a work order: gates, inputs, reuse modes, cache, artifacts.

``execute_module`` never raises: whatever happens becomes a ModuleOutcome
with a status and a reason code (an unexpected exception is INTERNAL_ERROR,
its traceback kept beside the workspace).
"""

from __future__ import annotations

import shutil
import time
import traceback
from pathlib import Path

from workmill import clock, ids
from workmill.artifacts.naming import artifact_name, content_type, release_tag
from workmill.cache.backend import CacheError, EntryFile
from workmill.errors import NotFound, WorkmillError
from workmill.orchestrator.context import RunContext
from workmill.orchestrator.records import ModuleOutcome, ModulePlan, PublishedItem, WorkOrderPlan
from workmill.orchestrator.reuse import ReuseFailed, restore_from_assets, restore_from_release
from workmill.params import ParamsInvalid, load_params_schema, resolve_params
from workmill.runner.api import ModuleRunRequest, PreparedRun, prepare_run, run_module
from workmill.runner.contract import check_outputs
from workmill.runner.manifest import OutputsManifest, build_manifest, read_manifest, write_manifest
from workmill.runner.workspace import create_workspace, workspace_path
from workmill.state.releases import AssetExists
from workmill.supply import missing_secrets, secret_env

COMPLETED = "COMPLETED"
FAILED = "FAILED"


class _Failed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReleaseAdapter:
    """The ReleaseReader the reuse code wants, over the configured release store."""

    def __init__(self, ctx: RunContext) -> None:
        self.store = ctx.releases

    def read_asset(self, tag: str, name: str) -> bytes | None:
        """The asset, None only when the store says it does not exist.

        Anything else (401/403, a rate limit, a 5xx, an unreadable file) is the store
        failing, not the release missing: INTERNAL_ERROR, never RELEASE_NOT_FOUND.
        """
        try:  # a missing tag and a missing asset are both NotFound: one request
            return self.store.read_asset(tag, name)
        except NotFound:
            return None
        except (WorkmillError, OSError) as exc:
            raise ReuseFailed(
                "INTERNAL_ERROR", f"release store error reading {tag}/{name}: {exc}"
            ) from exc

    def download_asset(self, tag: str, name: str, dest: Path) -> bool:
        data = self.read_asset(tag, name)
        if data is None:
            return False
        dest.write_bytes(data)
        return True


def uses_cache(ctx: RunContext, mp: ModulePlan) -> bool:
    """Whether this module run looks up or stores a cache entry (docs/reference.md
    "Reuse"): ``cache`` always does; ``new`` stores when the module enables its cache."""
    return mp.reuse_output_type == "cache" or (
        mp.reuse_output_type == "new" and ctx.repo.module(mp.module_id).cache.enabled
    )


def module_workspace(ctx: RunContext, wo: WorkOrderPlan, module_id: str) -> Path:
    return workspace_path(ctx.runtime_dir, wo.tenant_id, wo.work_order_id, module_id)


def outputs_verified(ctx: RunContext, wo: WorkOrderPlan, module_id: str) -> bool:
    """True when a finished module's outputs are still on disk exactly as its manifest says."""
    root = module_workspace(ctx, wo, module_id)
    try:
        manifest = read_manifest(root / "outputs_manifest.json")
    except WorkmillError:
        return False
    report = check_outputs(root / "outputs", [])
    have = {f.path: f.sha256 for f in report.files}
    return not report.problems and have == {f.path: f.sha256 for f in manifest.files}


def _inputs_root(ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan) -> Path:
    return ctx.runtime_dir / wo.tenant_id / wo.work_order_id / ".inputs" / mp.module_id


def _fresh_dir(root: Path) -> Path:
    try:
        root.mkdir(parents=True)
    except FileExistsError:
        shutil.rmtree(root)
        root.mkdir()
    return root


def _stage_inputs(
    ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan, deps: list[str], *, made: bool = False
) -> Path:
    """Copy each dependency's outputs to ``<inputs>/<dep>/`` (copies: a module cannot
    change what its dependency produced). ``made``: the folder was made empty when the
    run was prepared, and a pre-started sandbox already binds it, so it is filled in place."""
    root = _inputs_root(ctx, wo, mp)
    if not made:
        _fresh_dir(root)
    for dep in deps:
        src = module_workspace(ctx, wo, dep) / "outputs"
        if src.is_dir():
            # contents only (no timestamps or modes): an input is data, not a file's history
            shutil.copytree(src, root / dep, symlinks=True, copy_function=shutil.copyfile)
        else:
            (root / dep).mkdir()
    return root


def _finish_reused(
    ctx: RunContext, ws_root: Path, wo: WorkOrderPlan, mp: ModulePlan
) -> OutputsManifest:
    """Outputs placed by cache/release/assets must meet the same contract as a run's."""
    module = ctx.repo.module(mp.module_id)
    report = check_outputs(ws_root / "outputs", module.outputs)
    if report.problems:
        raise _Failed("OUTPUT_CONTRACT_VIOLATION", "; ".join(report.problems[:5]))
    manifest = build_manifest(mp.module_id, mp.module_run_id, mp.module_version, report.files)
    write_manifest(ws_root / "outputs_manifest.json", manifest)
    return manifest


def _publish(
    ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan, ws_root: Path, manifest: OutputsManifest
) -> list[PublishedItem]:
    tag = release_tag(wo.tenant_id, wo.work_order_id)
    limit = ctx.repo.config.artifact_name_max_length
    try:
        ctx.releases.create_tag(tag)
        taken = set(ctx.releases.list_assets(tag))
        items = []
        for f in manifest.files:
            used = [parts[3] for n in taken if len(parts := n.split("-")) >= 5]
            item_id = ids.generate(ids.IdKind.ASSET, used)
            name = artifact_name(
                wo.tenant_id, wo.work_order_id, mp.module_id, item_id, f.sha256, f.path, limit
            )
            # streamed from disk; over 2 GiB is refused before any upload
            ctx.releases.create_asset_from_file(tag, name, ws_root / "outputs" / f.path)
            taken.add(name)
            items.append(
                PublishedItem(
                    filename=name,
                    item_id=item_id,
                    asset_id=item_id,
                    source_name=f.path,
                    sha256=f.sha256,
                    size_bytes=f.size_bytes,
                    content_type=content_type(f.format, f.path),
                )
            )
        return items
    except (OSError, ValueError, AssetExists, WorkmillError) as exc:
        raise _Failed("ARTIFACT_PUBLISH_FAILED", f"publishing to {tag} failed: {exc}") from exc


def _artifacts_eligible(ctx: RunContext, module_id: str) -> tuple[bool, str]:
    module = ctx.repo.module(module_id)
    if not module.capabilities.supports_downloadable_artifacts:
        return False, f"module {module_id} does not support downloadable artifacts"
    if not ctx.artifacts_enabled.get(module_id, True):
        return False, f"artifacts of module {module_id} are disabled in module_artifacts_policy.csv"
    return True, ""


def _refusal(ctx: RunContext, mp: ModulePlan) -> tuple[str, str] | None:
    """Why a charged module must not start: artifacts it cannot publish, or (when its
    code would run) a required secret missing on this machine (the plan may have been
    made on another one, docs/supply-chain.md "Secrets")."""
    if mp.purchase_release_artifacts:
        ok, why = _artifacts_eligible(ctx, mp.module_id)
        if not ok:
            return "ARTIFACTS_NOT_ELIGIBLE", why
    if mp.reuse_output_type not in ("new", "cache"):
        return None
    if missing := missing_secrets(ctx.repo.module(mp.module_id)):
        return (
            "MODULE_SECRET_MISSING",
            f"module {mp.module_id} needs {', '.join(missing)} (not set)",
        )
    return None


def execute_module(
    ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan, prepared: PreparedRun | None = None
) -> ModuleOutcome:
    """``prepared``: what :func:`prepare_module` made for this module, if anything (the
    caller discards it afterwards)."""
    started = clock.now_iso()
    t0 = time.perf_counter()
    ws_root = module_workspace(ctx, wo, mp.module_id)
    out = {
        "module_id": mp.module_id,
        "module_run_id": mp.module_run_id,
        "module_version": mp.module_version,
        "reuse_output_type": mp.reuse_output_type,
        "started_at": started,
    }

    def done(status: str, reason: str = "", message: str = "", **extra) -> ModuleOutcome:
        code = ctx.code(reason) if reason and not ids.is_reason_code(reason) else reason
        return ModuleOutcome(
            **out,
            status=status,
            reason_code=code,
            message=message,
            finished_at=clock.now_iso(),
            duration_ms=int((time.perf_counter() - t0) * 1000),
            **extra,
        )

    try:
        if mp.unrunnable:
            return done(FAILED, "INTERNAL_ERROR", mp.unrunnable)
        if mp.module_digest and ctx.module_digest(mp.module_id) != mp.module_digest:
            # what was charged is this module as it was then; its code is no longer here
            return done(
                FAILED,
                "INTERNAL_ERROR",
                f"module {mp.module_id} changed since this work order was charged "
                f"(digest {mp.module_digest[:12]}… is now "
                f"{ctx.module_digest(mp.module_id)[:12]}…); not run",
            )
        if (refused := _refusal(ctx, mp)) is not None:
            return done(FAILED, *refused)
        if mp.reuse_output_type in ("new", "cache"):
            out["module_digest"] = ctx.module_digest(mp.module_id)  # what runs (runs log)
        extra: dict = {}
        if mp.reuse_output_type in ("release", "assets"):
            ws = create_workspace(ws_root, replace=True)
            try:
                if mp.reuse_output_type == "release":
                    assert mp.release_tag is not None
                    restore_from_release(
                        ReleaseAdapter(ctx),
                        mp.release_tag,
                        wo.tenant_id,
                        mp.module_id,
                        ctx.allowed_pairs,
                        ws.outputs,
                    )
                else:
                    assert mp.assets_folder_name is not None
                    restore_from_assets(
                        ctx.repo.assets_dir(wo.tenant_id),
                        mp.assets_folder_name,
                        mp.module_id,
                        ws.outputs,
                    )
            except ReuseFailed as exc:
                write_manifest(
                    ws.manifest_file,
                    build_manifest(mp.module_id, mp.module_run_id, mp.module_version, []),
                )
                return done(FAILED, exc.reason, str(exc))
            manifest = _finish_reused(ctx, ws_root, wo, mp)
            status, reason, message = COMPLETED, "", f"outputs reused from {mp.reuse_output_type}"
        else:
            manifest, status, reason, message, extra = _run_or_restore(
                ctx, wo, mp, ws_root, prepared
            )
        if status != FAILED and mp.purchase_release_artifacts:
            extra["published"] = _publish(ctx, wo, mp, ws_root, manifest)
        return done(status, reason, message, outputs_sha256=manifest.outputs_sha256, **extra)
    except _Failed as exc:
        return done(FAILED, exc.reason, str(exc))
    except Exception as exc:  # never let one module take the run down
        ws_root.parent.mkdir(parents=True, exist_ok=True)
        err = ws_root.parent / f"{mp.module_id}.internal-error.log"
        err.write_text(traceback.format_exc())
        return done(FAILED, "INTERNAL_ERROR", f"{type(exc).__name__}: {exc} (see {err})")


def _run_request(
    ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan, inputs_dir: Path
) -> ModuleRunRequest:
    return ModuleRunRequest.from_repo(
        ctx.repo,
        mp.module_id,
        tenant_id=wo.tenant_id,
        work_order_id=wo.work_order_id,
        module_run_id=mp.module_run_id,
        params=mp.params,
        catalog=ctx.catalog,
        runtime_dir=ctx.runtime_dir,
        inputs_dir=inputs_dir,
        cancel=ctx.cancel,
        replace_existing=True,
        extra_env=secret_env(ctx.repo.module(mp.module_id)),
    )


def prepare_module(ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan) -> PreparedRun | None:
    """Make a module's workspace and empty inputs folder and start its step agent ahead
    of its turn (only for modules that will run their code); None when it cannot be."""
    if mp.reuse_output_type != "new" or mp.unrunnable:
        return None
    inputs_dir = _inputs_root(ctx, wo, mp)
    try:
        _fresh_dir(inputs_dir)
        return prepare_run(_run_request(ctx, wo, mp, inputs_dir))
    except Exception:  # never fails the run: the module's own turn meets and reports it
        shutil.rmtree(inputs_dir, ignore_errors=True)
        return None


def discard_prepared(ctx: RunContext, wo: WorkOrderPlan, mp: ModulePlan, prep: PreparedRun) -> None:
    """Close a prepared run's agent; a workspace the run never adopted is removed, so
    a module that did not run leaves nothing behind (as if never prepared)."""
    prep.close()
    if not prep.used:
        shutil.rmtree(prep.workspace.root, ignore_errors=True)
        shutil.rmtree(_inputs_root(ctx, wo, mp), ignore_errors=True)


def _run_or_restore(
    ctx: RunContext,
    wo: WorkOrderPlan,
    mp: ModulePlan,
    ws_root: Path,
    prepared: PreparedRun | None = None,
):
    repo = ctx.repo
    module = repo.module(mp.module_id)
    deps = mp.depends_on
    inputs_dir = _stage_inputs(ctx, wo, mp, deps, made=prepared is not None)
    use_cache = uses_cache(ctx, mp)
    request = None
    extra: dict = {}
    if use_cache:  # a module without a cache never loads the cache service
        from workmill.cache import service as cache_service

        try:
            action = repo.action(mp.module_id)
            resolved = resolve_params(
                action, dict(mp.params), load_params_schema(repo.module_dir(mp.module_id))
            )
            request = cache_service.build_request(
                repo,
                tenant_id=wo.tenant_id,
                module_id=mp.module_id,
                params=resolved,
                inputs_dir=inputs_dir,
            )
        except ParamsInvalid:
            request = None  # the run below reports PARAMS_INVALID
        except WorkmillError:  # CacheError included: no cache, the module still runs
            request = None
    if request is not None and mp.reuse_output_type == "cache":
        ws = create_workspace(ws_root, replace=True)
        hit = cache_service.lookup_and_restore(
            ctx.cache, request, ws.outputs, index_rows=ctx.cache_index_rows
        )
        if hit is not None:
            manifest = _finish_reused(ctx, ws_root, wo, mp)
            extra = {"cache_hit": True, "cache_key": hit.key}
            return manifest, COMPLETED, "", f"cache hit {hit.key[:12]}", extra
    result = run_module(_run_request(ctx, wo, mp, inputs_dir), prepared)
    status = str(result.status)
    if request is not None and status == COMPLETED:
        retention = cache_service.retention_days_for(module, mp.cache_retention_override)
        try:
            stored = cache_service.store(
                ctx.cache,
                request,
                result.outputs_dir,
                retention_days=retention,
                files=[EntryFile(f.path, f.size_bytes, f.sha256) for f in result.manifest.files],
            )
            extra = {
                "cache_key": stored.key,
                "cache_saved_bytes": stored.entry.size_bytes,
                "cache_retention_days": retention,
                "cache_created_at": stored.entry.created_at,
                "cache_expires_at": stored.entry.expires_at,
            }
        except (CacheError, OSError):
            pass  # a failed save only means the next identical request misses
    return result.manifest, status, result.reason_code, result.message, extra
