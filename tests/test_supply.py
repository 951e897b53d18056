"""Module supply chain end to end: pins, smoke, secrets, promotion (docs/supply-chain.md)."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from platform_factory import EXAMPLES, T1, build_repo, prepare, read_state, work_order
from workmill.runner.logs import Masker


def _run(cli, root: Path, *extra: str, env: dict | None = None) -> dict:
    r = cli("run", "--json", *extra, cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return {row["work_order_id"]: row for row in json.loads(r.stdout)["work_orders"]}


def _code(root: Path, name: str) -> str:
    with (root / "maintenance-state" / "reason_catalog.csv").open() as fh:
        return next(r["reason_code"] for r in csv.DictReader(fh) if r["name"] == name)


def _registry(root: Path) -> dict[str, str]:
    with (root / "maintenance-state" / "ids" / "module_registry.csv").open() as fh:
        return {r["module_id"]: r["digest"] for r in csv.DictReader(fh)}


def _set_config(root: Path, text: str) -> None:
    (root / "workmill.yml").write_text("max_parallel: 1\n" + text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return build_repo(tmp_path / "repo")


# ------------------------------------------------------------------ pins


def test_pin__edited_module_is_rejected_uncharged_until_pinned(cli, repo, tmp_path):
    _set_config(repo, "require_pinned: true\n")
    prepare(cli, repo, {T1: 100})
    pinned = _registry(repo)["005"]
    assert pinned  # maintenance filled the pin at registration
    # a change outside the specs (not a maintenance input): only the pin notices it
    (repo / "modules" / "005" / "src").mkdir()
    (repo / "modules" / "005" / "src" / "helper.sh").write_text("echo unreviewed\n")
    work_order(repo, T1, "Wpin0001", [{"module_id": "005"}])

    rows = _run(cli, repo)
    assert rows["Wpin0001"]["status"] == "REJECTED"
    assert rows["Wpin0001"]["reason_code"] == _code(repo, "MODULE_NOT_PINNED")
    assert "module 005" in rows["Wpin0001"]["message"]
    tables = read_state(cli, repo, tmp_path)
    assert [t for t in tables["transactions.csv"] if t["type"] == "SPEND"] == []
    assert tables["tenants_credits.csv"][0]["balance_credits"] == "100"
    assert tables["module_runs_log.csv"] == []

    r = cli("pin", "--check", cwd=repo)
    assert r.returncode == 1 and "005  changed" in r.stdout, r.stdout + r.stderr
    r = cli("pin", "005", "--json", cwd=repo)
    assert r.returncode == 0, r.stderr
    new_pin = _registry(repo)["005"]
    assert new_pin != pinned
    assert json.loads(r.stdout)["written"] is True
    assert cli("maintenance", "--check", cwd=repo).returncode == 0  # pin recompiled it
    assert cli("pin", "--check", cwd=repo).returncode == 0

    rows = _run(cli, repo)  # the rejected work order is planned again, and now runs
    assert rows["Wpin0001"]["status"] == "COMPLETED", rows
    work_order(repo, T1, "Wpin0002", [{"module_id": "005"}])
    rows = _run(cli, repo, "--work-order-id", "Wpin0002")
    assert rows["Wpin0002"]["status"] == "COMPLETED"
    runs = read_state(cli, repo, tmp_path)["module_runs_log.csv"]
    assert [(r["module_id"], r["module_digest"]) for r in runs] == [("005", new_pin)] * 2
    r = cli("history", "--work-order-id", "Wpin0002", "--json", cwd=repo)
    assert json.loads(r.stdout)["work_orders"][0]["modules"][0]["module_digest"] == new_pin
    r = cli("history", "--work-order-id", "Wpin0002", cwd=repo, env={"COLUMNS": "200"})
    assert f"digest {new_pin[:12]}" in r.stdout, r.stdout
    r = cli("inspect", "module", "005", "--json", cwd=repo)
    assert json.loads(r.stdout)["pin"] == {"pinned": new_pin, "current": new_pin, "state": "pinned"}


def test_pin__not_required_locally_records_the_digest_that_ran(cli, repo, tmp_path):
    prepare(cli, repo, {T1: 100})
    (repo / "modules" / "001" / "notes.txt").write_text("edited after review\n")
    work_order(repo, T1, "Wpin0003", [{"module_id": "001"}])
    rows = _run(cli, repo)
    assert rows["Wpin0003"]["status"] == "COMPLETED"  # require_pinned defaults to false
    from workmill.digest import module_digest

    runs = read_state(cli, repo, tmp_path)["module_runs_log.csv"]
    assert runs[0]["module_digest"] == module_digest(repo / "modules" / "001")
    assert runs[0]["module_digest"] != _registry(repo)["001"]


def test_pin__unknown_module_is_one_clear_error(cli, repo):
    prepare(cli, repo, {})
    r = cli("pin", "0zz", cwd=repo)
    assert r.returncode == 1
    assert "0zz" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------ smoke


def _example_copy(tmp_path: Path) -> Path:
    root = tmp_path / "platform"
    shutil.copytree(
        EXAMPLES, root, ignore=shutil.ignore_patterns("runtime", ".workmill", ".billing-state")
    )
    return root


def test_smoke__example_passes_and_a_broken_module_fails_with_exit_1(cli, tmp_path):
    root = _example_copy(tmp_path)
    r = cli("smoke", "--json", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    assert {m["module_id"] for m in report["modules"]} == {
        p.name for p in (root / "modules").iterdir()
    }
    assert not (root / ".workmill" / "releases").exists()  # no billing state touched

    action = root / "modules" / "003" / "action.yml"
    action.write_text(action.read_text().replace("runs:\n", "runs:\n", 1) + "")
    text = action.read_text()
    steps_at = text.index("  steps:\n") + len("  steps:\n")
    action.write_text(
        text[:steps_at]
        + "    - shell: bash\n      run: echo broken >&2; exit 3\n"
        + text[steps_at:]
    )
    r = cli("smoke", "--json", cwd=root)
    assert r.returncode == 1
    by_id = {m["module_id"]: m for m in json.loads(r.stdout)["modules"]}
    assert by_id["003"]["status"] == "FAILED"
    assert by_id["004"]["status"] == "SKIPPED"  # depends on 003
    assert by_id["001"]["status"] == "COMPLETED"
    r = cli("smoke", "002", cwd=root)  # only 002 and what it needs
    assert r.returncode == 0, r.stdout + r.stderr
    assert "003" not in r.stdout and "001 (dep)" in r.stdout


def test_validate__required_param_without_smoke_params_is_a_warning(cli, repo):
    action = repo / "modules" / "005" / "action.yml"
    data = json.loads(action.read_text())
    data["inputs"] = {"topic": {"required": True}}
    action.write_text(json.dumps(data))
    r = cli("validate", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: modules/005/module.yml" in r.stderr and "workmill smoke" in r.stderr
    assert cli("maintenance", cwd=repo).returncode == 0  # never refused over it


# ------------------------------------------------------------------ secrets

SECRET = "s3cr3t/Val+ue=XYZ-0123456789"
SECRET_MODULE_RUN = r"""
printf 'plain %s\n' "$ACME_API_KEY"
printf '%s' "$ACME_API_KEY" | base64
printf 'user:%s' "$ACME_API_KEY" | base64
python3 -c 'import os, urllib.parse; print(urllib.parse.quote(os.environ["ACME_API_KEY"], safe=""))'
printf '%s' "$ACME_API_KEY" | sha256sum | cut -c1-64 > "$WM_OUTPUTS_DIR/x.txt"
"""
OTHER_MODULE_RUN = r"""
printf '{"n": 1, "seen": "%s"}\n' "${ACME_API_KEY:-absent}" > "$WM_OUTPUTS_DIR/data.json"
"""


def _secret_repo(repo: Path) -> None:
    spec_path = repo / "modules" / "005" / "module.yml"
    spec = json.loads(spec_path.read_text())
    spec["secrets"] = {"required": ["ACME_API_KEY"], "optional": ["ACME_REGION"]}
    spec_path.write_text(json.dumps(spec))
    for mid, run in (("005", SECRET_MODULE_RUN), ("001", OTHER_MODULE_RUN)):
        action = repo / "modules" / mid / "action.yml"
        data = json.loads(action.read_text())
        data["runs"]["steps"][0]["run"] = run
        action.write_text(json.dumps(data))


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            found += [f"{p.relative_to(root)}: {n!r}" for n in needles if n in data]
    return found


def test_secrets__reach_only_their_module_masked_and_never_on_disk(cli, repo, tmp_path):
    _secret_repo(repo)
    prepare(cli, repo, {T1: 200})
    work_order(repo, T1, "Wsec0001", [{"module_id": "001"}, {"module_id": "005"}])
    work_order(repo, T1, "Wsec0002", [{"module_id": "005"}])

    missing = _run(cli, repo, "--work-order-id", "Wsec0002")["Wsec0002"]
    assert missing["status"] == "REJECTED"
    assert missing["reason_code"] == _code(repo, "MODULE_SECRET_MISSING")
    assert "ACME_API_KEY" in missing["message"]

    rows = _run(cli, repo, "--work-order-id", "Wsec0001", env={"ACME_API_KEY": SECRET})
    assert rows["Wsec0001"]["status"] == "COMPLETED", rows
    ws = repo / "runtime" / T1 / "Wsec0001"
    # it reached its module (the output holds its hash) and not the other one
    assert (ws / "005" / "outputs" / "x.txt").read_text().strip() == hashlib.sha256(
        SECRET.encode()
    ).hexdigest()
    assert json.loads((ws / "001" / "outputs" / "data.json").read_text())["seen"] == "absent"
    log = "".join(p.read_text() for p in (ws / "005").glob("*.log"))
    log += "".join(p.read_text() for p in (ws / "005").rglob("logs/*"))
    assert "plain ***" in log, log
    forms = [
        SECRET.encode(),
        base64.b64encode(SECRET.encode()),
        base64.b64encode(SECRET.encode()).rstrip(b"="),
        quote(SECRET, safe="").encode(),
    ]
    assert _files_containing(repo, forms) == []
    assert _files_containing(repo, [base64.b64encode(b"user:" + SECRET.encode())[8:30]]) == []

    smoke = cli("smoke", "005", "--json", cwd=repo)  # no secret in the environment
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


# ------------------------------------------------------------------ masking


@given(
    secret=st.text(min_size=8, max_size=40).filter(lambda s: s.strip()),
    before=st.binary(max_size=7),
    after=st.binary(max_size=7),
)
def test_masker__base64_of_a_secret_is_masked_at_any_alignment(secret, before, after):
    masker = Masker([secret])
    raw = secret.encode()
    for encode, decode in (
        (base64.b64encode, base64.b64decode),
        (base64.urlsafe_b64encode, base64.urlsafe_b64decode),
    ):
        masked = masker.mask(encode(before + raw + after))
        assert b"***" in masked
        # no piece left between masks decodes (at any alignment) to text holding the secret
        for piece in masked.split(b"***"):
            for start in range(4):
                chunk = piece[start:].rstrip(b"=")
                chunk = chunk[: len(chunk) - len(chunk) % 4]
                assert raw not in decode(chunk)


def test_masker__url_encoded_and_lines_are_masked():
    masker = Masker(["line one\nsecond/line+x"])
    text = "a second/line+x b second%2Fline%2Bx c line one"
    assert masker.mask_text(text) == "a *** b *** c ***"


# ------------------------------------------------------------------ promotion


def _git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout


def test_promote__refuses_a_differing_pin_and_passes_after_merge(cli, repo):
    _set_config(repo, "environments: [dev, staging, main]\nrequire_pinned: true\n")
    assert cli("maintenance", cwd=repo).returncode == 0
    (repo / ".gitignore").write_text("runtime/\n.workmill/\n.billing-state/\n")
    _git(repo, "init", "-q", "-b", "dev")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "dev")
    _git(repo, "checkout", "-q", "-b", "staging")
    (repo / "modules" / "004" / "tweak.txt").write_text("hot fix on staging\n")
    assert cli("pin", "004", cwd=repo).returncode == 0  # someone re-pinned on staging
    _git(repo, "commit", "-q", "-am", "re-pin on staging")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "tweak")

    r = cli("promote", "--to", "staging", "--json", cwd=repo)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert [m["module_id"] for m in out["modules"] if m["problem"]] == ["004"]
    assert out["smoke"] is None  # refused before smoke
    assert "merge dev into staging" in r.stderr
    before = (repo / "maintenance-state" / "ids" / "module_registry.csv").read_bytes()

    _git(repo, "reset", "-q", "--hard", "dev")
    r = cli("promote", "--to", "staging", cwd=repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "smoke passed" in r.stdout
    assert (repo / "maintenance-state" / "ids" / "module_registry.csv").read_bytes() != before
    r = cli("promote", "--to", "dev", cwd=repo)
    assert r.returncode == 2 and "first environment" in r.stderr


def test_init_github__scaffolded_config_requires_pins_and_names_environments(tmp_path):
    from workmill.github import enable_github
    from workmill.repo import PlatformRepo
    from workmill.scaffold import init_repo

    init_repo(tmp_path / "p")
    enable_github(tmp_path / "p", "acme/platform", pins=[])
    config = PlatformRepo.open(tmp_path / "p").config
    assert config.require_pinned is True
    assert config.environments == ["dev", "staging", "main"]
    assert PlatformRepo.open(EXAMPLES).config.require_pinned is True  # the example shows it
    assert init_repo(tmp_path / "local").config.require_pinned is False  # local default
