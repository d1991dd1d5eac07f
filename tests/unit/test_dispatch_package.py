"""The strict handoff-package parser (docs/wire-formats.md#handoff-package) and its lenient dispute_id hint."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serbero_cli.domain.handoff import (
    FIELD_ORDER,
    MAX_DETAIL_CHARS,
    HandoffPackage,
    HandoffParseError,
    dispute_id_hint,
    parse_handoff,
)

GOOD = {
    "dispute_id": "d-1",
    "session_id": "s-1",
    "trigger": "round_limit",
    "evidence_refs": ["e1"],
    "prompt_bundle_id": "bundle-a",
    "policy_hash": "ab12",
    "rationale_refs": ["c0ffee"],
    "assembled_at": 1_760_000_000,
}


def dumps(doc) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def with_(**changes) -> str:
    doc = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return dumps(doc)


def test_parse_handoff_valid_package_round_trips_in_canonical_order():
    package = parse_handoff(dumps({**GOOD, "extra": {"x": [1, 2]}}))
    assert isinstance(package, HandoffPackage)
    assert package.session_id == "s-1" and package.evidence_refs == ("e1",)
    assert json.loads(package.to_json()) == GOOD
    assert list(json.loads(package.to_json())) == list(FIELD_ORDER)


@pytest.mark.parametrize("session", [..., None], ids=["absent", "null"])
def test_parse_handoff_dispute_scoped_package_leaves_session_out(session):
    package = parse_handoff(with_(session_id=session))
    assert package.session_id is None
    assert "session_id" not in json.loads(package.to_json())


@pytest.mark.parametrize("key", [k for k in FIELD_ORDER if k != "session_id"])
def test_each_missing_required_key_is_deserialize_failed(key):
    with pytest.raises(HandoffParseError) as info:
        parse_handoff(with_(**{key: ...}))
    assert key in info.value.detail and info.value.dispute_hint == (
        "d-1" if key != "dispute_id" else "unknown"
    )


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(with_(assembled_at=1.0), id="assembled_at-float"),
        pytest.param(with_(assembled_at=1.5), id="assembled_at-fraction"),
        pytest.param(with_(assembled_at=True), id="assembled_at-bool"),
        pytest.param(with_(assembled_at="1"), id="assembled_at-numeric-string"),
        pytest.param(with_(assembled_at=2**63), id="assembled_at-2^63"),
        pytest.param(with_(assembled_at=-(2**63) - 1), id="assembled_at-below-int64"),
        pytest.param(with_(assembled_at=None), id="assembled_at-null"),
        pytest.param(dumps(GOOD).replace("1760000000", "1e9"), id="assembled_at-exponent"),
        pytest.param(with_(evidence_refs=None), id="evidence_refs-null"),
        pytest.param(with_(rationale_refs=None), id="rationale_refs-null"),
        pytest.param(with_(evidence_refs=["a", 1]), id="evidence_refs-int"),
        pytest.param(with_(rationale_refs=[None]), id="rationale_refs-null-item"),
        pytest.param(with_(rationale_refs="c0ffee"), id="rationale_refs-string"),
        pytest.param(with_(dispute_id=42), id="dispute_id-number"),
        pytest.param(with_(trigger=None), id="trigger-null"),
        pytest.param(with_(session_id=7), id="session_id-number"),
        pytest.param(with_(prompt_bundle_id=None), id="bundle-null"),
        pytest.param(with_(policy_hash=["x"]), id="policy_hash-array"),
    ],
)
def test_mistyped_fields_are_deserialize_failed(payload):
    with pytest.raises(HandoffParseError) as info:
        parse_handoff(payload)
    assert info.value.detail


def test_parse_handoff_accepts_the_int64_bounds():
    assert parse_handoff(with_(assembled_at=2**63 - 1)).assembled_at == 2**63 - 1
    assert parse_handoff(with_(assembled_at=-(2**63))).assembled_at == -(2**63)


@pytest.mark.parametrize("key", ["dispute_id", "session_id", "trigger"])
@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1f", "\x7f", "\u2028", "\u2029", "\t"])
def test_parse_handoff_rejects_line_breaking_characters_in_header_fields(key, char):
    with pytest.raises(HandoffParseError) as info:
        parse_handoff(with_(**{key: f"a{char}b"}))
    assert key in info.value.detail


def test_parse_handoff_allows_control_characters_in_refs_and_unicode_everywhere():
    package = parse_handoff(with_(evidence_refs=["line\nbreak"], dispute_id="disputa-ñ-💥"))
    assert package.dispute_id == "disputa-ñ-💥" and package.evidence_refs == ("line\nbreak",)


CORPUS = {
    "empty": "",
    "null": "null",
    "array": "[1,2]",
    "string": '"x"',
    "number": "42",
    "bom": "\ufeff" + dumps(GOOD),
    "trailing-garbage": dumps(GOOD) + "x",
    "nan": with_(assembled_at=0).replace(":0}", ":NaN}"),
    "infinity": with_(assembled_at=0).replace(":0}", ":Infinity}"),
    "duplicate-key": dumps(GOOD)[:-1] + ',"trigger":"other"}',
    "nested-duplicate": with_(extra=0).replace('"extra":0', '"extra":{"a":1,"a":2}'),
    "lone-surrogate": with_(trigger="x").replace('"trigger":"x"', '"trigger":"\\ud800"'),
    "lone-surrogate-in-unknown-key": with_(extra="x").replace('"extra":"x"', '"extra":"\\udc00"'),
    "deep-nesting": "[" * 100_000,
    "huge": dumps({**GOOD, "pad": "a" * (2 * 1024 * 1024)}),
    "huge-int": with_(assembled_at=0).replace(":0}", ":" + "9" * 5000 + "}"),
    "raw-control-char": with_(trigger="x").replace('"trigger":"x"', '"trigger":"a\x01b"'),
    "single-quotes": "{'dispute_id': 'd-1'}",
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_payloads_raise_only_handoff_parse_error(name):
    with pytest.raises(HandoffParseError) as info:
        parse_handoff(CORPUS[name])
    assert 0 < len(info.value.detail) <= MAX_DETAIL_CHARS


@pytest.mark.parametrize("payload", [b"{}", bytes(dumps(GOOD), "utf-8"), 42, 4.2, None, True])
def test_parse_handoff_non_text_payloads_fail(payload):
    with pytest.raises(HandoffParseError, match="not TEXT|BLOB"):
        parse_handoff(payload)


def test_parse_handoff_size_limit_counts_utf8_bytes():
    pad = 1024 * 1024 - len(dumps({**GOOD, "pad": ""}).encode())
    assert parse_handoff(dumps({**GOOD, "pad": "a" * pad})).dispute_id == "d-1"
    with pytest.raises(HandoffParseError, match="exceeds"):
        parse_handoff(dumps({**GOOD, "pad": "a" * (pad - 1) + "é"}))


@pytest.mark.parametrize(
    ("payload", "hint"),
    [
        (with_(trigger=...), "d-1"),
        (dumps({"dispute_id": "d-9"}), "d-9"),
        (with_(assembled_at=0).replace(":0}", ":NaN}"), "d-1"),
        (dumps(GOOD)[:-1] + ',"dispute_id":"last"}', "last"),
        ("not json", "unknown"),
        (with_(dispute_id=42), "unknown"),
        ("[" * 100_000, "unknown"),
        ('{"dispute_id":"\\ud800"}', "unknown"),
        (b'{"dispute_id":"blob"}', "blob"),
        (42, "unknown"),
    ],
)
def test_dispute_id_hint_is_lenient_but_only_trusts_strings(payload, hint):
    assert dispute_id_hint(payload) == hint


def test_detail_is_capped_at_500_characters():
    with pytest.raises(HandoffParseError) as info:
        parse_handoff(dumps({**GOOD, "x" * 2000: 1})[:-1] + ',"' + "x" * 2000 + '":2}')
    assert len(info.value.detail) <= 500
    assert len(HandoffParseError("y" * 2000).detail) == 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
any_text = st.text(st.characters(blacklist_categories=()), max_size=12)  # lone surrogates included
field_values = st.one_of(
    json_values,
    any_text,
    st.sampled_from(list(GOOD.values())),
    st.lists(st.one_of(st.text(max_size=5), any_text), max_size=3),
    st.integers(min_value=-(2**70), max_value=2**70),
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        any_text,
        st.binary(),
        st.integers(),
        st.none(),
        st.builds(lambda doc, junk: doc[: len(doc) // 2] + junk, st.just(dumps(GOOD)), any_text),
        st.dictionaries(st.sampled_from([*FIELD_ORDER, "extra"]), field_values).map(
            lambda d: json.dumps(d, ensure_ascii=False, allow_nan=True)
        ),
    )
)
def test_parser_never_raises_anything_but_handoff_parse_error(payload):
    try:
        package = parse_handoff(payload)
    except HandoffParseError as exc:
        assert len(exc.detail) <= MAX_DETAIL_CHARS
        assert isinstance(exc.dispute_hint, str)
        exc.detail.encode("utf-8")
        exc.dispute_hint.encode("utf-8")
    else:
        assert parse_handoff(package.to_json()) == package


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        HandoffPackage,
        dispute_id=st.text(
            st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029")
        ),
        session_id=st.none()
        | st.text(
            st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029")
        ),
        trigger=st.text(
            st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029")
        ),
        evidence_refs=st.lists(st.text(st.characters(blacklist_categories=("Cs",)))).map(tuple),
        prompt_bundle_id=st.text(st.characters(blacklist_categories=("Cs",))),
        policy_hash=st.text(st.characters(blacklist_categories=("Cs",))),
        rationale_refs=st.lists(st.text(st.characters(blacklist_categories=("Cs",)))).map(tuple),
        assembled_at=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    )
)
def test_parse_handoff_encode_then_parse_is_the_identity(package):
    assert parse_handoff(package.to_json()) == package
