"""init / new: valid skeletons with fresh IDs, end to end through the CLI."""

from __future__ import annotations

import yaml

from workmill import ids
from workmill.billing_tables import COLUMNS
from workmill.repo import PlatformRepo
from workmill.scaffold import init_repo, new_module, new_tenant, new_work_order
from workmill.tables import parse_table
from workmill.validate import REQUIRED_GLOBAL_REASONS


def test_init_repo__writes_every_file(tmp_path):
    root = tmp_path / "p"
    init_repo(root)
    reasons = yaml.safe_load((root / "config/global_reasons.yml").read_text())["reasons"]
    assert {r["name"] for r in reasons} >= set(REQUIRED_GLOBAL_REASONS)
    assert all(r["fail"] is True and r["refundable"] is True for r in reasons)
    assert all(ids.is_valid(ids.IdKind.REASON_KEY, r["key"]) for r in reasons)
    for table, columns in COLUMNS.items():
        header, _rows = parse_table(
            (root / "releases/billing-state-v1" / table).read_bytes(), table
        )
        assert tuple(header) == columns
    _, methods = parse_table(
        (root / "releases/billing-state-v1/topup_methods.csv").read_bytes(), "t"
    )
    assert methods == [{"topup_method_id": "AD", "name": "admin", "active": "true"}]
    assert "runtime/" in (root / ".gitignore").read_text()
    assert ".billing-state/" in (root / ".gitignore").read_text()
    assert (root / "README.md").is_file() and (root / "workmill.yml").is_file()
    _, cats = parse_table((root / "maintenance-state/ids/category_registry.csv").read_bytes(), "c")
    assert {
        "category_id": "01",
        "name": "Platform",
        "description": "workmill's own reasons",
    } in cats
    assert (root / "maintenance-state/reason_catalog.csv").is_file()
    assert PlatformRepo.open(root).config.store == "local"  # all-comment workmill.yml


def test_init_cli__refuses_existing_platform_repo(tmp_path, cli):
    r = cli("init", "p", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (tmp_path / "p/workmill.yml").write_text("store: local\n")
    r = cli("init", "p", cwd=tmp_path)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert (tmp_path / "p/workmill.yml").read_text() == "store: local\n"


def test_new_module__next_free_number_and_registered(tmp_path):
    repo = init_repo(tmp_path / "p")
    assert new_module(repo, "A", "04") == "001"
    assert new_module(repo, "B", "04") == "002"
    _, rows = parse_table(
        (tmp_path / "p/maintenance-state/ids/module_registry.csv").read_bytes(), "r"
    )
    assert [(r["module_id"], r["category_id"], r["status"]) for r in rows] == [
        ("001", "04", "active"),
        ("002", "04", "active"),
    ]
    assert all(len(r["digest"]) == 64 for r in rows)


def test_new_module__random_id_is_base62_and_retired_numbers_stay_taken(tmp_path):
    repo = init_repo(tmp_path / "p")
    reg = tmp_path / "p/maintenance-state/ids/module_registry.csv"
    reg.write_text(reg.read_text() + "001,04,Old,retired,\n")
    assert new_module(repo, "A", "04") == "002"
    rid = new_module(repo, "R", "04", random=True)
    assert ids.is_valid(ids.IdKind.MODULE, rid) and rid.lower() not in {"001", "002"}


def test_new_module_cli__unregistered_category(tmp_path, cli):
    init_repo(tmp_path / "p")
    r = cli("new", "module", "--name", "X", "--category-id", "42", cwd=tmp_path / "p")
    assert r.returncode == 1 and "category 42 is not registered" in r.stderr
    assert not (tmp_path / "p/modules/001").exists()


def test_new_work_order__adds_missing_dependencies_first(tmp_path):
    repo = init_repo(tmp_path / "p")
    new_module(repo, "A", "04")
    new_module(repo, "B", "04")
    m2 = tmp_path / "p/modules/002/module.yml"
    m2.write_text(m2.read_text().replace("depends_on: []", 'depends_on: ["001"]'))
    t = new_tenant(repo, "T")
    wo = new_work_order(PlatformRepo.open(repo.root), t, ["002"])
    spec = PlatformRepo.open(repo.root).work_order(t, wo)
    assert spec.module_ids == ["001", "002"]
    assert ids.is_valid(ids.IdKind.WORK_ORDER, wo) and ids.is_valid(ids.IdKind.TENANT, t)


def test_scaffold_cli__init_new_maintenance_validate_passes(tmp_path, cli):
    assert cli("init", "p", cwd=tmp_path).returncode == 0
    root = tmp_path / "p"
    r = cli("new", "module", "--name", "Ingest", "--category-id", "02", cwd=root)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "001"
    tenant = cli("new", "tenant", "--name", "Acme", cwd=root).stdout.splitlines()[-1]
    r = cli("new", "work-order", "--tenant-id", tenant, "--module-id", "001", cwd=root)
    assert r.returncode == 0, r.stderr
    assert cli("maintenance", cwd=root).returncode == 0
    r = cli("validate", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "ok: 1 modules, 1 tenants, 1 work orders"
    assert cli("maintenance", "--check", cwd=root).returncode == 0


def test_new_work_order_cli__unknown_tenant(tmp_path, cli):
    init_repo(tmp_path / "p")
    r = cli("new", "work-order", "--tenant-id", "Nope00", "--module-id", "001", cwd=tmp_path / "p")
    assert r.returncode == 1 and "tenant 'Nope00' not found" in r.stderr


def test_schema_cli__every_kind_and_unknown(tmp_path, cli):
    import json

    for kind in ("module", "validation", "tenant", "work-order", "global-reasons"):
        r = cli("schema", kind, cwd=tmp_path)
        assert r.returncode == 0 and json.loads(r.stdout)["type"] == "object"
    r = cli("schema", "nope", cwd=tmp_path)
    assert r.returncode == 2 and "unknown schema kind" in r.stderr


def test_repo_commands__help_has_example(tmp_path, cli):
    for args in (
        ["init"],
        ["new", "module"],
        ["new", "tenant"],
        ["new", "work-order"],
        ["validate"],
        ["maintenance"],
        ["schema"],
        ["inspect", "module"],
        ["inspect", "work-order"],
    ):
        r = cli(*args, "-h", cwd=tmp_path)
        assert r.returncode == 0 and "Example:" in r.stdout, args
