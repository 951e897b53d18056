"""Fuzzing: hostile work orders, tenants, module specs, action expressions and CSV edits.

Every case must end in success or a clear error — a ``WorkmillError`` from the
library, or exit 1 with ``error:`` lines (no traceback) from the CLI — and never
hang. Most cases run in-process (the CLI's ``main([...])`` or the parsers
directly); a few go through a real subprocess with a timeout. The CI subset is
a few hundred cases; ``-m slow`` runs more than 10,000.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import cli_run, inprocess, read_csv, require_slow

from platform_factory import T1, T2, T3, T4, build_repo, prepare, work_order
from workmill import billing_tables as bt
from workmill.errors import WorkmillError
from workmill.runner.evaluate import Contexts, Status, evaluate
from workmill.runner.expressions import parse_condition, parse_template
from workmill.runner.interpreter import ActionRefused, plan_action
from workmill.specs import ActionSpec, ModuleSpec, TenantSpec, ValidationSpec, load_spec

FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
SLOW = settings(FAST, max_examples=2500)  # x 4 kinds: 10,000 cases under -m slow
CHEAP = settings(FAST, max_examples=150)  # parsers only: microseconds a case
COSTLY = settings(FAST, max_examples=30)  # a pull + push + verify per case

# ---------------------------------------------------------------- strategies

weird_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["", " ", "../../etc/passwd", "/etc/passwd", "..", "a/../../b", "\x00", "\u202e", "🙂" * 40]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    weird_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
base62 = st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=8)
module_ids = st.one_of(st.sampled_from(["001", "002", "003", "004", "005", "006", "999"]), scalars)


def _maybe(key: str, strat) -> st.SearchStrategy[dict]:
    return st.one_of(st.just({}), strat.map(lambda v: {key: v}))


@st.composite
def wo_module(draw) -> dict:
    m = {"module_id": draw(module_ids)}
    reuse = draw(st.sampled_from(["new", "cache", "release", "assets", "bogus", None]))
    if reuse is not None:
        m["reuse_output_type"] = reuse
    m |= draw(_maybe("params", st.one_of(st.dictionaries(st.sampled_from(["n", "fail", "secs", "x"]), scalars, max_size=3), values)))  # fmt: skip
    m |= draw(_maybe("purchase_release_artifacts", st.one_of(st.booleans(), scalars)))
    m |= draw(_maybe("cache_retention_override", st.one_of(st.integers(-5, 10**6), scalars)))
    m |= draw(
        _maybe(
            "release_tag",
            st.one_of(st.just(f"wo-{T1}-A1aaaaaa"), st.just(f"wo-{T2}-ZZzzZZzz"), weird_text),
        )
    )
    m |= draw(_maybe("assets_folder_name", st.one_of(st.just("good-v1"), weird_text)))
    if draw(st.integers(0, 9)) == 0:
        m[draw(st.text(max_size=6))] = draw(scalars)
    return m


@st.composite
def work_orders(draw) -> tuple[str, str, dict]:
    tenant = draw(st.sampled_from([T1, T2, T3, T4]))
    wo_id = draw(base62)
    doc: dict = {"work_order_id": draw(st.one_of(st.just(wo_id), st.just(wo_id), scalars))}
    doc["modules"] = draw(st.one_of(st.lists(wo_module(), max_size=4), values))
    doc |= draw(_maybe("mode", st.one_of(st.sampled_from(["STRICT", "PARTIAL_ALLOWED"]), scalars)))
    doc |= draw(_maybe("enabled", st.one_of(st.booleans(), scalars)))
    doc |= draw(
        _maybe(
            "promo_codes",
            st.one_of(st.lists(st.sampled_from(["P10", "F5", "OLD", "NOPE"]), max_size=3), values),
        )
    )
    return tenant, wo_id, doc


# ---------------------------------------------------------------- helpers


def assert_clear_cli(code: int, out: str, err: str, what: object) -> None:
    """Success, or exit 1 with every stderr line a one-line error; never a traceback."""
    assert "Traceback" not in out + err, (what, err)
    assert code in (0, 1), (what, code, err)
    if code == 1:
        lines = [x for x in err.splitlines() if x.strip()]
        assert lines, (what, "exit 1 without a message")
        # one line per problem: `error: ...`, or a problem indented under its error line
        assert lines[0].startswith(("error:", "violation:")), (what, err)
        assert all(x.startswith(("error:", "violation:", "  ")) for x in lines), (what, err)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = build_repo(tmp_path_factory.mktemp("fuzz") / "repo")
    d = root / "tenants" / T1 / "assets" / "outputs" / "good-v1"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text('{"module_id": "001", "files": []}')
    work_order(root, T1, "Seed0000", [{"module_id": "001"}, {"module_id": "002"}])
    prepare(cli_run, root, {T1: 500, T2: 50})
    assert cli_run("run", cwd=root).returncode == 0
    return root


# ---------------------------------------------------------------- work orders


def _work_order_case(repo: Path, case: tuple[str, str, dict]) -> None:
    tenant, wo_id, doc = case
    path = repo / "tenants" / tenant / "workorders" / f"{wo_id}.yml"
    text = json.dumps(doc, default=str, allow_nan=True)
    path.write_text(text)
    try:
        code, out, err = inprocess(
            "--repo", str(repo), "run", "--dry-run", "--json", "--work-order-id", wo_id
        )
    finally:
        path.unlink()
    assert_clear_cli(code, out, err, text)
    if code == 0:
        rows = json.loads(out)["work_orders"]
        assert [r["work_order_id"] for r in rows] == [wo_id]
        assert rows[0]["status"] in {"PLANNED", "REJECTED", "DISABLED", "INVALID"}, rows
        if rows[0]["status"] == "PLANNED":
            assert isinstance(rows[0]["spend_credits"], int) and rows[0]["spend_credits"] >= 0


@FAST
@given(case=work_orders())
def test_fuzz__work_orders_dry_run_clear_outcome(repo, case):
    _work_order_case(repo, case)


@pytest.mark.slow
@SLOW
@given(case=work_orders())
def test_fuzz__work_orders_dry_run_slow(repo, case, pytestconfig):
    require_slow(pytestconfig)
    _work_order_case(repo, case)


# ---------------------------------------------------------------- tenant/module specs

SPEC_KINDS = {
    "tenant": (TenantSpec, ["tenant_id", "name", "status", "allow_release_consumers", "extra"]),
    "module": (
        ModuleSpec,
        [
            "module_id",
            "name",
            "version",
            "depends_on",
            "inputs",
            "outputs",
            "timeout_minutes",
            "cache",
            "capabilities",
            "smoke",
            "tier",
            "extra",
        ],
    ),
    "validation": (ValidationSpec, ["reasons", "extra"]),
}
VALID = {
    "tenant": {"tenant_id": T1, "name": "x", "status": "active"},
    "module": {
        "module_id": "001",
        "name": "x",
        "version": "1.0.0",
        "outputs": [{"name": "a.txt", "format": "text"}],
    },
    "validation": {"reasons": [{"key": "E01", "name": "X", "fail": True, "refundable": True}]},
}


def _spec_case(tmp: Path, kind: str, edits: list[tuple[str, object]]) -> None:
    model, _ = SPEC_KINDS[kind]
    doc = dict(VALID[kind])
    for k, v in edits:
        doc[k] = v
    path = tmp / f"{kind}.yml"
    path.write_text(json.dumps(doc, default=str, allow_nan=True))
    try:
        load_spec(path, model)
    except WorkmillError as exc:
        assert str(exc).strip() and str(path) in str(exc)


@st.composite
def spec_edits(draw) -> tuple[str, list]:
    kind = draw(st.sampled_from(sorted(SPEC_KINDS)))
    fields = SPEC_KINDS[kind][1]
    return kind, draw(st.lists(st.tuples(st.sampled_from(fields), values), max_size=3))


@CHEAP
@given(case=spec_edits())
def test_fuzz__tenant_and_module_specs_load_or_refuse(tmp_path, case):
    _spec_case(tmp_path, *case)


@pytest.mark.slow
@SLOW
@given(case=spec_edits())
def test_fuzz__tenant_and_module_specs_slow(tmp_path, case, pytestconfig):
    require_slow(pytestconfig)
    _spec_case(tmp_path, *case)


# ---------------------------------------------------------------- action expressions

atoms = st.one_of(
    st.sampled_from(
        ["inputs.n", "inputs['n']", "env.A", "steps.s1.outputs.x", "github.action_path",
         "runner.temp", "true", "false", "null", "1", "-2.5", "0x1F", "'str'", "'it''s'",
         "success()", "failure()", "always()", "cancelled()", "contains('ab', 'a')",
         "startsWith(inputs.n, 'x')", "format('{0}-{1}', 1, 2)", "toJSON(inputs)",
         "fromJSON('[1,2]')[0]", "join(fromJSON('[1,2]'), ',')", "hashFiles('x')",
         "inputs.*", "nosuch.ctx", "nosuch()", "format('{', 1)", "fromJSON('{')"]
    ),
    st.text(alphabet="()[]!=<>&|.'\"{}$ abc01*,", max_size=12),
)  # fmt: skip
expressions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"]), inner).map(" ".join),
        inner.map(lambda e: f"!({e})"),
        inner.map(lambda e: f"({e})"),
    ),
    max_leaves=6,
)  # fmt: skip
CONTEXT_VALUES = st.fixed_dictionaries(
    {
        "inputs": st.dictionaries(st.sampled_from(["n", "x"]), values, max_size=2),
        "env": st.dictionaries(st.sampled_from(["A", "B"]), values, max_size=2),
        "steps": st.just({"s1": {"outputs": {"x": "1"}}}),
        "github": st.just({"action_path": "/tmp/a"}),
    }
)


def _expression_case(expr: str, wrap: bool, ctx_values: dict, failed: bool) -> None:
    ctx = Contexts(values=ctx_values, status=Status(failed=failed))
    try:
        node = parse_condition("${{ " + expr + " }}" if wrap else expr)
        evaluate(node, ctx)
        for seg in parse_template(f"pre ${{{{ {expr} }}}} post"):
            if seg.expr is not None:
                evaluate(seg.expr, ctx)
    except WorkmillError as exc:
        assert str(exc).strip()
    action = {
        "name": "fuzz",
        "runs": {
            "using": "composite",
            "steps": [
                {
                    "id": "s1",
                    "shell": "bash",
                    "if": expr,
                    "env": {"V": "${{ " + expr + " }}"},
                    "run": 'echo "$V" ${{ inputs.n }}',
                }
            ],
        },
    }
    try:
        plan_action(ActionSpec.model_validate(action))
    except ActionRefused as exc:
        assert exc.problems and all(p.strip() for p in exc.problems)


@CHEAP
@given(expr=expressions, wrap=st.booleans(), ctx=CONTEXT_VALUES, failed=st.booleans())
def test_fuzz__action_expressions_parse_evaluate_or_refuse(expr, wrap, ctx, failed):
    _expression_case(expr, wrap, ctx, failed)


@pytest.mark.slow
@SLOW
@given(expr=expressions, wrap=st.booleans(), ctx=CONTEXT_VALUES, failed=st.booleans())
def test_fuzz__action_expressions_slow(expr, wrap, ctx, failed, pytestconfig):
    require_slow(pytestconfig)
    _expression_case(expr, wrap, ctx, failed)


# ---------------------------------------------------------------- CSV edits + state push

EDITED = [bt.PRICING, bt.PROMOTIONS, bt.CACHE_INDEX, bt.TRANSACTIONS]
cells = st.one_of(
    st.sampled_from(["", "-1", "0", "1", "10", "99999999999999999999", "true", "false", "x",
                     "2026-01-01T00:00:00Z", "nope", "P10", "001", "AD", T1, "TOPUP", "SPEND",
                     "PERCENT", "FIXED", "1.5", "=cmd()", "a,b", 'q"q', "\n"]),
    st.text(max_size=8),
)  # fmt: skip
edits = st.lists(
    st.tuples(
        st.sampled_from(EDITED),
        st.sampled_from(["cell", "append", "drop", "dup", "header", "garbage"]),
        st.integers(0, 50),
        st.integers(0, 20),
        cells,
    ),
    min_size=1,
    max_size=3,
)


def _apply(path: Path, op: str, i: int, j: int, value: str) -> None:
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if op == "garbage":
        path.write_text(text + value + "\n")
        return
    header = rows[0] if rows and rows[0] else [""]
    body = [r + [""] * (len(header) - len(r)) for r in rows[1:]]  # an earlier edit may be ragged
    if op == "cell" and body:
        body[i % len(body)][j % len(header)] = value
    elif op == "append":
        last = body[-1] if body else [""] * len(header)
        body.append([value if k == j % len(header) else last[k] for k in range(len(header))])
    elif op == "drop" and body:
        body.pop(i % len(body))
    elif op == "dup" and body:
        body.append(list(body[i % len(body)]))
    elif op == "header":
        header[j % len(header)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *body])
    path.write_text(buf.getvalue(), encoding="utf-8")


def _push_case(repo: Path, work: Path, ops: list) -> None:
    if work.exists():
        shutil.rmtree(work)
    code, _, err = inprocess("--repo", str(repo), "state", "pull", "--billing-state-dir", str(work))
    assert code == 0, err
    for table, op, i, j, value in ops:
        _apply(work / table, op, i, j, value)
    code, out, err = inprocess(
        "--repo", str(repo), "state", "push", "--billing-state-dir", str(work)
    )
    assert_clear_cli(code, out, err, ops)
    # whatever the push did, what is stored still verifies
    code, out, err = inprocess("--repo", str(repo), "ledger", "verify")
    assert code == 0, (ops, out, err)


@COSTLY
@given(ops=edits)
def test_fuzz__csv_edits_pushed_succeed_or_refuse_clearly(repo, tmp_path_factory, ops):
    _push_case(repo, tmp_path_factory.getbasetemp() / "push-work", ops)


@pytest.mark.slow
@SLOW
@given(ops=edits)
def test_fuzz__csv_edits_slow(repo, tmp_path_factory, ops, pytestconfig):
    require_slow(pytestconfig)
    _push_case(repo, tmp_path_factory.getbasetemp() / "push-work", ops)


# ---------------------------------------------------------------- a few real subprocesses


def test_fuzz__cli_subprocess_cases_end_clearly_within_timeout(repo, tmp_path):
    """A handful of the same kinds of input through the real command (timeouts catch hangs)."""
    rng = random.Random(7)
    root = tmp_path / "repo"
    shutil.copytree(repo, root, symlinks=True)
    cases: list[tuple[str, ...]] = []
    wo = root / "tenants" / T1 / "workorders"
    for n, body in enumerate(
        [
            '{"work_order_id": "Fz000000", "modules": [{"module_id": "001", "params": {"n": "1; rm -rf /"}}]}',
            '{"work_order_id": "Fz000001", "modules": [{"module_id": "001", "reuse_output_type": "assets", "assets_folder_name": "../../../../etc"}]}',
            "modules: [[[[",
            '{"work_order_id": "Fz000003", "modules": [{"module_id": "003", "params": {"fail": "ZZZ"}}], "promo_codes": ["P10", "P10"]}',
        ]
    ):  # fmt: skip
        (wo / f"Fz00000{n}.yml").write_text(body)
    r = cli_run("run", "--json", cwd=root, timeout=120)
    assert_clear_cli(r.returncode, r.stdout, r.stderr, "run")
    assert r.returncode == 0  # bad work orders are REJECTED, the run goes on
    action = root / "modules" / "003" / "action.yml"
    doc = json.loads(action.read_text())
    doc["runs"]["steps"][0]["if"] = "${{ inputs.fail == '' && fromJSON('[1') }}"
    action.write_text(json.dumps(doc))
    cases.append(("module", "run", "003", "--params", '{"fail": ""}'))
    pricing = root / "pull" / bt.PRICING
    assert cli_run("state", "pull", "--billing-state-dir", str(pricing.parent), cwd=root).returncode == 0  # fmt: skip
    _apply(pricing, "cell", rng.randrange(5), 2, "-7")
    cases.append(("state", "push", "--billing-state-dir", str(pricing.parent)))
    for args in cases:
        r = cli_run(*args, cwd=root, timeout=120)
        if args[0] == "module":  # a failed module run: exit 1, its outcome on stdout
            assert r.returncode == 1 and "FAILED" in r.stdout and "fromJSON" in r.stdout
            assert "Traceback" not in r.stdout + r.stderr
            continue
        assert_clear_cli(r.returncode, r.stdout, r.stderr, args)
    assert read_csv(root / "pull" / bt.PRICING)  # the edit was really made
    assert cli_run("ledger", "verify", cwd=root).returncode == 0
