"""validate: each check with one passing and one failing case, plus the CLI."""

from __future__ import annotations

import pytest

from test_validate_fixtures import Platform, make_platform
from workmill.validate import find_cycles, topological_order, validate_repo, validate_work_order


@pytest.fixture
def pf(tmp_path) -> Platform:
    return make_platform(tmp_path / "repo")


def problems(pf: Platform) -> list[str]:
    return [str(p) for p in validate_repo(pf.fresh())]


def only(pf: Platform, needle: str) -> str:
    found = [p for p in problems(pf) if needle in p]
    assert found, f"no problem mentions {needle!r}: {problems(pf)}"
    return found[0]


def test_validate_repo__scaffolded_repo_is_clean(pf):
    assert problems(pf) == []


def test_check_names__bad_module_folder_name(pf):
    (pf.root / "modules/ab").mkdir()
    assert "modules/ab: -: folder name 'ab' is not a module id" in only(pf, "modules/ab")


def test_check_names__tenant_ids_differing_only_in_case(pf):
    t = pf.tenant
    other = t.swapcase() if t.swapcase() != t else None
    if other is None:
        pytest.skip("all-digit tenant id")
    pf.write(f"tenants/{other}/tenant.yml", f'tenant_id: "{other}"\nname: X\n')
    assert "differ only in case" in only(pf, "differ only in case")


def test_check_names__stray_file_in_tenants(pf):
    pf.write("tenants/notes.txt", "hi")
    assert "only ID-named folders" in only(pf, "tenants/notes.txt")


def test_check_ids_match_paths__module_id_differs_from_folder(pf):
    pf.edit("modules/001/module.yml", 'module_id: "001"', 'module_id: "003"')
    p = only(pf, "does not match its folder name")
    # line 1 is the scaffold's yaml-language-server comment
    assert p.startswith("modules/001/module.yml:2: module_id:")


def test_check_ids_match_paths__work_order_id_differs_from_file(pf):
    pf.edit(pf.wo(), f"work_order_id: {pf.work_order}", "work_order_id: ZZZZZZZZ")
    assert pf.wo() in only(pf, "does not match its file name")


def test_check_depends_on__unknown_module(pf):
    pf.edit("modules/002/module.yml", 'depends_on: ["001"]', 'depends_on: ["001", "009"]')
    assert "modules/002/module.yml:6: depends_on.1: unknown module '009'" in problems(pf)


def test_check_depends_on__cycle_reported_once(pf):
    pf.edit("modules/001/module.yml", "depends_on: []", 'depends_on: ["002"]')
    cycles = [p for p in problems(pf) if "dependency cycle" in p]
    assert len(cycles) == 1 and "001 -> 002 -> 001" in cycles[0]


def test_find_cycles__acyclic_graph_has_none():
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({"a": ["b"], "b": ["a"], "c": ["c"]}) == [["a", "b"], ["c"]]


def test_topological_order__dependencies_first_then_listed_order():
    deps = {"003": ["001"], "002": [], "001": []}
    assert topological_order(["003", "002", "001"], deps) == ["002", "001", "003"]
    with pytest.raises(ValueError, match="cycle"):
        topological_order(["a", "b"], {"a": ["b"], "b": ["a"]})


def test_check_module_inputs__undeclared_output(pf):
    pf.edit("modules/002/module.yml", "name: result.json", "name: other.json")
    assert "module 001 does not declare output 'other.json'" in only(pf, "other.json")


def test_check_module_inputs__producer_not_a_dependency(pf):
    pf.edit("modules/002/module.yml", 'depends_on: ["001"]', "depends_on: []")
    assert "is not in depends_on" in only(pf, "not in depends_on")


def test_check_categories__global_reason_category_unregistered(pf):
    pf.edit("config/global_reasons.yml", "category_id: '01'", "category_id: '77'")
    assert "category 77 is not registered" in only(pf, "category 77")


def test_check_module_registry__unregistered_module(pf):
    reg = pf.read("maintenance-state/ids/module_registry.csv").splitlines()
    pf.write("maintenance-state/ids/module_registry.csv", "\n".join(reg[:2]) + "\n")
    assert "module 002 is not registered" in only(pf, "not registered in maintenance-state")


