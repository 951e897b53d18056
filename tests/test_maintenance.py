"""maintenance: determinism, the reason allocator, admin values, --check, staleness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_validate_fixtures import Platform, make_platform
from workmill.errors import StaleMaintenance, ValidationFailed
from workmill.maintenance import (
    ReasonDef,
    allocate,
    check_fresh,
    compile_maintenance,
    run_maintenance,
)
from workmill.reasons import ReasonCatalog
from workmill.tables import parse_table

MS = "maintenance-state"


@pytest.fixture
def pf(tmp_path) -> Platform:
    return make_platform(tmp_path / "repo")


def table(pf: Platform, name: str) -> list[dict[str, str]]:
    return parse_table(pf.path(f"{MS}/{name}").read_bytes(), name)[1]


def snapshot_bytes(pf: Platform) -> dict[str, bytes]:
    return {
        p.relative_to(pf.root).as_posix(): p.read_bytes()
        for p in sorted((pf.root / MS).rglob("*.csv"))
    }


def test_run_maintenance__second_run_changes_no_byte(pf):
    before = snapshot_bytes(pf)
    result = run_maintenance(pf.fresh())
    assert result.changed == []
    assert snapshot_bytes(pf) == before
    assert compile_maintenance(pf.fresh()) == {
        k.removeprefix(f"{MS}/"): v for k, v in before.items()
    }


def test_maintenance_cli__other_clock_same_bytes(pf, cli):
    pf.edit("modules/001/module.yml", 'version: "0.1.0"', 'version: "0.2.0"')
    r1 = cli("maintenance", cwd=pf.root, env={"WORKMILL_NOW": "2020-01-01T00:00:00Z"})
    assert r1.returncode == 0, r1.stderr
    first = snapshot_bytes(pf)
    for name in first:
        pf.path(name).unlink()
    pf.write(f"{MS}/ids/reason_registry.csv", first[f"{MS}/ids/reason_registry.csv"].decode())
    pf.write(f"{MS}/ids/module_registry.csv", first[f"{MS}/ids/module_registry.csv"].decode())
    pf.write(f"{MS}/ids/category_registry.csv", first[f"{MS}/ids/category_registry.csv"].decode())
    r2 = cli("maintenance", cwd=pf.root, env={"WORKMILL_NOW": "2031-06-30T12:00:00Z"})
    assert r2.returncode == 0, r2.stderr
    assert snapshot_bytes(pf) == first
    assert all(b"\r" not in v for v in first.values())


def test_allocator__deleted_key_code_never_reused(pf):
    codes = {
        r["reason_key"]: r["reason_code"]
        for r in table(pf, "reason_catalog.csv")
        if r["module_id"] == "001"
    }
    assert codes == {"E01": "102001001"}
    pf.edit("modules/001/validation.yml", "key: E01", "key: E03")
    run_maintenance(pf.fresh())
    rows = {r["reason_code"]: r for r in table(pf, "reason_catalog.csv") if r["module_id"] == "001"}
    assert rows["102001001"]["status"] == "retired" and rows["102001001"]["reason_key"] == "E01"
    assert rows["102001002"]["reason_key"] == "E03" and rows["102001002"]["status"] == "active"
    # the old key coming back gets its own code again, not a new one
    pf.edit("modules/001/validation.yml", "key: E03", "key: E01")
    run_maintenance(pf.fresh())
    rows = {r["reason_code"]: r for r in table(pf, "reason_catalog.csv") if r["module_id"] == "001"}
    assert rows["102001001"]["status"] == "active"
    assert rows["102001002"]["status"] == "retired"


def test_allocator__global_codes_use_their_category():
    defs = [ReasonDef("global", "01", "000", "P01", "A_B", "", True, True)]
    rows, codes, problems = allocate([], defs, "reg")
    assert codes[defs[0]] == "001000001" and not problems and rows[0]["status"] == "active"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sets(st.sampled_from(["E01", "E02", "E03", "E04", "X99"])), min_size=1, max_size=8)
)
def test_allocator__codes_are_stable_and_never_shared(rounds):
    registry: list[dict[str, str]] = []
    owner: dict[str, str] = {}
    for keys in rounds:
        defs = [ReasonDef("module", "04", "007", k, "N_" + k, "", True, True) for k in sorted(keys)]
        registry, codes, problems = allocate(registry, defs, "reg")
        assert not problems
        for d, code in codes.items():
            assert owner.setdefault(code, d.key) == d.key  # a code belongs to one key forever
        active = {r["reason_key"] for r in registry if r["status"] == "active"}
        assert active == keys
    assert len({r["reason_code"] for r in registry}) == len(registry)


def test_admin_values__policy_and_artifacts_preserved(pf):
    text = pf.read(f"{MS}/reason_policy.csv").replace(
        "102001001,true,true,", "102001001,false,false,downgraded by ops"
    )
    pf.write(f"{MS}/reason_policy.csv", text)
    pf.edit(f"{MS}/module_artifacts_policy.csv", "002,true,", "002,false,legal hold")
    pf.edit("modules/002/module.yml", 'version: "0.1.0"', 'version: "0.3.0"')
    run_maintenance(pf.fresh())
    policy = {r["reason_code"]: r for r in table(pf, "reason_policy.csv")}
    assert policy["102001001"] == {
        "reason_code": "102001001",
        "fail": "false",
        "refundable": "false",
        "note": "downgraded by ops",
    }
    arts = {r["module_id"]: r for r in table(pf, "module_artifacts_policy.csv")}
    assert arts["002"]["artifacts_enabled"] == "false" and arts["002"]["note"] == "legal hold"
    catalog = ReasonCatalog.load(pf.root / MS)
    assert catalog.by_code["102001001"].fail is False
    assert catalog.global_code("MODULE_TIMEOUT").startswith("001000")


def test_admin_values__malformed_policy_is_refused_not_overwritten(pf):
    pf.edit(f"{MS}/reason_policy.csv", "102001001,true,true,", "102001001,maybe,true,")
    pf.edit("modules/002/module.yml", 'version: "0.1.0"', 'version: "0.3.0"')
    with pytest.raises(ValidationFailed, match="expected true or false"):
        run_maintenance(pf.fresh())
    assert "maybe" in pf.read(f"{MS}/reason_policy.csv")


def test_vanished_module__registry_and_reasons_retired(pf):
    import shutil

    pf.write(pf.wo(), f"work_order_id: {pf.work_order}\nmodules:\n  - {{module_id: '001'}}\n")
    shutil.rmtree(pf.root / "modules/002")
    run_maintenance(pf.fresh())
    reg = {r["module_id"]: r for r in table(pf, "ids/module_registry.csv")}
    assert reg["002"]["status"] == "retired" and reg["001"]["status"] == "active"
    cat = [r for r in table(pf, "reason_catalog.csv") if r["module_id"] == "002"]
    assert cat and all(r["status"] == "retired" for r in cat)


def test_indexes__dependencies_requirements_relationships(pf):
    deps = {r["module_id"]: r for r in table(pf, "module_dependency_index.csv")}
    assert deps["002"]["direct_dependencies"] == "001"
    assert deps["002"]["topological_rank"] == "1" and deps["001"]["topological_rank"] == "0"
    req = table(pf, "module_requirements_index.csv")
    assert {
        "module_id": "002",
        "kind": "input",
        "name": "result.json",
        "format": "json",
        "producer_module_id": "001",
        "required": "true",
        "default": "",
    } in req
    other = pf.fresh()
    from workmill.scaffold import new_tenant

    t2 = new_tenant(other, "Beta")
    pf.edit(
        f"tenants/{pf.tenant}/tenant.yml",
        "allow_release_consumers: []",
        f"allow_release_consumers: [{t2}]",
    )
    run_maintenance(pf.fresh())
    assert table(pf, "tenant_relationships.csv") == [
        {"source_tenant_id": t2, "target_tenant_id": pf.tenant}
    ]


def test_compile__invalid_module_refused_but_invalid_work_order_does_not_block(pf, cli):
    pf.write(pf.wo(), "work_order_id: [not, valid]\n")
    r = cli("maintenance", cwd=pf.root)
    assert r.returncode == 0, r.stderr
    pf.edit("modules/001/action.yml", "shell: bash", "shell: pwsh")
    pf.edit("modules/002/module.yml", 'depends_on: ["001"]', 'depends_on: ["001", "123"]')
    before = snapshot_bytes(pf)
    r = cli("maintenance", cwd=pf.root)
    assert r.returncode == 1
    assert "pwsh" in r.stderr and "unknown module '123'" in r.stderr
    assert "Traceback" not in r.stderr
    assert snapshot_bytes(pf) == before


def test_maintenance_check__names_drift_and_writes_nothing(pf, cli):
    r = cli("maintenance", "--check", cwd=pf.root)
    assert r.returncode == 0 and "up to date" in r.stdout
    pf.edit(
        "modules/002/module.yml", "outputs:\n", "outputs:\n  - {name: extra.csv, format: csv}\n"
    )
    before = snapshot_bytes(pf)
    r = cli("maintenance", "--check", cwd=pf.root)
    assert r.returncode == 1
    assert "drift: maintenance-state/module_requirements_index.csv" in r.stdout
    assert "drift: maintenance-state/maintenance_manifest.csv" in r.stdout
    assert snapshot_bytes(pf) == before


def test_check_fresh__current_state_passes(pf):
    check_fresh(pf.fresh())


def test_check_fresh__changed_module_is_stale(pf):
    pf.edit("modules/002/module.yml", "timeout_minutes: 10", "timeout_minutes: 5")
    with pytest.raises(StaleMaintenance) as exc:
        check_fresh(pf.fresh())
    assert str(exc.value) == (
        "maintenance-state is stale (modules/002/module.yml changed); run `workmill maintenance`"
    )


def test_check_fresh__new_tenant_folder_and_hand_edited_index_are_stale(pf):
    (pf.root / "tenants/Zz11Yy").mkdir()
    with pytest.raises(StaleMaintenance, match="tenants/Zz11Yy/ added"):
        check_fresh(pf.fresh())
    (pf.root / "tenants/Zz11Yy").rmdir()
    pf.edit(f"{MS}/module_dependency_index.csv", "002,001", "002,")
    with pytest.raises(StaleMaintenance, match="differs from what maintenance wrote"):
        check_fresh(pf.fresh())


def test_check_fresh__admin_policy_edit_is_not_stale(pf):
    pf.edit(f"{MS}/reason_policy.csv", "102001001,true,true,", "102001001,false,true,")
    check_fresh(pf.fresh())


def test_check_fresh__never_compiled(tmp_path):
    from workmill.repo import PlatformRepo

    with pytest.raises(StaleMaintenance, match=r"maintenance_manifest\.csv is missing"):
        check_fresh(PlatformRepo.open(tmp_path))


def test_reason_catalog__retired_key_is_unknown_to_modules(pf):
    pf.edit("modules/001/validation.yml", "key: E01", "key: E03")
    run_maintenance(pf.fresh())
    catalog = ReasonCatalog.load(pf.root / MS)
    assert catalog.resolve_module_reason("001", "E01") is None
    assert catalog.resolve_module_reason("001", "102001001") is None
    assert catalog.resolve_module_reason("001", "E03").code == "102001002"
    assert catalog.get("102001001").status == "retired"
