"""Composite-action semantics, written from GitHub's docs (steps, if, env, command files)."""

from __future__ import annotations

import pytest

from test_runner_support import CODES, action, run, step_log
from workmill.runner import ActionRefused, check_action, plan_action
from workmill.runner.commands import CommandFileError, parse_key_values


def out_step(text: str) -> dict:
    return {"shell": "bash", "run": f'printf "%s" "{text}" > "$WM_OUTPUTS_DIR/out.txt"'}


def read_out(result) -> str:
    return (result.outputs_dir / "out.txt").read_text()


def test_step_outputs__flow_to_later_steps_and_action_outputs(tmp_path):
    r = run(
        tmp_path,
        [
            {"id": "one", "shell": "bash", "run": 'echo "greeting=hello" >> "$GITHUB_OUTPUT"'},
            {
                "id": "two",
                "shell": "sh",
                "env": {"G": "${{ steps.one.outputs.greeting }}"},
                "run": 'echo "both=$G world" >> "$GITHUB_OUTPUT"',
            },
        ],
        action_kw={"outputs": {"result": {"value": "${{ steps.two.outputs.both }}!"}}},
    )
    assert r.status == "COMPLETED", r.message
    assert r.action_outputs == {"result": "hello world!"}


def test_github_output__multiline_delimiter_form(tmp_path):
    script = (
        'delim="EOF_$RANDOM"\n'
        '{ echo "notes<<$delim"; echo "line 1"; echo "line=2"; echo "$delim"; } >> "$GITHUB_OUTPUT"\n'
        'echo "after=x" >> "$GITHUB_OUTPUT"\n'
    )
    r = run(
        tmp_path,
        [{"id": "s", "shell": "bash", "run": script}],
        action_kw={
            "outputs": {
                "notes": {"value": "${{ steps.s.outputs.notes }}"},
                "after": {"value": "${{ steps.s.outputs.after }}"},
            }
        },
    )
    assert r.action_outputs == {"notes": "line 1\nline=2", "after": "x"}


def test_parse_key_values__missing_delimiter_fails():
    with pytest.raises(CommandFileError, match="delimiter"):
        parse_key_values("a<<EOF\nno end\n", "GITHUB_OUTPUT")


def test_parse_key_values__value_may_contain_equals_and_later_wins():
    assert parse_key_values("a=1=2\na=3\nb=\n", "X") == {"a": "3", "b": ""}


def test_parse_key_values__line_without_separator_fails():
    with pytest.raises(CommandFileError, match="expected"):
        parse_key_values("garbage\n", "GITHUB_ENV")


def test_bad_github_output__fails_the_step(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": 'echo "junk" >> "$GITHUB_OUTPUT"'}])
    assert r.status == "FAILED" and r.reason_code == CODES["MODULE_FAILED"]
    assert "GITHUB_OUTPUT" in r.message


def test_github_env__visible_to_later_steps_not_the_same_step(tmp_path):
    r = run(
        tmp_path,
        [
            {
                "shell": "bash",
                "run": 'echo "COLOR=blue" >> "$GITHUB_ENV"; echo "now=${COLOR:-unset}"',
            },
            {
                "shell": "bash",
                "run": 'printf "%s/%s" "$COLOR" "${{ env.COLOR }}" > "$WM_OUTPUTS_DIR/out.txt"',
            },
        ],
    )
    assert read_out(r) == "blue/blue"
    assert "now=unset" in step_log(r, 0)


def test_github_env__cannot_override_platform_variables(tmp_path):
    r = run(
        tmp_path,
        [
            {"shell": "bash", "run": 'echo "WM_OUTPUTS_DIR=/tmp" >> "$GITHUB_ENV"'},
            {"shell": "bash", "run": 'printf "%s" "$WM_OUTPUTS_DIR" > "$WM_OUTPUTS_DIR/out.txt"'},
        ],
    )
    assert read_out(r) == str(r.outputs_dir)
    assert any("may not set WM_OUTPUTS_DIR" in w for w in r.warnings)


def test_github_path__prepended_for_later_steps(tmp_path):
    tools = tmp_path / "modules" / "001" / "tools"  # the module folder: visible in the sandbox
    tools.mkdir(parents=True)
    (tools / "mytool").write_text("#!/bin/sh\necho from-mytool\n")
    (tools / "mytool").chmod(0o755)
    r = run(
        tmp_path,
        [
            {"shell": "bash", "run": f'echo "{tools}" >> "$GITHUB_PATH"'},
            {"shell": "bash", "run": 'mytool > "$WM_OUTPUTS_DIR/out.txt"'},
        ],
    )
    assert read_out(r) == "from-mytool\n"


def test_if__default_success_skips_after_failure_and_always_runs(tmp_path):
    r = run(
        tmp_path,
        [
            {"id": "bad", "shell": "bash", "run": "exit 3"},
            {"id": "normal", "shell": "bash", "run": "echo should-not-run"},
            {
                "id": "cleanup",
                "if": "always()",
                "shell": "bash",
                "run": 'echo "${{ steps.bad.outcome }}/${{ steps.normal.outcome }}" > "$WM_OUTPUTS_DIR/out.txt"',
            },
            {"id": "onfail", "if": "${{ failure() }}", "shell": "bash", "run": "true"},
        ],
    )
    assert r.status == "FAILED" and r.reason_code == CODES["MODULE_FAILED"]
    assert "exited with code 3" in r.message and r.exit_code == 3
    assert [s.outcome for s in r.steps] == ["failure", "skipped", "success", "success"]
    assert read_out(r) == "failure/skipped\n"


def test_if__expression_on_inputs_without_braces(tmp_path):
    steps = [
        {"if": "inputs.flavor == 'VANILLA'", **out_step("vanilla")},
        {"if": "${{ inputs.flavor != 'vanilla' }}", **out_step("other")},
    ]
    r = run(
        tmp_path,
        steps,
        params={"flavor": "vanilla"},
        action_kw={"inputs": {"flavor": {"required": True}}},
    )
    assert read_out(r) == "vanilla"
    assert [s.outcome for s in r.steps] == ["success", "skipped"]


def test_continue_on_error__outcome_failure_conclusion_success(tmp_path):
    r = run(
        tmp_path,
        [
            {"id": "flaky", "shell": "bash", "run": "exit 1", "continue-on-error": True},
            {
                "shell": "bash",
                "run": 'echo "${{ steps.flaky.outcome }}-${{ steps.flaky.conclusion }}-${{ success() }}" > "$WM_OUTPUTS_DIR/out.txt"',
            },
        ],
    )
    assert r.status == "COMPLETED", r.message
    assert read_out(r) == "failure-success-true\n"


def test_working_directory__relative_to_workspace_and_expressions(tmp_path):
    mdir = tmp_path / "modules" / "001"
    (mdir / "src").mkdir(parents=True)
    r = run(
        tmp_path,
        [
            {"shell": "bash", "run": "mkdir -p sub"},
            {"shell": "bash", "working-directory": "sub", "run": 'pwd > "$WM_OUTPUTS_DIR/a"'},
            {
                "shell": "bash",
                "working-directory": "${{ github.action_path }}/src",
                "run": 'pwd > "$WM_OUTPUTS_DIR/b"',
            },
        ],
    )
    assert (r.outputs_dir / "a").read_text().strip() == str(r.workspace / "work" / "sub")
    assert (r.outputs_dir / "b").read_text().strip() == str((mdir / "src").resolve())


def test_working_directory__missing_fails_the_step(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "working-directory": "nope", "run": "true"}])
    assert r.status == "FAILED" and "does not exist" in r.message