def test_check_global_reasons__platform_reason_missing(pf):
    text = pf.read("config/global_reasons.yml").replace("MODULE_TIMEOUT", "MODULE_SLOW")
    pf.write("config/global_reasons.yml", text)
    assert "missing platform reason(s) MODULE_TIMEOUT" in only(pf, "missing platform")


def test_check_actions__not_composite(pf):
    pf.edit("modules/001/action.yml", "using: composite", "using: node20")
    assert "runs.using: 'node20' is not supported" in only(pf, "node20")


def test_check_actions__uses_step_refused(pf):
    pf.edit(
        "modules/001/action.yml",
        "    - name: Produce result.json",
        "    - uses: actions/checkout@v4\n    - name: Produce result.json",
    )
    assert "cannot run locally" in only(pf, "actions/checkout")


def test_check_actions__pwsh_shell_refused(pf):
    pf.edit("modules/001/action.yml", "shell: bash", "shell: pwsh")
    assert "shell 'pwsh' is not supported locally" in only(pf, "pwsh")


def test_check_actions__inputs_pasted_into_run_script(pf):
    pf.edit(
        "modules/001/action.yml",
        'run: python3 "$GITHUB_ACTION_PATH/src/main.py"',
        'run: echo "${{ inputs.greeting }}"',
    )
    p = only(pf, "script injection")
    assert p.startswith("modules/001/action.yml:") and "env:" in p


def test_check_smoke_params__invalid_smoke_params(pf):
    pf.edit("modules/001/module.yml", "params: {greeting: hello}", "params: {greeting: 5}")
    assert "smoke.params" in only(pf, "5 is not of type 'string'")


def test_check_tenants__unknown_release_consumer(pf):
    pf.edit(
        f"tenants/{pf.tenant}/tenant.yml",
        "allow_release_consumers: []",
        "allow_release_consumers: [Zz99Zz]",
    )
    assert "unknown tenant 'Zz99Zz'" in only(pf, "Zz99Zz")


def test_work_order__omits_dependency_of_listed_module(pf):
    text = pf.read(pf.wo())
    head, _, rest = text.partition("- module_id: '001'")
    rest = rest[rest.index("- module_id") :]
    pf.write(pf.wo(), head + rest)
    assert "depends on 001, which this work order does not list" in only(pf, "depends on 001")


def test_work_order__module_listed_twice(pf):
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n"
        "  - {module_id: '001'}\n  - {module_id: '001'}\n",
    )
    assert "module 001 is listed twice" in only(pf, "listed twice")


def test_work_order__release_mode_without_tag(pf):
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n  - {{module_id: '001', reuse_output_type: release}}\n",
    )
    assert "needs release_tag" in only(pf, "release_tag")


@pytest.mark.parametrize(
    ("field", "value"),
    [("assets_folder_name", "../../etc"), ("assets_folder_name", "/etc"), ("release_tag", "../x")],
)
def test_work_order__names_that_could_leave_their_place(pf, field, value):
    mode = "assets" if field == "assets_folder_name" else "release"
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n"
        f"  - {{module_id: '001', reuse_output_type: {mode}, {field}: '{value}'}}\n",
    )
    assert pf.wo() in only(pf, field)


def test_work_order__assets_folder_symlinked_out_is_refused(pf, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    base = pf.root / f"tenants/{pf.tenant}/assets/outputs"
    base.mkdir(parents=True)
    (base / "voices").symlink_to(outside)
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n"
        "  - {module_id: '001', reuse_output_type: assets, assets_folder_name: voices}\n",
    )
    assert "leaves tenants/" in only(pf, "voices")


def test_work_order__params_fail_schema_and_unknown_module(pf):
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n"
        "  - {module_id: '001', params: {greeting: 7}}\n  - {module_id: '042'}\n",
    )
    found = problems(pf)
    assert any("modules.0.params.greeting" in p and "not of type 'string'" in p for p in found)
    assert any("unknown module '042'" in p for p in found)


