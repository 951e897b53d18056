"""The module runner: one composite action run locally, safely, with the module contract.

Public API (pinned by tests): :func:`run_module` with :class:`ModuleRunRequest` /
:class:`ModuleRunResult` (:func:`prepare_run` starts a run's sandbox ahead of its
turn); :func:`check_outputs` and :func:`build_manifest` for outputs restored from
cache/release/assets; :func:`check_action` for validation.
"""

from __future__ import annotations

from workmill.runner.api import (
    ModuleRunRequest,
    ModuleRunResult,
    PreparedRun,
    prepare_run,
    run_module,
)
from workmill.runner.contract import ContractReport, FileCheck, check_format, check_outputs
from workmill.runner.expressions import ExpressionError
from workmill.runner.interpreter import ActionRefused, check_action, plan_action
from workmill.runner.manifest import (
    MANIFEST_FILE,
    ManifestFile,
    OutputsManifest,
    build_manifest,
    read_manifest,
    write_manifest,
)
from workmill.runner.outcome import RUNNER_REASONS, ModuleStatus, Outcome, RunFacts, decide
from workmill.runner.workspace import RunnerError, Workspace, workspace_path

__all__ = [
    "MANIFEST_FILE",
    "RUNNER_REASONS",
    "ActionRefused",
    "ContractReport",
    "ExpressionError",
    "FileCheck",
    "ManifestFile",
    "ModuleRunRequest",
    "ModuleRunResult",
    "ModuleStatus",
    "Outcome",
    "OutputsManifest",
    "PreparedRun",
    "RunFacts",
    "RunnerError",
    "Workspace",
    "build_manifest",
    "check_action",
    "check_format",
    "check_outputs",
    "decide",
    "plan_action",
    "prepare_run",
    "read_manifest",
    "run_module",
    "workspace_path",
    "write_manifest",
]
