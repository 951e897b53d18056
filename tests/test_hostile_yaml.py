"""Hostile YAML in work orders, tenants and modules: a clear problem, never a crash or hang."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_validate_fixtures import Platform, make_platform
from workmill.errors import SpecError
from workmill.maintenance import compile_maintenance
from workmill.validate import validate_repo

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "..", "C:\\x", "\u202e\u0000", "🙂" * 50]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = {
    "wo": ["work_order_id", "enabled", "mode", "promo_codes", "modules"],
    "tenant": ["tenant_id", "name", "status", "allow_release_consumers"],
    "module": [
        "module_id",
        "name",
        "version",
        "depends_on",
        "inputs",
        "outputs",
        "timeout_minutes",
        "cache",
    ],
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Platform:
    return make_platform(tmp_path_factory.mktemp("hostile") / "repo")


def _target(pf: Platform, kind: str) -> str:
    return {
        "wo": pf.wo(),
        "tenant": f"tenants/{pf.tenant}/tenant.yml",
        "module": "modules/002/module.yml",
    }[kind]


def _assert_clear(pf: Platform) -> None:
    problems = validate_repo(pf.fresh())
    for p in problems:
        assert p.path and p.message and "\n" not in p.path
    try:
        compile_maintenance(pf.fresh())
    except SpecError as exc:
        assert exc.problems


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_hostile_field_values__reported_not_raised(shared, kind, data):
    rel = _target(shared, kind)
    original = shared.read(rel)
    try:
        doc = yaml.safe_load(original)
        field = data.draw(st.sampled_from(FIELDS[kind]))
        doc[field] = data.draw(hostile_values)
        shared.write(rel, yaml.safe_dump(doc, allow_unicode=True))
        _assert_clear(shared)
    finally:
        shared.write(rel, original)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=st.sampled_from(sorted(FIELDS)), text=st.text(max_size=300))
def test_hostile_raw_text__reported_not_raised(shared, kind, text):
    rel = _target(shared, kind)
    original = shared.read(rel)
    try:
        shared.write(rel, text)
        problems = validate_repo(shared.fresh())
        assert problems, "garbage must not validate"
        assert all(p.path for p in problems)
    finally:
        shared.write(rel, original)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CASES = {
    "anchor bomb": BOMB,
    "deep nesting": "modules: " + "[" * 5000 + "]" * 5000 + "\n",
    "duplicate keys": "work_order_id: AAAAAAAA\nwork_order_id: BBBBBBBB\nmodules: []\n",
    "huge number": "work_order_id: 1" + "0" * 5000 + "\nmodules: []\n",
    "negative retention": "modules:\n  - {module_id: '001', reuse_output_type: cache, cache_retention_override: -5}\n",
    "python tag": "!!python/object/apply:os.system ['echo pwned']\n",
    "binary": "\x00\x01\x02 not yaml \xff",
    "absolute assets": "modules:\n  - {module_id: '001', reuse_output_type: assets, assets_folder_name: /etc}\n",
    "unicode id": "work_order_id: ＡＢＣＤＥＦＧＨ\nmodules: [{module_id: '００１'}]\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_work_order_cli__clear_error_exit_1(tmp_path, cli, case):
    pf = make_platform(tmp_path / "repo")
    pf.write(pf.wo(), CASES[case])
    r = cli("validate", cwd=pf.root, timeout=60)
    assert r.returncode == 1, (case, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert any(line.startswith(pf.wo()) for line in r.stdout.splitlines()), r.stdout
    # work orders never block maintenance
    assert cli("maintenance", cwd=pf.root).returncode == 0


@pytest.mark.parametrize("rel", ["tenant", "module", "global"])
def test_hostile_platform_files_cli__maintenance_refuses_clearly(tmp_path, cli, rel):
    pf = make_platform(tmp_path / "repo")
    path = {
        "tenant": f"tenants/{pf.tenant}/tenant.yml",
        "module": "modules/001/module.yml",
        "global": "config/global_reasons.yml",
    }[rel]
    pf.write(path, BOMB)
    for args in (["validate"], ["maintenance"], ["maintenance", "--check"]):
        r = cli(*args, cwd=pf.root, timeout=60)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert path in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_hostile_params_schema__invalid_json_reported(tmp_path, cli):
    pf = make_platform(tmp_path / "repo")
    pf.write("modules/001/schemas/params.schema.json", json.dumps({"type": 5})[:-1])
    r = cli("validate", cwd=pf.root)
    assert r.returncode == 1 and "modules/001/schemas/params.schema.json" in r.stdout


def _both_paths(pf: Platform, text: str):
    from workmill.validate import _workorders

    pf.write(pf.wo(), text)
    fast = validate_repo(pf.fresh())
    original = _workorders.fast_model
    _workorders.fast_model = lambda *_args: None  # the full line-tracking path only
    try:
        slow = validate_repo(pf.fresh())
    finally:
        _workorders.fast_model = original
    return fast, slow


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(params=hostile_values, extra=st.sampled_from(["", "enabled: yes\n", "mode: 2020-01-01\n"]))
def test_fast_path__same_verdict_as_hostile_loader(shared, params, extra):
    original = shared.read(shared.wo())
    try:
        body = {
            "work_order_id": shared.work_order,
            "modules": [{"module_id": "001", "params": params}],
        }
        fast, slow = _both_paths(shared, extra + yaml.safe_dump(body, allow_unicode=True))
        assert fast == slow
    finally:
        shared.write(shared.wo(), original)


@pytest.mark.parametrize(
    "text",
    [
        "work_order_id: {wo}\nmodules:\n  - {{module_id: '001', params: {{greeting: a, greeting: b}}}}\n",
        "work_order_id: {wo}\nmodules:\n  - {{module_id: '001', params: {{x: {{1: a, 01: b}}}}}}\n",
        "work_order_id: {wo}\nmodules:\n  - {{<<: {{module_id: '001'}}}}\n",
        "work_order_id: {wo}\nmodules: [{{module_id: '001', params: {{greeting: "
        + "[" * 40
        + "]" * 40
        + "}}}}]\n",
    ],
)
def test_fast_path__duplicates_merges_and_depth_still_refused(shared, text):
    original = shared.read(shared.wo())
    try:
        fast, slow = _both_paths(shared, text.format(wo=shared.work_order))
        assert fast == slow and fast, fast
    finally:
        shared.write(shared.wo(), original)


# plain YAML scalars whose implicit types differ between YAML 1.1 readers
TRICKY_PLAIN = [
    "yes", "No", "on", "off", "~", "null", "010", "0x1F", "0o17", "1_000", "1:30", "-.inf",
    ".NaN", "1e3", "+12", "2020-01-01", "2020-01-01 10:00:00", "=", "", "W0000101", "-", ".5",
    "0b101", "true", "False", "y", "n", "Null",
]  # fmt: skip
plain_scalar = st.one_of(st.sampled_from(TRICKY_PLAIN), st.from_regex(r"[A-Za-z0-9_.:+-]{1,8}"))


def _doc_text(keys: list[str], values: list[str], flow: bool) -> str:
    pairs = list(zip(keys, values, strict=False))
    if flow:
        return (
            "top: {"
            + ", ".join(f"{k}: {v}" for k, v in pairs)
            + "}\nlist: ["
            + ", ".join(values)
            + "]\n"
        )
    body = "".join(f"  {k}: {v}\n" for k, v in pairs)
    return "top:\n" + body + "list:\n" + "".join(f"  - {v}\n" for v in values)


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(plain_scalar, min_size=1, max_size=6),
    values=st.lists(plain_scalar, min_size=1, max_size=6),
    flow=st.booleans(),
)
def test_fast_load__same_data_as_line_tracking_loader(keys, values, flow):
    """Whatever the fast path accepts, it reads exactly as parse_yaml does."""
    from workmill.validate._fastyaml import fast_load
    from workmill.yamlio import parse_yaml

    text = _doc_text(keys, values, flow)
    try:
        slow = parse_yaml(text, "x.yml").data
    except SpecError:
        slow = None  # refused (e.g. a duplicate key): the fast path must refuse too
    ok, fast = fast_load(text)
    if slow is None:
        assert not ok, text
    elif ok:
        assert repr(fast) == repr(slow), text  # repr: nan compares unequal to itself


def test_fast_model__lines_worked_out_when_a_problem_needs_one():
    from workmill.specs import TenantSpec
    from workmill.validate._fastyaml import fast_model

    got = fast_model(b"tenant_id: T00001\n\nname: x\n", "tenants/T00001/tenant.yml", TenantSpec)
    assert got is not None
    _spec, doc = got
    assert not doc.lines  # nothing parsed for lines until asked
    assert doc.line_of(("name",)) == 3


def test_params_key__values_that_check_differently_never_share_a_key():
    from workmill.validate._workorders import params_key

    variants = [{"n": 1}, {"n": True}, {"n": 1.0}, {"n": "1"}, {"n": 0.0}, {"n": -0.0}, {"n": None}]
    keys = [params_key(v) for v in variants]
    assert len(set(keys)) == len(variants)
    assert params_key({"n": [1]}) != params_key({"n": [True]})
    assert params_key({"n": 1}) == params_key({"n": 1})
