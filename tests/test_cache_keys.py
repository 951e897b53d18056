"""Cache keys: equal requests give equal keys, any single change gives another key."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workmill.cache.keys import CacheKeyError, cache_key, canonical_params, key_document

SHA_A = "a" * 64
SHA_B = "b" * 64

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
params_st = st.dictionaries(st.text(max_size=6), values, max_size=5)
sha_st = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
name_st = st.text(alphabet="abcdefgh", min_size=1, max_size=8)
path_st = st.builds(lambda m, n: f"{m}/{n}.json", st.sampled_from(["001", "002", "a0Z"]), name_st)
hashes_st = st.dictionaries(path_st, sha_st, max_size=4)


def base(**over):
    req = {
        "tenant_id": "Ab12Cd",
        "module_id": "001",
        "module_version": "1.0.0",
        "module_digest": SHA_A,
        "params": {"rows": 3},
        "input_hashes": {"002/report.json": SHA_B},
    }
    req.update(over)
    return req


@settings(max_examples=60, deadline=None)
@given(params=params_st, hashes=hashes_st)
def test_cache_key__equal_inputs_in_any_order_give_equal_keys(params, hashes):
    reordered_params = dict(reversed(list(params.items())))
    reordered_hashes = dict(reversed(list(hashes.items())))
    k1 = cache_key(**base(params=params, input_hashes=hashes))
    k2 = cache_key(**base(params=reordered_params, input_hashes=reordered_hashes))
    assert k1 == k2
    assert len(k1) == 64 and int(k1, 16) >= 0


@given(n=st.integers(min_value=-(2**53), max_value=2**53))
def test_cache_key__integral_float_equals_int(n):
    assert cache_key(**base(params={"x": n, "y": [n]})) == cache_key(
        **base(params={"x": float(n), "y": [float(n)]})
    )


def test_cache_key__bool_is_not_int_and_minus_zero_is_zero():
    assert cache_key(**base(params={"x": True})) != cache_key(**base(params={"x": 1}))
    assert cache_key(**base(params={"x": -0.0})) == cache_key(**base(params={"x": 0}))
    assert cache_key(**base(params={"x": "1"})) != cache_key(**base(params={"x": 1}))


FIELD_CHANGES = {
    "tenant_id": "Zx98Yw",
    "module_id": "002",
    "module_version": "1.0.1",
    "module_digest": SHA_B,
    "params": {"rows": 4},
    "input_hashes": {"002/report.json": SHA_A},
}


@pytest.mark.parametrize("field", sorted(FIELD_CHANGES))
def test_cache_key__any_single_field_change_changes_the_key(field):
    assert cache_key(**base()) != cache_key(**base(**{field: FIELD_CHANGES[field]}))


@settings(max_examples=60, deadline=None)
@given(params=params_st, other=params_st)
def test_cache_key__different_params_give_different_keys(params, other):
    same = canonical_params(params) == canonical_params(other)
    assert (cache_key(**base(params=params)) == cache_key(**base(params=other))) == same


@given(hashes=hashes_st, path=st.builds(lambda n: f"003/{n}.csv", name_st))
def test_cache_key__adding_renaming_an_input_changes_the_key(hashes, path):
    more = {**hashes, path: SHA_A}
    assert cache_key(**base(input_hashes=hashes)) != cache_key(**base(input_hashes=more))


def test_key_document__is_the_documented_canonical_json():
    doc = key_document(**base(params={"b": 1.0, "a": "é"}))
    assert (
        doc
        == (
            '{"inputs":[["002/report.json","' + SHA_B + '"]],"module_digest":"' + SHA_A + '",'
            '"module_id":"001","module_version":"1.0.0","params":{"a":"é","b":1},'
            '"scheme":"workmill-cache-key-v1","tenant_id":"Ab12Cd"}'
        ).encode()
    )
    assert cache_key(**base(params={"b": 1.0, "a": "é"})) == hashlib.sha256(doc).hexdigest()
    json.loads(doc)


@pytest.mark.parametrize(
    "params",
    [{"x": float("nan")}, {"x": float("inf")}, {"x": [float("-inf")]}, {1: "a"}, {"x": {1, 2}}],
)
def test_cache_key__hostile_params_are_refused(params):
    with pytest.raises(CacheKeyError):
        cache_key(**base(params=params))


@pytest.mark.parametrize(
    "over",
    [
        {"module_digest": "XYZ"},
        {"tenant_id": ""},
        {"input_hashes": {"/etc/passwd": SHA_A}},
        {"input_hashes": {"002/a": "nothex"}},
    ],
)
def test_cache_key__malformed_request_is_refused(over):
    with pytest.raises(CacheKeyError):
        cache_key(**base(**over))
