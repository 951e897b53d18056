"""The first hour of an operator: every command a person types, end to end.

Repo discovery, reason names wherever codes are read, history and logs, balance,
exit codes, schemas and editor support, scaffold file modes, the demo, and no
user-facing text that points outside the repo.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from platform_factory import T1, T2, T4, build_repo, prepare, work_order
from workmill.cli import COMMAND_MODULES
from workmill.yamlio import read_yaml

ROOT = Path(__file__).resolve().parents[1]
FAILING = "F1aaaaaa"  # module 003 writes reason E01 (BROKEN: fail, refundable)
GOOD = "G1aaaaaa"
POOR = "P1aaaaaa"  # T4 is suspended: REJECTED


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, dict, str]:
    """A repo where one work order completed, one failed, one was rejected (run once)."""
    from conftest import run_cli as cli

    repo = build_repo(tmp_path_factory.mktemp("ops") / "repo")
    work_order(repo, T1, GOOD, [{"module_id": "001"}])
    work_order(repo, T1, FAILING, [{"module_id": "003", "params": {"fail": "E01"}}])
    work_order(repo, T4, POOR, [{"module_id": "001"}])
    prepare(cli, repo, {T1: 500})
    r = cli("run", "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    codes = {
        row.split(",")[5]: row.split(",")[0]
        for row in (repo / "maintenance-state" / "reason_catalog.csv").read_text().splitlines()
    }
    return repo, json.loads(r.stdout), codes["BROKEN"]


# ------------------------------------------------------------------ repo discovery


@pytest.mark.parametrize(
    "args",
    [
        ("balance",),
        ("new", "tenant", "--name", "Acme"),
        ("release", "list"),
        ("state", "bootstrap"),
        ("validate",),
        ("history",),
    ],
)
def test_outside_a_repo__refused_with_one_line_and_nothing_written(cli, tmp_path, args):
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("error: not a workmill platform repo")
    assert len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_repo_found_from_a_sub_folder_and_with_repo_before_or_after(cli, tmp_path):
    repo = build_repo(tmp_path / "repo")
    prepare(cli, repo, {T1: 7})
    deep = repo / "tenants" / T1 / "workorders"
    want = f"{T1}  Tenant {T1}"
    for args, cwd in (
        (("balance", "--tenant-id", T1), deep),
        (("--repo", str(repo), "balance", "--tenant-id", T1), tmp_path),
        (("balance", "--tenant-id", T1, "--repo", str(repo)), tmp_path),
        (("ledger", "show", "--repo", str(repo)), tmp_path),
    ):
        r = cli(*args, cwd=cwd)
        assert r.returncode == 0, (args, r.stderr)
        if args[0] == "balance" or "balance" in args:
            assert r.stdout.startswith(want) and r.stdout.split()[-1] == "7", r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]


def test_init_works_outside_a_repo(cli, tmp_path):
    r = cli("init", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "workmill.yml").is_file()


# ------------------------------------------------------------------ reason names


def test_run_summary__touched_work_orders_reason_names_and_log_path(cli, ran):
    repo, _, broken = ran
    r = cli("run", "--tenant-id", T1, "--work-order-id", GOOD, cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "1 work order(s) not run: 1 already processed" in r.stdout
    assert GOOD not in r.stdout.split("not run")[0]  # a skipped one is counted, not listed
    # a fresh repo: the text summary of a run with a failure and a rejection
    fresh = build_repo(repo.parent.parent / "fresh" / "repo")
    work_order(fresh, T1, FAILING, [{"module_id": "003", "params": {"fail": "E01"}}])
    work_order(fresh, T4, POOR, [{"module_id": "001"}])
    work_order(fresh, T2, "D1aaaaaa", [{"module_id": "001"}], enabled=False)
    prepare(cli, fresh, {T1: 500})
    r = cli("run", cwd=fresh)
    assert r.returncode == 0, r.stderr
    assert f"{broken} BROKEN" in r.stdout
    assert re.search(rf"{POOR} REJECTED: 001000002 TENANT_SUSPENDED: .*suspended", r.stdout)
    logs = fresh / "runtime" / T1 / FAILING / "003" / "logs"
    assert f"log: {logs}" in r.stdout and f"workmill logs {FAILING} 003" in r.stdout
    assert "1 work order(s) not run: 1 disabled" in r.stdout
    assert "D1aaaaaa" not in r.stdout


def test_run_json__module_times_log_paths_and_reason_names(ran):
    repo, out, broken = ran
    rows = {r["work_order_id"]: r for r in out["work_orders"]}
    failed = rows[FAILING]
    assert (failed["reason_code"], failed["reason_name"]) == (broken, "BROKEN")
    (mod,) = failed["modules"]
    assert (mod["status"], mod["reason_name"]) == ("FAILED", "BROKEN")
    assert isinstance(mod["duration_ms"], int) and mod["started_at"] and mod["finished_at"]
    assert mod["logs_dir"] == str(repo / "runtime" / T1 / FAILING / "003" / "logs")
    assert mod["logs"] and all(Path(p).is_file() for p in mod["logs"])
    assert rows[POOR]["reason_name"] == "TENANT_SUSPENDED"
    assert out["not_run"] == 0


def test_ledger_show__codes_in_notes_are_named(cli, ran):
    repo, _, broken = ran
    r = cli("ledger", "show", "--work-order-id", FAILING, cwd=repo)
    assert r.returncode == 0, r.stderr
    assert f"{broken} BROKEN" in r.stdout


def test_ledger_show__unknown_ids_exit_1_known_without_transactions_exit_0(cli, ran):
    repo, _, _ = ran
    r = cli("ledger", "show", "--work-order-id", "Zz99Zz99", cwd=repo)
    assert r.returncode == 1 and "not found" in r.stderr
    r = cli("ledger", "show", "--tenant-id", "Qq12Ww", cwd=repo)
    assert r.returncode == 1 and "not found" in r.stderr
    r = cli("ledger", "show", "--work-order-id", POOR, cwd=repo)  # rejected: never charged
    assert r.returncode == 0 and "no transactions" in r.stdout


# ------------------------------------------------------------------ history and logs


def test_history__lists_processed_work_orders_with_reason_names(cli, ran):
    repo, _, broken = ran
    r = cli("history", cwd=repo)
    assert r.returncode == 0, r.stderr
    for wo in (GOOD, FAILING, POOR):
        assert wo in r.stdout
    assert f"{broken} BROKEN" in r.stdout and "001000002 TENANT_SUSPENDED" in r.stdout
    r = cli("history", "--json", "--tenant-id", T1, cwd=repo)
    entries = {e["work_order_id"]: e for e in json.loads(r.stdout)["work_orders"]}
    assert set(entries) == {GOOD, FAILING}
    assert entries[FAILING]["status"] == "FAILED"
    assert entries[FAILING]["spend_credits"] == 30 and entries[FAILING]["refund_credits"] == 30
    assert [m["reason_name"] for m in entries[FAILING]["modules"]] == ["BROKEN"]
    r = cli("history", "--json", "--limit", "1", cwd=repo)
    assert len(json.loads(r.stdout)["work_orders"]) == 1
    r = cli("history", "--work-order-id", FAILING, cwd=repo)
    assert r.returncode == 0 and re.search(r"003\s+FAILED\s+\d+ BROKEN", r.stdout)
    r = cli("history", "--work-order-id", "Nn00Nn00", cwd=repo)
    assert r.returncode == 1 and "has not been processed" in r.stderr


def test_logs__prints_step_logs_and_lists_paths(cli, ran):
    repo, _, _ = ran
    step_log = next((repo / "runtime" / T1 / GOOD / "001" / "logs").glob("step-*.log"))
    step_log.write_text("hello from the step\n")
    r = cli("logs", GOOD, "001", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"==> {step_log} <==\nhello from the step\n"
    r = cli("logs", FAILING, "--list", "--runner", cwd=repo)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1].endswith("runner.log")
    r = cli("logs", "Nn00Nn00", cwd=repo)
    assert r.returncode == 1 and "no logs" in r.stderr
    r = cli("logs", "bad", cwd=repo)
    assert r.returncode == 2 and "work order id" in r.stderr


# ------------------------------------------------------------------ balance


def test_balance__every_tenant_with_name_zero_included_unknown_exit_1(cli, ran):
    repo, _, _ = ran
    r = cli("balance", cwd=repo)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert set(lines) == {T1, T2, "T3cccc", T4}
    assert lines[T2].split() == [T2, "Tenant", T2, "0"]
    assert "(suspended)" in lines[T4]
    data = json.loads(cli("balance", "--json", cwd=repo).stdout)
    assert {t["tenant_id"]: t["name"] for t in data["tenants"]}[T2] == f"Tenant {T2}"
    assert data["balances"][T2] == 0
    r = cli("balance", "--tenant-id", "Qq12Ww", cwd=repo)
    assert r.returncode == 1 and "not found" in r.stderr and r.stdout == ""


# ------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(
    "args",
    [
        ("balance", "--tenant-id", "bad!"),
        ("ledger", "show", "--work-order-id", "short"),
        ("history", "--limit", "0"),
        ("run", "--tenant-id", "x"),
        ("new", "work-order", "--tenant-id", T1, "--module-id", "toolong"),
        ("release", "download", "not-a-tag", "--dir", "out"),
        ("topup", "--tenant-id", T1, "--topup-method-id", "AD", "--amount-credits", "1.5"),
    ],
)
def test_malformed_option_values_exit_2(cli, ran, args):
    repo, _, _ = ran
    args = (*args, "--reference", "r1") if args[0] == "topup" else args
    r = cli(*args, cwd=repo)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ schemas, scaffold


def test_schema__without_kind_lists_kinds_and_schemas_carry_id_and_titles(cli, tmp_path):
    r = cli("schema", cwd=tmp_path)
    assert r.returncode == 0
    kinds = [line.split()[0] for line in r.stdout.splitlines()]
    assert {"module", "work-order", "tenant", "workmill", "validation"} <= set(kinds)
    for kind in kinds:
        data = json.loads(cli("schema", kind, cwd=tmp_path).stdout)
        assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert data["$id"] == f"urn:workmill:schema:{kind}"
        titles = [data["title"], *(d.get("title", "") for d in data.get("$defs", {}).values())]
        assert not any(re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", t) for t in titles), titles
        jsonschema.Draft202012Validator.check_schema(data)
    r = cli("schema", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "one of" in r.stderr


def test_scaffold__modes_gitignore_and_editor_schemas(cli, tmp_path):
    root = tmp_path / "p"
    assert cli("init", str(root), cwd=tmp_path).returncode == 0
    module = cli("new", "module", "--name", "M", "--category-id", "02", cwd=root)
    tenant = cli("new", "tenant", "--name", "Acme", cwd=root)
    assert module.stdout == "001\n" and re.fullmatch(r"[0-9A-Za-z]{6}\n", tenant.stdout)
    assert "created tenants/" in tenant.stderr
    t = tenant.stdout.strip()
    assert cli("maintenance", cwd=root).returncode == 0
    wo = cli("new", "work-order", "--tenant-id", t, "--module-id", "001", cwd=root).stdout.strip()
    private = [
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o044 != 0o044
    ]
    assert private == []
    ignored = (root / ".gitignore").read_text().split()
    assert {"runtime/", ".billing-state/", ".workmill/"} <= set(ignored)
    assert cli("state", "bootstrap", cwd=root).returncode == 0
    assert cli("state", "pull", cwd=root).returncode == 0  # the default folder is the ignored one
    assert (root / ".billing-state" / "pricing.csv").is_file()
    for path in (
        root / "workmill.yml",
        root / "modules" / "001" / "module.yml",
        root / "modules" / "001" / "validation.yml",
        root / "tenants" / t / "tenant.yml",
        root / "tenants" / t / "workorders" / f"{wo}.yml",
    ):
        first = path.read_text().splitlines()[0]
        m = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert m, path
        schema_file = (path.parent / m.group(1)).resolve()
        schema = json.loads(schema_file.read_text())
        jsonschema.validate(read_yaml(path).data or {}, schema)
    assert cli("validate", cwd=root).returncode == 0


# ------------------------------------------------------------------ demo


def test_demo__temp_dir_not_cwd_full_width_when_piped_deliberate_failures_said(cli, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cwd = tmp_path / "here"
    cwd.mkdir()
    r = cli("demo", cwd=cwd, env={"TMPDIR": str(scratch), "COLUMNS": ""}, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(cwd.iterdir()) == []
    (made,) = scratch.iterdir()
    assert made.name.startswith("workmill-demo-") and (made / "workmill.yml").is_file()
    assert "PARTIALLY_COMPLETED" in r.stdout  # not cut to "PARTIALLY_…" at 80 columns
    assert "103006002 SCORING_SERVICE_UNAVAILABLE" in r.stdout
    assert "deliberate" in r.stdout
    for wo in ("A3Partl1", "A4Strct1", "C2Broke1", "D1Susp01"):
        assert re.search(rf"^  {wo}: \S", r.stdout, re.M), wo
    assert f"workmill --repo {made} history" in r.stdout


# ------------------------------------------------------------------ nothing points outside


def _user_text() -> dict[str, str]:
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for p in (ROOT / "docs").rglob("*.md"):
        texts[str(p.relative_to(ROOT))] = p.read_text()
    for p in (ROOT / "examples" / "platform").rglob("*"):
        if p.is_file() and p.suffix in {".md", ".yml", ".py"}:
            texts[str(p.relative_to(ROOT))] = p.read_text()
    return texts


def test_user_facing_text__never_points_outside_the_repo(cli, tmp_path):
    outside = re.compile(r"SPEC §|\.\./shared|shared/SPEC")
    bad = [name for name, text in _user_text().items() if outside.search(text)]
    assert bad == []
    helps = []
    for name in COMMAND_MODULES:
        r = cli(name, "-h", cwd=tmp_path)
        helps.append(r.stdout)
        sub = re.findall(r"^  (\w[\w-]*)\s", r.stdout.split("Commands:")[-1], re.M)
        if "Commands:" in r.stdout:
            helps += [cli(name, s, "-h", cwd=tmp_path).stdout for s in sub]
    assert not [h for h in helps if outside.search(h)]
    assert sum("Example:" in h for h in helps) == len(helps)


def test_reference__documents_every_command_and_my_sections(cli):
    ref = (ROOT / "docs" / "reference.md").read_text()
    core = {"_repo", "_billing", "_run", "_ops", "_cache", "_module"}  # other areas: their sections
    missing = [
        name
        for name, (module, _) in COMMAND_MODULES.items()
        if module in core and not re.search(rf"(`|workmill ){name}\b", ref)
    ]
    assert missing == []
    for section in ("Files of a platform repo", "Commands", "Statuses", "Billing rules"):
        body = ref.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
        assert len(body.split()) > 150, section


# ------------------------------------------------------------------ the README, literally


def _bash_block(markdown: str, heading: str) -> str:
    """The first ```bash block after ``heading``, exactly as a reader copies it."""
    after = markdown.split(heading, 1)[1]
    return after.split("```bash\n", 1)[1].split("\n```", 1)[0] + "\n"


def _bin_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKMILL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["HOME"] = str(tmp_path)
    return env


def _bash(script: str, cwd: Path, env: dict[str, str], timeout: float = 300):
    """Run a README block with ``set -euo pipefail``: any failing line fails the test."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_readme__walkthrough_runs_as_written(tmp_path):
    script = _bash_block((ROOT / "README.md").read_text(), "## A platform of your own")
    assert "<" not in script.replace("<<", "")  # no placeholders a shell would read as redirects
    r = _bash(script, tmp_path, _bin_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ledger OK" in r.stdout and "485" in r.stdout
    out = tmp_path / "my-platform" / "out"
    assert any(p.name.endswith("-manifest.json") for p in out.iterdir())
    assert "wrote result.json" in r.stdout  # `workmill logs` printed the step's output


def test_examples_readme__run_it_yourself_runs_as_written(tmp_path):
    text = (ROOT / "examples" / "platform" / "README.md").read_text()
    script = _bash_block(text, "## Run it yourself")
    script = script.replace("/tmp/wm-demo", str(tmp_path / "wm-demo"))
    r = _bash(script, ROOT, _bin_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SCORING_SERVICE_UNAVAILABLE" in r.stdout and "ledger OK" in r.stdout


@pytest.mark.slow
def test_readme__quick_start_in_a_fresh_venv(tmp_path):
    """The Quick start, literally, in a new virtual environment and a copy of the repo."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    copy = tmp_path / "workmill"
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dest = copy / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
            dest.chmod(src.stat().st_mode)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    script = _bash_block((ROOT / "README.md").read_text(), "## Quick start")
    env = _bin_env(tmp_path)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    r = _bash(script, copy, env, timeout=3600)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    assert "deliberate" in r.stdout and " passed" in r.stdout
