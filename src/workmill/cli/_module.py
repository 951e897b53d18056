"""``workmill module run``: run one module in isolation for its author (no billing)."""

from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import click

from workmill import ids
from workmill.cli._common import (
    CONTEXT_SETTINGS,
    AppContext,
    echo_err,
    echo_json,
    json_option,
    pass_app,
    runtime_dir_option,
)
from workmill.errors import NotFound, SpecError, UsageError
from workmill.reasons import CATALOG_FILE, ReasonCatalog
from workmill.runner import ModuleRunRequest, ModuleRunResult, ModuleStatus, run_module
from workmill.specs import ModuleSpec
from workmill.yamlio import read_yaml

LOCAL_TENANT = "000000"
LOCAL_WORK_ORDER = "LOCALRUN"


def parse_params_arg(value: str | None) -> dict[str, Any] | None:
    """``--params``: inline JSON, or ``@file`` (JSON, or YAML for .yml/.yaml)."""
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise UsageError(f"--params: {path}: file not found")
        if path.suffix in (".yml", ".yaml"):
            data = read_yaml(path, str(path)).data
        else:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise SpecError.at(str(path), f"not valid JSON: {exc}") from exc
        where = str(path)
    else:
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise UsageError(f"--params: not valid JSON: {exc}") from exc
        where = "--params"
    if not isinstance(data, dict):
        raise SpecError.at(where, "params must be a JSON object")
    return data


def load_catalog(app: AppContext) -> ReasonCatalog:
    """The compiled catalog; without it reason keys have no codes, so say how to get one."""
    repo = app.repo
    if not (repo.maintenance_dir / CATALOG_FILE).is_file():
        raise NotFound(
            f"maintenance-state/{CATALOG_FILE} not found: run `workmill maintenance` first "
            "(it compiles the reason codes a module run reports)"
        )
    return ReasonCatalog.load(repo.maintenance_dir)


def inputs_from_previous_runs(
    runtime_dir: Path, tenant_id: str, work_order_id: str, spec: ModuleSpec
) -> Path:
    """``$WM_INPUTS_DIR`` assembled from the outputs of earlier local runs of the
    dependencies in the same (tenant, work order): run 001, then 002 finds 001's files."""
    wo_dir = runtime_dir / tenant_id / work_order_id
    dest = wo_dir / "_inputs" / spec.module_id
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for inp in spec.inputs:
        src = wo_dir / inp.module / "outputs" / inp.name
        if not src.is_file() or src.is_symlink():
            echo_err(
                f"warning: input {inp.module}/{inp.name} not found in {src.parent} "
                f"(run `workmill module run {inp.module}` first, or pass --inputs)"
            )
            continue
        (dest / inp.module / inp.name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / inp.module / inp.name)
    return dest


def _print_result(r: ModuleRunResult, module_name: str) -> None:
    click.echo(
        f"module {r.module_id} ({module_name} {r.module_version}) run {r.module_run_id}: {r.status}"
    )
    click.echo(f"  reason:    {r.reason_code or '-'}")
    click.echo(f"  message:   {r.message}")
    click.echo(f"  duration:  {r.duration_ms} ms")
    click.echo(f"  workspace: {r.workspace}")
    click.echo(f"outputs ({r.outputs_dir}):")
    if not r.manifest.files:
        click.echo("  (none)")
    for f in r.manifest.files:
        click.echo(f"  {f.path}  {f.size_bytes} bytes  {f.format}  sha256 {f.sha256}")
    click.echo(f"manifest: {r.manifest_path}")
    click.echo("logs:")
    click.echo(f"  runner: {r.runner_log}")
    for s in r.steps:
        label = f"step {s.index}" + (f" ({s.id or s.name})" if (s.id or s.name) else "")
        click.echo(f"  {label}: {s.outcome}  {s.log_path or '-'}")
    for k, v in r.action_outputs.items():
        click.echo(f"action output {k}: {v}")
    for w in r.warnings:
        click.echo(f"warning: {w}", err=True)