def test_work_order__required_input_missing(pf):
    pf.edit("modules/001/action.yml", "required: false\n    default: hello", "required: true")
    pf.edit("modules/001/module.yml", "params: {greeting: hello}", "params: {greeting: hi}")
    pf.write(pf.wo(), f"work_order_id: {pf.work_order}\nmodules:\n  - {{module_id: '001'}}\n")
    assert "required input has no value" in only(pf, "required input")


def test_work_order__bad_file_name(pf):
    pf.write(f"tenants/{pf.tenant}/workorders/notes.yaml", "x: 1\n")
    assert "file name must be <work_order_id>.yml" in only(pf, "notes.yaml")


def test_validate_work_order__one_bad_order_alone(pf):
    assert validate_work_order(pf.fresh(), pf.tenant, pf.wo()) == []
    pf.write(pf.wo(), f"work_order_id: {pf.work_order}\nmodules: []\n")
    found = validate_work_order(pf.fresh(), pf.tenant, pf.wo())
    assert found and found[0].path == pf.wo() and found[0].field == "modules"


def test_validate_work_order__unknown_tenant(pf):
    found = validate_work_order(pf.fresh(), "Nope00", pf.wo())
    assert "unknown tenant" in found[0].message


def test_validate_cli__clean_repo_prints_summary(pf, cli):
    r = cli("validate", cwd=pf.root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok: 2 modules, 1 tenants, 1 work orders"


def test_validate_cli__prints_every_problem_and_exits_1(pf, cli):
    pf.edit("modules/001/action.yml", "shell: bash", "shell: pwsh")
    (pf.root / "modules/ab").mkdir()
    r = cli("validate", cwd=pf.root)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert any(line.startswith("modules/001/action.yml:") and "pwsh" in line for line in lines)
    assert any(line.startswith("modules/ab:") for line in lines)
    assert "Traceback" not in r.stderr


def test_validate_cli__json(pf, cli):
    import json

    pf.edit("modules/001/action.yml", "shell: bash", "shell: pwsh")
    r = cli("validate", "--json", cwd=pf.root)
    data = json.loads(r.stdout)
    assert r.returncode == 1 and data["ok"] is False
    assert data["problems"][0]["path"] == "modules/001/action.yml"


def test_validate_repo__parallel_path_finds_the_same_problems(pf, monkeypatch):
    import workmill.validate as v
    from workmill.validate import _snapshot

    pf.edit("modules/001/action.yml", "shell: bash", "shell: pwsh")
    pf.write(pf.wo(), f"work_order_id: {pf.work_order}\nmodules: [{{module_id: '042'}}]\n")
    sequential = problems(pf)
    monkeypatch.setattr(v, "PARALLEL_THRESHOLD", 1)
    monkeypatch.setattr(_snapshot, "PARALLEL_LOAD", 1)
    assert problems(pf) == sequential and len(sequential) >= 2


def test_validate_work_order__reads_only_the_modules_it_names(pf):
    pf.write("modules/003/module.yml", "module_id: [unclosed\n")
    repo = pf.fresh()
    assert validate_work_order(repo, pf.tenant, pf.wo()) == []
    # the specs it read are the ones the run uses: the files are not read a second time
    (pf.root / "modules/002/module.yml").unlink()
    assert repo.module("002").module_id == "002"


def test_validate_work_order__a_named_broken_module_is_reported(pf):
    pf.write("modules/003/module.yml", "module_id: [unclosed\n")
    pf.write(pf.wo(), f"work_order_id: {pf.work_order}\nmodules:\n  - {{module_id: '003'}}\n")
    found = validate_work_order(pf.fresh(), pf.tenant, pf.wo())
    assert [p.field for p in found] == ["modules.0.module_id"]
    assert "has errors of its own" in found[0].message


def test_validate_work_order__unknown_module(pf):
    pf.write(
        pf.wo(),
        f"work_order_id: {pf.work_order}\nmodules:\n  - {{module_id: '009'}}\n",
    )
    found = validate_work_order(pf.fresh(), pf.tenant, pf.wo())
    assert "unknown module '009'" in found[0].message
