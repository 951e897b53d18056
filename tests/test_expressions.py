"""Expression language, written from GitHub's documented syntax and coercion rules."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workmill.runner.evaluate import Contexts, Status, evaluate, render, to_string, truthy
from workmill.runner.expressions import (
    ExpressionError,
    parse,
    parse_condition,
    parse_template,
)


def ev(text: str, **values):
    ctx = Contexts({"inputs": {}, "env": {}, "steps": {}, "github": {}, "runner": {}, **values})
    return evaluate(parse(text), ctx)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("711", 711),
        ("-9.2", -9.2),
        ("0xff", 255),
        ("-2.99e-2", -0.0299),
        ("'It''s open source!'", "It's open source!"),
        ("''", ""),
    ],
)
def test_parse__documented_literals(text, value):
    assert ev(text) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null == 0", True),
        ("true == 1", True),
        ("false == 0", True),
        ("'' == 0", True),
        ("' 0xff ' == 255", True),
        ("'abc' == 'ABC'", True),
        ("'a' != 'A'", False),
        ("'NaN' == 'NaN'", True),  # same type: string compare
        ("'NaN' == NaN", False),
        ("NaN == NaN", False),
        ("'abc' == 0", False),
        ("1 < '2'", True),
        ("'b' > 'A'", True),
        ("false < true", True),
        ("null <= 0", True),
        ("1 < 'x'", False),
    ],
)
def test_evaluate__loose_equality_and_comparison(text, expected):
    assert ev(text) is expected


def test_evaluate__objects_equal_only_to_themselves():
    obj = {"a": 1}
    assert ev("inputs.o == inputs.o", inputs={"o": obj}) is True
    assert ev("inputs.o == inputs.p", inputs={"o": obj, "p": {"a": 1}}) is False
    assert ev("inputs.o == 1", inputs={"o": obj}) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true || false && false", True),  # && binds tighter than ||
        ("(true || false) && false", False),
        ("!false == true", True),  # ! binds tighter than ==
        ("1 < 2 == true", True),  # comparison binds tighter than equality
        ("'a' && 'b'", "b"),  # && returns an operand
        ("'' || 'fallback'", "fallback"),
        ("0 || null", None),
    ],
)
def test_evaluate__precedence_and_operand_results(text, expected):
    assert ev(text) == expected


def test_evaluate__property_access_is_case_insensitive_and_missing_is_null():
    steps = {"build": {"outputs": {"Digest": "abc"}, "outcome": "success"}}
    assert ev("steps.build.outputs.digest", steps=steps) == "abc"
    assert ev("steps['build'].outputs['DIGEST']", steps=steps) == "abc"
    assert ev("STEPS.build.outcome", steps=steps) == "success"
    assert ev("steps.nope.outputs.x", steps=steps) is None
    assert ev("steps.build.outcome.deeper", steps=steps) is None


def test_evaluate__hyphenated_step_ids_are_names_not_minus():
    steps = {"my-step": {"outputs": {"x": "1"}}}
    assert ev("steps.my-step.outputs.x", steps=steps) == "1"


def test_evaluate__array_index():
    assert ev("fromJSON('[10,20,30]')[1]") == 20
    assert ev("fromJSON('[10]')[5]") is None
    assert ev("fromJSON('[10]')['a']") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contains('Hello world', 'WORLD')", True),
        ("contains(fromJSON('[\"bug\", \"help\"]'), 'BUG')", True),
        ("contains(fromJSON('[1, 2]'), '2')", True),
        ("startsWith('Hello', 'he')", True),
        ("endsWith('Hello', 'LO')", True),
        ("format('{0} {1} {{x}}', 'a', 3)", "a 3 {x}"),
        ("join(fromJSON('[\"a\", \"b\"]'), '-')", "a-b"),
        ("join(fromJSON('[1, 2]'))", "1,2"),
        ("join('solo')", "solo"),
        ("toJSON(fromJSON('{\"a\": 1}'))", '{\n  "a": 1\n}'),
        ("fromJSON('true')", True),
        ("FROMJSON('3')", 3),  # function names ignore case
    ],
)
def test_evaluate__functions(text, expected):
    assert ev(text) == expected


def test_status_functions__follow_status():
    failed = Contexts({}, Status(failed=True))
    ok = Contexts({}, Status())
    assert evaluate(parse("failure()"), failed) is True
    assert evaluate(parse("success()"), failed) is False
    assert evaluate(parse("always()"), failed) is True
    assert evaluate(parse("success()"), ok) is True
    assert evaluate(parse("cancelled()"), Contexts({}, Status(cancelled=True))) is True


def test_parse_condition__implicit_success_unless_status_function():
    failed = Contexts({"inputs": {"x": "1"}}, Status(failed=True))
    assert truthy(evaluate(parse_condition("inputs.x == 1"), failed)) is False
    assert truthy(evaluate(parse_condition("${{ always() && inputs.x == 1 }}"), failed)) is True
    assert truthy(evaluate(parse_condition(None), failed)) is False
    assert truthy(evaluate(parse_condition("failure()"), failed)) is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty expression"),
        ("1 +", "unexpected character"),
        ('"double"', "single quotes"),
        ("'open", "unterminated string"),
        ("(true", "expected '\\)'"),
        ("true true", "unexpected 'true'"),
        ("nosuch.thing", "unknown context"),
        ("secrets.TOKEN", "not available"),
        ("matrix.os", "not available"),
        ("explode()", "unknown function"),
        ("hashFiles('x')", "not supported"),
        ("contains('a')", "takes 2 argument"),
        ("success(1)", "takes 0 argument"),
        ("steps.*.outputs", "object filters"),
        ("a.", "unknown context"),
        ("inputs.", "property name"),
        ("!" * 200 + "true", "nested deeper"),
        ("(" * 200 + "1" + ")" * 200, "nested deeper"),
    ],
)
def test_parse__malformed_is_a_clear_expression_error(text, message):
    with pytest.raises(ExpressionError, match=message):
        parse(text)


def test_parse_condition__mixed_text_and_expression_refused():
    with pytest.raises(ExpressionError, match="mixes text"):
        parse_condition("${{ true }} == false")


def test_fromjson__invalid_json_is_an_expression_error():
    with pytest.raises(ExpressionError, match="fromJSON"):
        ev("fromJSON('{nope')")


def test_format__bad_placeholder_is_an_expression_error():
    with pytest.raises(ExpressionError, match="no argument"):
        ev("format('{1}', 'a')")


def test_template__closing_braces_inside_string_literal():
    segs = parse_template("x=${{ '}}' }}!")
    assert render(segs, Contexts({})) == "x=}}!"


def test_template__unterminated_is_an_error():
    with pytest.raises(ExpressionError, match="unterminated"):
        parse_template("echo ${{ inputs.x ")


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (3.0, "3"), (2.5, "2.5"), (math.inf, "Infinity"), ("s", "s")],
)
def test_to_string__as_pasted_into_text(value, text):
    assert to_string(value) == text


@pytest.mark.parametrize("value", [False, 0, 0.0, -0.0, "", None, math.nan])
def test_truthy__documented_falsy_values(value):
    assert truthy(value) is False


@pytest.mark.parametrize("value", [True, 1, "false", "0", {}, []])
def test_truthy__everything_else_is_truthy(value):
    assert truthy(value) is True


_ALPHABET = [
    *list("()[].!<>=&|,'\" \t0123456789abcdefxyzE+-*${}_"),
    "inputs",
    "steps",
    "env",
    "true",
    "null",
    "contains(",
    "format(",
    "fromJSON(",
    "==",
    "&&",
    "||",
    "${{",
    "}}",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=40).map("".join))
def test_parse__random_input_raises_only_expression_error(text):
    ctx = Contexts({"inputs": {"a": "1"}, "env": {}, "steps": {}, "github": {}, "runner": {}})
    for fn in (parse, parse_template):
        try:
            node = fn(text)
        except ExpressionError:
            continue
        try:
            if isinstance(node, list):
                render(node, ctx)
            else:
                evaluate(node, ctx)
        except ExpressionError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parse__arbitrary_text_raises_only_expression_error(text):
    with contextlib.suppress(ExpressionError):
        parse(text)
    with contextlib.suppress(ExpressionError):
        parse_template(text)
