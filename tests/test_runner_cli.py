"""``workmill module run`` end to end, in a subprocess, on a hand-built repo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from test_runner_support import CODES, write_module_dir

CATALOG_HEADER = (
    "reason_code,scope,category_id,module_id,reason_key,name,description,"
    "default_fail,default_refundable,status\n"
)


@pytest.fixture
def repo(tmp_path):
    rows = [
        f"{code},global,01,000,G{i:02d},{name},,true,true,active"
        for i, (name, code) in enumerate(CODES.items(), start=1)
    ]
    rows.append("102001001,module,02,001,E01,TOO_BIG,,true,false,active")
    (tmp_path / "workmill.yml").write_text("store: local\n")  # the CLI needs a platform repo
    ms = tmp_path / "maintenance-state"
    ms.mkdir()
    (ms / "reason_catalog.csv").write_text(CATALOG_HEADER + "\n".join(rows) + "\n")
    write_module_dir(
        tmp_path,
        "001",
        {
            "module_id": "001",
            "name": "Greeter",
            "version": "2.0.0",
            "outputs": [{"name": "hello.txt", "format": "text"}],
            "smoke": {"params": {"who": "smoke"}},
        },
        {
            "name": "greeter",
            "inputs": {"who": {"required": True}, "fail": {"default": "no"}},
            "runs": {
                "using": "composite",
                "steps": [
                    {
                        "id": "greet",
                        "shell": "bash",
                        "run": 'echo "hello ${{ inputs.who }} ($WM_MODE)" > "$WM_OUTPUTS_DIR/hello.txt"\n'
                        'if [ "$WM_PARAM_FAIL" = yes ]; then echo E01 > "$WM_REASON_FILE"; exit 4; fi',
                    }
                ],
            },
        },
    )
    write_module_dir(
        tmp_path,
        "002",
        {
            "module_id": "002",
            "name": "Shouter",
            "version": "1.0.0",
            "depends_on": ["001"],
            "inputs": [{"module": "001", "name": "hello.txt", "format": "text"}],
            "outputs": [{"name": "loud.txt", "format": "text"}],
        },
        {
            "runs": {
                "using": "composite",
                "steps": [
                    {
                        "shell": "python",
                        "run": "import os\n"
                        "src = open(os.path.join(os.environ['WM_INPUTS_DIR'], '001', 'hello.txt')).read()\n"
                        "open(os.path.join(os.environ['WM_OUTPUTS_DIR'], 'loud.txt'), 'w').write(src.upper())",
                    }
                ],
            }
        },
    )
    return tmp_path


def test_module_run__completed_prints_outputs_with_sha256(cli, repo):
    res = cli("module", "run", "001", "--params", '{"who": "Ada"}', cwd=repo)
    assert res.returncode == 0, res.stderr
    out_file = repo / "runtime" / "000000" / "LOCALRUN" / "001" / "outputs" / "hello.txt"
    assert out_file.read_text() == "hello Ada (run)\n"
    sha = hashlib.sha256(out_file.read_bytes()).hexdigest()
    assert ": COMPLETED" in res.stdout and sha in res.stdout
    assert "step-01-greet.log" in res.stdout and "runner.log" in res.stdout


def test_module_run__failed_with_reason_exits_1(cli, repo, tmp_path):
    params = tmp_path / "p.json"
    params.write_text('{"who": "x", "fail": "yes"}')
    res = cli("module", "run", "001", "--params", f"@{params}", "--json", cwd=repo)
    assert res.returncode == 1
    data = json.loads(res.stdout)
    assert (data["status"], data["reason_code"], data["exit_code"]) == ("FAILED", "102001001", 4)
    assert data["outputs"][0]["path"] == "hello.txt"  # manifest written even when FAILED


def test_module_run__smoke_uses_smoke_params_and_mode(cli, repo):
    res = cli("module", "run", "001", "--smoke", "--json", cwd=repo)
    assert res.returncode == 0, res.stderr
    path = json.loads(res.stdout)["outputs_dir"]
    assert Path(path, "hello.txt").read_text() == "hello smoke (smoke)\n"


def test_module_run__dependency_inputs_from_previous_local_run(cli, repo):
    assert cli("module", "run", "001", "--params", '{"who": "Bo"}', cwd=repo).returncode == 0
    res = cli("module", "run", "002", "--json", cwd=repo)
    assert res.returncode == 0, res.stdout + res.stderr
    data = json.loads(res.stdout)
    assert Path(data["outputs_dir"], "loud.txt").read_text() == "HELLO BO (RUN)\n"


def test_module_run__missing_dependency_output_warns_and_fails(cli, repo):
    res = cli("module", "run", "002", cwd=repo)
    assert res.returncode == 1
    assert "run `workmill module run 001` first" in res.stderr


def test_module_run__injection_through_cli_params_does_nothing(cli, repo, tmp_path):
    marker = tmp_path / "pwned"
    params = json.dumps({"who": f"$(touch {marker}); touch {marker}"})
    res = cli("module", "run", "001", "--params", params, cwd=repo)
    assert res.returncode == 0 and not marker.exists()
    assert "WM_EXPR_1" in res.stderr  # the warning


def test_module_run__params_invalid_exit_1(cli, repo):
    res = cli("module", "run", "001", "--params", "{}", cwd=repo)
    assert res.returncode == 1
    assert CODES["PARAMS_INVALID"] in res.stdout and "who" in res.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["module", "run", "001", "--params", "{bad"], 2, "not valid JSON"),
        (["module", "run", "001", "--params", "[1]"], 1, "must be a JSON object"),
        (["module", "run", "0_1"], 2, "MODULE_ID"),
        (["module", "run", "009"], 1, "module not found"),
        (["module", "run", "001", "--tenant-id", "x"], 2, "--tenant-id"),
    ],
)
def test_module_run__bad_input_one_clear_line(cli, repo, args, code, message):
    res = cli(*args, cwd=repo)
    assert res.returncode == code
    assert message in res.stderr and "Traceback" not in res.stderr


def test_module_run__without_catalog_says_run_maintenance(cli, repo):
    (repo / "maintenance-state" / "reason_catalog.csv").unlink()
    res = cli("module", "run", "001", "--params", '{"who": "a"}', cwd=repo)
    assert res.returncode == 1 and "workmill maintenance" in res.stderr


def test_module_run__help_has_example(cli, repo):
    res = cli("module", "run", "-h", cwd=repo)
    assert res.returncode == 0 and "Example:" in res.stdout


def test_module_run__every_example_module_in_dependency_order(cli, tmp_path):
    """The shipped example platform: maintenance, then each module on its smoke params."""
    import shutil

    from workmill.cli._module import inputs_from_previous_runs
    from workmill.reasons import ReasonCatalog
    from workmill.repo import PlatformRepo
    from workmill.runner import ModuleRunRequest, run_module

    src = Path(__file__).resolve().parents[1] / "examples" / "platform"
    if not (src / "modules").is_dir():
        pytest.skip("examples/platform not present")
    root = tmp_path / "platform"
    shutil.copytree(
        src, root, ignore=shutil.ignore_patterns("runtime", ".workmill", ".billing-state")
    )
    res = cli("maintenance", cwd=root)
    assert res.returncode == 0, res.stderr
    repo = PlatformRepo.open(root)
    catalog = ReasonCatalog.load(repo.maintenance_dir)
    done: set[str] = set()
    pending = repo.module_ids()
    while pending:
        ready = [m for m in pending if set(repo.module(m).deps) <= done]
        assert ready, f"no runnable module among {pending}"
        for mid in ready:
            spec = repo.module(mid)
            runtime = root / "runtime"
            req = ModuleRunRequest.from_repo(
                repo,
                mid,
                tenant_id="000000",
                work_order_id="LOCALRUN",
                module_run_id="Example1",
                params=dict(spec.smoke.params),
                catalog=catalog,
                runtime_dir=runtime,
                inputs_dir=inputs_from_previous_runs(runtime, "000000", "LOCALRUN", spec),
                mode="smoke",
            )
            r = run_module(req)
            assert r.status != "FAILED", (mid, r.message, r.runner_log.read_text())
            assert {f.path for f in r.manifest.files} >= {o.name for o in spec.outputs}
            done.add(mid)
            pending.remove(mid)
