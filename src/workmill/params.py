"""Module params: the work order's params are the action's inputs (docs/reference.md "Files of a platform repo").

Resolution merges the action's input defaults under the given params, then
checks required inputs and ``schemas/params.schema.json``. Every problem is a
message the orchestrator records as ``PARAMS_INVALID``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workmill.errors import Problem, SpecError
from workmill.specs import ActionSpec

PARAMS_SCHEMA = "schemas/params.schema.json"


class ParamsInvalid(SpecError):
    """Params do not satisfy the action's inputs or the module's params schema."""


def load_params_schema(module_dir: Path) -> dict[str, Any] | None:
    path = module_dir / PARAMS_SCHEMA
    if not path.exists():
        return None
    name = f"modules/{module_dir.name}/{PARAMS_SCHEMA}"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError.at(name, f"not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise SpecError.at(name, "a JSON Schema must be an object")
    import jsonschema  # here: a module without a params schema never loads it
    from jsonschema.exceptions import SchemaError

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise SpecError.at(name, f"not a valid JSON Schema: {exc.message}") from exc
    return schema


def schema_errors(schema: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """Every way ``params`` fails ``schema``, as 'field: message' strings (sorted)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    out = []
    for err in validator.iter_errors(params):
        field = ".".join(str(p) for p in err.absolute_path) or "params"
        out.append(f"{field}: {err.message}")
    return sorted(out)


def resolve_params(
    action: ActionSpec, params: dict[str, Any], schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Params after defaults; raises ParamsInvalid listing every problem."""
    resolved: dict[str, Any] = {}
    for name, spec in action.inputs.items():
        if spec.default is not None:
            resolved[name] = spec.default
    resolved.update(params)
    problems = [
        f"params.{name}: required input has no value"
        for name, spec in action.inputs.items()
        if spec.required and resolved.get(name) is None
    ]
    problems += declared_type_problems(action, resolved)
    if schema is not None:
        problems += [
            f"params.{e}" if not e.startswith("params") else e
            for e in schema_errors(schema, resolved)
        ]
    if problems:
        raise ParamsInvalid([_problem(p) for p in problems])
    return resolved


def _declared_type(default: Any) -> tuple[str, Any] | None:
    """(what, check) for an input whose default is a boolean or a number, else None."""
    if isinstance(default, bool):
        return "a boolean (true or false)", lambda v: isinstance(v, bool)
    if isinstance(default, int | float):
        return "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    return None


def declared_type_problems(action: ActionSpec, resolved: dict[str, Any]) -> list[str]:
    """An input whose default is a number or boolean declares that type: a value of
    another type is refused before any charge, so a string never reaches a module's
    ``$(( WM_PARAM_N + 1 ))`` (docs/reference.md "Sandbox and tenant isolation")."""
    out = []
    for name, spec in action.inputs.items():
        declared = _declared_type(spec.default)
        value = resolved.get(name)
        if declared is None or value is None or declared[1](value):
            continue
        out.append(f"params.{name}: must be {declared[0]} like its default, not {value!r:.60}")
    return out


def _problem(text: str) -> Problem:
    field, _, msg = text.partition(": ")
    return Problem("params", None, field, msg)
