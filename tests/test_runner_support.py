"""Shared builders for the runner tests: a reason catalog, a module, an action, a request."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from workmill.reasons import Reason, ReasonCatalog
from workmill.runner import ModuleRunRequest, ModuleRunResult, run_module
from workmill.specs import ActionSpec, ModuleSpec

GLOBAL = [
    "PARAMS_INVALID",
    "MODULE_FAILED",
    "MODULE_TIMEOUT",
    "OUTPUT_CONTRACT_VIOLATION",
    "INTERRUPTED",
    "INTERNAL_ERROR",
]
CODES = {name: f"001000{i:03d}" for i, name in enumerate(GLOBAL, start=1)}


def catalog(module_id: str = "001") -> ReasonCatalog:
    by_code = {
        code: Reason(code, "global", "000", f"G{i:02d}", name, "", True, True, "active")
        for i, (name, code) in enumerate(CODES.items(), start=1)
    }
    by_code[f"102{module_id}001"] = Reason(
        f"102{module_id}001",
        "module",
        module_id,
        "E01",
        "INPUT_TOO_LARGE",
        "",
        True,
        False,
        "active",
    )
    by_code[f"102{module_id}002"] = Reason(
        f"102{module_id}002", "module", module_id, "W01", "PARTIAL", "", False, False, "active"
    )
    return ReasonCatalog(by_code)


def action(steps: list[dict[str, Any]], **kw: Any) -> ActionSpec:
    return ActionSpec.model_validate({"runs": {"using": "composite", "steps": steps}, **kw})


def module(outputs: list[dict[str, str]] | None = None, **kw: Any) -> ModuleSpec:
    return ModuleSpec.model_validate(
        {"module_id": "001", "name": "Test", "version": "1.0.0", "outputs": outputs or [], **kw}
    )


def request(
    tmp_path: Path,
    steps: list[dict[str, Any]],
    *,
    params: dict[str, Any] | None = None,
    outputs: list[dict[str, str]] | None = None,
    action_kw: dict[str, Any] | None = None,
    module_kw: dict[str, Any] | None = None,
    **kw: Any,
) -> ModuleRunRequest:
    mdir = tmp_path / "modules" / "001"
    mdir.mkdir(parents=True, exist_ok=True)
    return ModuleRunRequest(
        module_dir=mdir,
        module=module(outputs, **(module_kw or {})),
        action=action(steps, **(action_kw or {})),
        tenant_id="Tn0001",
        work_order_id="Wo000001",
        module_run_id=kw.pop("module_run_id", "Run00001"),
        params=params or {},
        runtime_dir=tmp_path / "runtime",
        catalog=catalog(),
        cache_dir=tmp_path / "cache",
        kill_grace_seconds=kw.pop("kill_grace_seconds", 0.5),
        **kw,
    )


def run(tmp_path: Path, steps: list[dict[str, Any]], **kw: Any) -> ModuleRunResult:
    return run_module(request(tmp_path, steps, **kw))


def write_module_dir(root: Path, module_id: str, module_yml: dict, action_yml: dict) -> Path:
    d = root / "modules" / module_id
    d.mkdir(parents=True, exist_ok=True)
    (d / "module.yml").write_text(yaml.safe_dump(module_yml), encoding="utf-8")
    (d / "action.yml").write_text(yaml.safe_dump(action_yml, sort_keys=False), encoding="utf-8")
    return d


def step_log(result: ModuleRunResult, index: int = 0) -> str:
    return result.step_logs[index].read_text(encoding="utf-8")


__all__ = ["CODES", "action", "catalog", "module", "request", "run", "step_log", "threading"]