@click.group("module", context_settings=CONTEXT_SETTINGS)
def module_group() -> None:
    """Work with one module on its own (for module authors).

    Example:

        workmill module run 001 --params '{"rows": 3}'
    """


@module_group.command("run", context_settings=CONTEXT_SETTINGS)
@click.argument("module_id")
@click.option(
    "--params",
    "params_arg",
    default=None,
    help="Params as inline JSON, or @FILE (JSON, or YAML for .yml/.yaml). "
    "Default: {} (with --smoke: module.yml smoke.params).",
)
@click.option(
    "--inputs",
    "inputs_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="$WM_INPUTS_DIR: dependency outputs as <dep_module_id>/<file>. Default: "
    "the outputs of earlier local runs of the dependencies (same --work-order-id).",
)
@click.option("--smoke", is_flag=True, help="WM_MODE=smoke; default params from smoke.params.")
@click.option(
    "--tenant-id",
    default=LOCAL_TENANT,
    show_default=True,
    help="Tenant id the module sees (WM_TENANT_ID).",
)
@click.option(
    "--work-order-id",
    default=LOCAL_WORK_ORDER,
    show_default=True,
    help="Work order id the module sees; its previous local workspace is replaced.",
)
@click.option(
    "--timeout-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Override module.yml timeout_minutes.",
)
@runtime_dir_option
@json_option
@pass_app
def module_run(
    app: AppContext,
    module_id: str,
    params_arg: str | None,
    inputs_dir: Path | None,
    smoke: bool,
    tenant_id: str,
    work_order_id: str,
    timeout_seconds: float | None,
    runtime_dir: Path | None,
    as_json: bool,
) -> None:
    """Run one module locally, exactly as a work order would, without billing.

    Prints the outcome (COMPLETED, COMPLETED_WITH_EXCEPTION or FAILED), the
    reason code, every output with its sha256, and the log files. Exit code:
    0 when the module completed (with or without exception), 1 when it FAILED
    or the input is invalid, 2 for a usage error. Needs the compiled reason
    catalog (run `workmill maintenance` first). Ctrl-C kills the module's
    processes and reports INTERRUPTED.

    Example:

        workmill module run 001 --params '{"rows": 3}' --inputs ./deps

        workmill module run 001 --smoke --json
    """
    for kind, value, opt in (
        (ids.IdKind.MODULE, module_id, "MODULE_ID"),
        (ids.IdKind.TENANT, tenant_id, "--tenant-id"),
        (ids.IdKind.WORK_ORDER, work_order_id, "--work-order-id"),
    ):
        msg = ids.check(kind, value)
        if msg:
            raise UsageError(f"{opt}: {msg}")
    repo = app.repo
    if not (repo.module_dir(module_id) / "module.yml").is_file():
        raise NotFound(f"modules/{module_id}/module.yml: module not found")
    spec = repo.module(module_id)
    params = parse_params_arg(params_arg)
    if params is None:
        params = dict(spec.smoke.params) if smoke else {}
    catalog = load_catalog(app)
    runtime = (runtime_dir or repo.root / "runtime").resolve()
    if inputs_dir is None and spec.inputs:
        inputs_dir = inputs_from_previous_runs(runtime, tenant_id, work_order_id, spec)
    cancel = threading.Event()
    req = ModuleRunRequest.from_repo(
        repo,
        module_id,
        tenant_id=tenant_id,
        work_order_id=work_order_id,
        module_run_id=ids.generate(ids.IdKind.MODULE_RUN),
        params=params,
        catalog=catalog,
        runtime_dir=runtime,
        inputs_dir=inputs_dir,
        mode="smoke" if smoke else "run",
        timeout_seconds=timeout_seconds,
        cancel=cancel,
        replace_existing=True,
    )
    previous = {
        sig: signal.signal(sig, lambda *_: cancel.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        result = run_module(req)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        echo_json(result.to_dict())
    else:
        _print_result(result, spec.name)
    if result.status is ModuleStatus.FAILED:
        raise click.exceptions.Exit(1)


COMMANDS: list[click.Command] = [module_group]