def test_shell_bash__pipefail_and_errexit(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": "false | true\necho unreachable"}])
    assert r.status == "FAILED"
    assert "unreachable" not in step_log(r)


def test_shell_sh__errexit(tmp_path):
    r = run(tmp_path, [{"shell": "sh", "run": "false\necho unreachable"}])
    assert r.status == "FAILED" and "unreachable" not in step_log(r)


def test_shell_python__runs_under_workmills_interpreter(tmp_path):
    import sys

    r = run(
        tmp_path,
        [
            {
                "shell": "python",
                "run": "import os, sys\nopen(os.environ['WM_OUTPUTS_DIR'] + '/out.txt', 'w').write(sys.executable)",
            }
        ],
    )
    assert read_out(r) == sys.executable


def test_runner_and_github_contexts(tmp_path):
    r = run(
        tmp_path,
        [out_step("${{ runner.os }}|${{ runner.temp }}|${{ github.action_path }}")],
    )
    os_name, temp, path = read_out(r).split("|")
    assert os_name == "Linux"
    assert temp == str(r.workspace / "tmp")
    assert path == str((tmp_path / "modules" / "001").resolve())


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"uses": "actions/checkout@v4"}, "not supported locally"),
        ({"shell": "pwsh", "run": "Write-Host hi"}, "'pwsh' is not supported"),
        ({"shell": "bash", "run": "echo ${{ inputs.x ==  }}"}, "expected a value"),
        ({"shell": "bash", "run": "echo ${{ nosuch() }}"}, "unknown function"),
        ({"shell": "bash", "if": "secrets.X", "run": "true"}, "not available"),
        ({"shell": "bash", "env": {"A": "${{ 'x }}"}, "run": "true"}, "unterminated"),
    ],
)
def test_plan_action__refuses_before_anything_runs(tmp_path, step, message):
    marker = tmp_path / "ran"
    steps = [{"shell": "bash", "run": f"touch {marker}"}, step]
    with pytest.raises(ActionRefused, match=message):
        plan_action(action(steps))
    r = run(tmp_path, steps)
    assert r.status == "FAILED" and r.reason_code == CODES["MODULE_FAILED"]
    assert "action.yml refused" in r.message
    assert not marker.exists()


def test_check_action__lists_every_problem():
    problems = check_action(
        action(
            [
                {"id": "a", "shell": "bash", "run": "true"},
                {"id": "A", "shell": "cmd", "run": "true"},
            ]
        )
    )
    assert len(problems) == 2
    assert any("used by an earlier step" in p for p in problems)


def test_plan_action__non_composite_refused():
    spec = action([])
    spec = spec.model_copy(update={"runs": spec.runs.model_copy(update={"using": "node20"})})
    assert "node20" in check_action(spec)[0]


def test_runtime_expression_error__fails_the_step(tmp_path):
    r = run(tmp_path, [{"shell": "bash", "run": "echo ${{ fromJSON('nope') }}"}])
    assert r.status == "FAILED" and "fromJSON" in r.message


def test_required_input_missing__params_invalid_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    r = run(
        tmp_path,
        [{"shell": "bash", "run": f"touch {marker}"}],
        action_kw={"inputs": {"rows": {"required": True}}},
    )
    assert r.status == "FAILED" and r.reason_code == CODES["PARAMS_INVALID"]
    assert "rows" in r.message and not marker.exists()


def test_input_default__used_when_param_absent(tmp_path):
    r = run(
        tmp_path,
        [out_step("$WM_PARAM_ROWS")],
        action_kw={"inputs": {"rows": {"default": "7"}}},
    )
    assert read_out(r) == "7"
    assert '"rows": "7"' in (r.workspace / "params.json").read_text()
