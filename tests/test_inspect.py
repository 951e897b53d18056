"""inspect: run order, params after defaults, reason codes, artifact gates."""

from __future__ import annotations

import json

import pytest

from test_validate_fixtures import Platform, make_platform
from workmill.errors import NotFound
from workmill.inspection import inspect_module, inspect_work_order
from workmill.maintenance import run_maintenance


@pytest.fixture
def pf(tmp_path) -> Platform:
    return make_platform(tmp_path / "repo")


def test_inspect_module__run_order_params_reasons_gates(pf):
    view = inspect_module(pf.fresh(), "002")
    assert view["run_order"] == ["001", "002"]
    assert view["params"] == {"ok": True, "values": {"greeting": "hello"}, "problems": []}
    assert [r["code"] for r in view["reason_codes"]] == ["104002001"]
    assert view["artifacts"]["eligible"] is True
    assert view["category_id"] == "04"


def test_inspect_module__policy_disables_artifacts(pf):
    pf.edit("maintenance-state/module_artifacts_policy.csv", "002,true,", "002,false,")
    view = inspect_module(pf.fresh(), "002")
    assert view["artifacts"]["module_supports"] is True
    assert view["artifacts"]["policy_enabled"] is False and view["artifacts"]["eligible"] is False


def test_inspect_work_order__purchase_not_eligible_is_flagged(pf):
    pf.edit(
        "modules/001/module.yml",
        "supports_downloadable_artifacts: true",
        "supports_downloadable_artifacts: false",
    )
    pf.edit(pf.wo(), "purchase_release_artifacts: false", "purchase_release_artifacts: true")
    run_maintenance(pf.fresh())
    view = inspect_work_order(pf.fresh(), pf.work_order)
    first = view["modules"][0]
    assert first["module_id"] == "001" and first["artifacts"]["published"] is False
    assert "ARTIFACTS_NOT_ELIGIBLE" in first["artifacts"]["outcome"]
    assert view["run_order"] == ["001", "002"] and view["problems"] == []


def test_inspect_work_order__unknown_id(pf):
    with pytest.raises(NotFound):
        inspect_work_order(pf.fresh(), "Nope0000")


def test_inspect_cli__json_and_text(pf, cli):
    r = cli("inspect", "work-order", pf.work_order, "--json", cwd=pf.root)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["tenant_id"] == pf.tenant and data["modules"][1]["cache"]["retention_days"] == 30
    r = cli("inspect", "module", "001", cwd=pf.root)
    assert r.returncode == 0 and "run_order: 001" in r.stdout
    r = cli("inspect", "module", "999", cwd=pf.root)
    assert r.returncode == 1 and "not found" in r.stderr
