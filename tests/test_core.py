from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workmill import ids
from workmill.errors import SpecError
from workmill.specs import WorkOrderSpec, parse_model
from workmill.tables import parse_table, render_table
from workmill.yamlio import parse_yaml


def test_generate__fixed_length_base62_and_case_insensitive_dedupe():
    taken = [ids.generate(ids.IdKind.TENANT) for _ in range(50)]
    fresh = ids.generate(ids.IdKind.TENANT, taken)
    assert len(fresh) == 6 and ids.is_valid(ids.IdKind.TENANT, fresh)
    assert fresh.lower() not in {t.lower() for t in taken}


def test_next_module_number__lowest_free_ignoring_case():
    assert ids.next_module_number(["001", "002", "004"]) == "003"


@given(st.text(max_size=12))
def test_is_valid__only_base62_of_exact_length(s):
    ok = len(s) == 8 and all(c in ids.BASE62 for c in s)
    assert ids.is_valid(ids.IdKind.WORK_ORDER, s) is ok


def test_parse_yaml__duplicate_key_names_line():
    with pytest.raises(SpecError) as err:
        parse_yaml("a: 1\nb: 2\na: 3\n", "x.yml")
    assert "x.yml:3: a: duplicate key" in str(err.value)


def test_parse_yaml__deep_nesting_refused_with_our_message():
    with pytest.raises(SpecError, match="nested deeper than 32 levels"):
        parse_yaml("[" * 200 + "]" * 200, "x.yml")


def test_parse_yaml__very_deep_nesting_refused_without_crash():
    # the YAML library may refuse first, in its own words: assert only on ours (file, kind)
    with pytest.raises(SpecError) as err:
        parse_yaml("[" * 200_000 + "]" * 200_000, "x.yml")
    assert str(err.value).startswith("x.yml")


def test_parse_yaml__alias_bomb_refused():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(SpecError, match="expands"):
        parse_yaml("\n".join(lines), "x.yml")


def test_work_order__unquoted_module_id_is_a_clear_error():
    doc = parse_yaml("work_order_id: Qw3Er5Ty\nmodules:\n  - module_id: 010\n", "w.yml")
    with pytest.raises(SpecError) as err:
        parse_model(doc, WorkOrderSpec)
    assert "w.yml:3: modules.0.module_id: expected a string" in str(err.value)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)))
def test_table__round_trip_any_text(cells):
    cols = [f"c{i}" for i in range(len(cells))] or ["c0"]
    row = dict(zip(cols, cells, strict=False))
    _, rows = parse_table(render_table(cols, [row]), "t.csv", cols)
    assert rows == [{c: row.get(c, "") for c in cols}] or (
        # a single empty cell serialises as an empty line, which is a blank row
        all(v == "" for v in row.values()) and rows == []
    )


def test_table__bom_is_refused():
    with pytest.raises(SpecError, match="byte-order mark"):
        parse_table(b"\xef\xbb\xbfa,b\n1,2\n", "t.csv", ["a"])


def test_cli__version_and_help(cli, tmp_path):
    r = cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and "workmill" in r.stdout
    r = cli("nonexistent-command", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_generate_free__respects_predicate():
    taken = {"0000"}
    got = ids.generate_free(ids.IdKind.CATEGORY, lambda x: x != "07")
    assert got == "07" and taken


def test_cli_errors__control_characters_in_names_cannot_forge_lines():
    from workmill.cli import _printable

    assert _printable("bad 0\x1e0 \x1b[31m x\u2028y") == "bad 0\\x1e0 \\x1b[31m x\\u2028y"
    assert _printable("a\n  b") == "a\n  b"
