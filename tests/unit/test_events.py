"""Validation of kind-38386 dispute events: each rejection rule, and a fuzz test of the parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serbero_cli.domain.dispute_events import EventRejected, in_apply_order, parse_dispute_event
from serbero_cli.keytext import parse_secret_key, public_key_of
from serbero_cli.listen.run import validate
from serbero_cli.nostr.events import MAX_EVENT_JSON_BYTES, NostrEvent, parse_int_tag

MOSTRO = public_key_of(parse_secret_key("11" * 32))
SOLVER = public_key_of(parse_secret_key("22" * 32))
NOW = 1_700_000_000
D1 = "6f1c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"


def event(
    tags, *, kind=38386, author=MOSTRO, created_at=NOW - 100, eid="aa" * 32, size=0
) -> NostrEvent:
    return NostrEvent(eid, author, created_at, kind, tuple(tuple(t) for t in tags), "", size)


def parse(ev: NostrEvent):
    return parse_dispute_event(ev, MOSTRO, now=NOW)


GOOD = [["d", D1], ["s", "initiated"], ["initiator", "buyer"]]


@pytest.mark.parametrize(
    "tags,kind,author,reason",
    [
        pytest.param(GOOD, 1, MOSTRO, "wrong kind", id="wrong-kind"),
        pytest.param(GOOD, 38386, SOLVER, "wrong author", id="wrong-author"),
        pytest.param(
            [["s", "initiated"], ["initiator", "buyer"]], 38386, MOSTRO, "missing d", id="no-d"
        ),
        pytest.param([["d", D1], ["initiator", "buyer"]], 38386, MOSTRO, "missing s", id="no-s"),
        pytest.param([["d", D1], ["s", "paused"]], 38386, MOSTRO, "unknown status", id="unknown-s"),
        pytest.param(
            [["d", D1], ["s", "initiated"]], 38386, MOSTRO, "initiator", id="initiated-no-initiator"
        ),
        pytest.param(
            [["d", D1], ["s", "initiated"], ["initiator", "unknown"]],
            38386,
            MOSTRO,
            "initiator",
            id="initiated-unknown-initiator",
        ),
        pytest.param(GOOD + [["y", "m" * 257]], 38386, MOSTRO, "over 256", id="huge-tag"),
        pytest.param([["d", "x" * 257], ["s", "settled"]], 38386, MOSTRO, "over 256", id="huge-d"),
        pytest.param(
            [["d", "dispute-1"], ["s", "settled"]], 38386, MOSTRO, "not a UUID", id="d-not-uuid"
        ),
        pytest.param(
            [["d", D1 + "0"], ["s", "settled"]], 38386, MOSTRO, "not a UUID", id="d-too-long"
        ),
        pytest.param(
            [["d", D1.replace("-", "")], ["s", "settled"]],
            38386,
            MOSTRO,
            "not a UUID",
            id="d-no-hyphens",
        ),
        pytest.param(
            GOOD + [["created_at", "²"]], 38386, MOSTRO, "created_at tag", id="superscript-two"
        ),
        pytest.param(
            GOOD + [["created_at", "١٢٣"]],
            38386,
            MOSTRO,
            "created_at tag",
            id="arabic-indic-digits",
        ),
        pytest.param(GOOD + [["created_at", "soon"]], 38386, MOSTRO, "created_at tag", id="word"),
        pytest.param(
            GOOD + [["created_at", " 12"]], 38386, MOSTRO, "created_at tag", id="leading-space"
        ),
        pytest.param(GOOD + [["created_at", "-5"]], 38386, MOSTRO, "created_at tag", id="negative"),
        pytest.param(
            GOOD + [["created_at", "1_000"]], 38386, MOSTRO, "created_at tag", id="underscore"
        ),
        pytest.param(
            GOOD + [["created_at", "12\n"]], 38386, MOSTRO, "created_at tag", id="trailing-newline"
        ),
        pytest.param(
            GOOD + [["created_at", str(2**40 + 1)]], 38386, MOSTRO, "out of range", id="beyond-2^40"
        ),
        pytest.param(
            GOOD + [["created_at", "9" * 30]], 38386, MOSTRO, "created_at tag", id="huge-number"
        ),
        pytest.param(
            GOOD + [["published_at", "x1"]],
            38386,
            MOSTRO,
            "published_at tag",
            id="bad-optional-alias",
        ),
        pytest.param(
            GOOD + [["created_at", "100"], ["created_at", "²"]],
            38386,
            MOSTRO,
            "created_at tag",
            id="second-bad-copy",
        ),
        pytest.param(
            [["d", D1], ["s", "settled"], ["initiator", "buyer\x1b[31m"]],
            38386,
            MOSTRO,
            "control",
            id="escape-in-initiator",
        ),
        pytest.param(
            [["d", D1], ["s", "settled"], ["initiator", "\u202eyub"]],
            38386,
            MOSTRO,
            "control",
            id="bidi-override",
        ),
        pytest.param(
            [["d", D1], ["s", "settled"], ["initiator", "a\x85b"]],
            38386,
            MOSTRO,
            "control",
            id="c1",
        ),
        pytest.param(
            [["d", D1], ["s", "settled"], ["initiator", "a\x7fb"]],
            38386,
            MOSTRO,
            "control",
            id="del",
        ),
        pytest.param(
            [["d", D1], ["s", "settled"], ["p", "ab\x00"]], 38386, MOSTRO, "control", id="nul-in-p"
        ),
    ],
)
def test_parse_rejects_each_invalid_case(tags, kind, author, reason):
    with pytest.raises(EventRejected, match=reason):
        parse(event(tags, kind=kind, author=author))


def test_parse_accepts_real_mostro_shape_and_prefers_the_created_at_tag():
    tags = GOOD + [["created_at", "900"], ["y", "mostro"], ["z", "dispute"], ["p", SOLVER]]
    parsed = parse(event(tags))
    assert (parsed.dispute_id, parsed.status, parsed.initiator, parsed.solver) == (
        D1,
        "initiated",
        "buyer",
        SOLVER,
    )
    assert parsed.event_timestamp == 900 and parsed.created_at == NOW - 100


def test_parse_stores_the_dispute_id_lowercased():
    upper = D1.upper()
    assert parse(event([["d", upper], ["s", "settled"]])).dispute_id == D1


def test_parse_reads_published_at_as_an_alias_and_ignores_a_bad_p_tag():
    tags = [
        ["d", D1],
        ["s", "settled"],
        ["initiator", "unknown"],
        ["published_at", "950"],
        ["p", "zz"],
    ]
    parsed = parse(event(tags))
    assert parsed.event_timestamp == 950 and parsed.solver is None and parsed.initiator == "unknown"


def test_parse_accepts_the_largest_integer_and_leading_zeros():
    assert parse(event(GOOD + [["created_at", str(2**40)]])).event_timestamp == 2**40
    assert parse(event(GOOD + [["created_at", "0000900"]])).event_timestamp == 900


def test_parse_rejects_an_event_more_than_ten_minutes_ahead_of_the_clock():
    assert parse(event(GOOD, created_at=NOW + 600)).created_at == NOW + 600
    with pytest.raises(EventRejected, match="from the future"):
        parse(event(GOOD, created_at=NOW + 601))


def test_parse_rejects_an_event_whose_json_is_over_64_kib():
    assert parse(event(GOOD, size=MAX_EVENT_JSON_BYTES)).dispute_id == D1
    with pytest.raises(EventRejected, match="larger than"):
        parse(event(GOOD, size=MAX_EVENT_JSON_BYTES + 1))


def test_control_characters_in_informational_tags_are_not_read_so_not_rejected():
    assert parse(event(GOOD + [["y", "mostro\x07"]])).dispute_id == D1


def test_apply_order_is_created_at_then_lower_id():
    a = parse(event(GOOD, created_at=5, eid="bb" * 32))
    b = parse(event(GOOD, created_at=5, eid="aa" * 32))
    c = parse(event(GOOD, created_at=4, eid="cc" * 32))
    assert [e.event_id for e in in_apply_order([a, b, c])] == ["cc" * 32, "aa" * 32, "bb" * 32]


@pytest.mark.parametrize(
    "value,expected", [("0", 0), ("1700000000", 1_700_000_000), (str(2**40), 2**40)]
)
def test_parse_int_tag_accepts_ascii_digits_in_range(value, expected):
    assert parse_int_tag(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "²",
        "١٢٣",
        "１２",
        "+1",
        "-1",
        "1.0",
        "1e3",
        " 1",
        "1 ",
        "0x10",
        str(2**40 + 1),
        "1" * 14,
        None,
        12,
    ],
)
def test_parse_int_tag_rejects_everything_else(value):
    with pytest.raises(ValueError):
        parse_int_tag(value)


# Digits from other scripts and number-like strings are where `isdigit()` and `int()` disagree.
odd_numbers = st.one_of(
    st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=6),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        ["²", "³", "١٢٣", "۱۲", "߁", "𝟙", "Ⅻ", "½", "1_0", " 7", "7\n", "0x1f", "NaN", "inf"]
    ),
)
tag_names = st.sampled_from(
    ["d", "s", "initiator", "p", "created_at", "published_at", "y", "z", ""]
)
tag_values = st.one_of(
    st.sampled_from(
        [
            D1,
            D1.upper(),
            "initiated",
            "in-progress",
            "settled",
            "released",
            "buyer",
            "seller",
            "unknown",
            SOLVER,
            "123",
        ]
    ),
    odd_numbers,
    st.text(max_size=300),
)
odd_types = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.lists(st.text(max_size=3), max_size=2),
)
tags_strategy = st.lists(
    st.one_of(
        st.tuples(tag_names, tag_values).map(list),
        st.lists(tag_values, min_size=0, max_size=4),
        st.lists(st.one_of(tag_values, odd_types), max_size=3),
        odd_types,
    ),
    max_size=8,
)


@settings(max_examples=500, deadline=None)
@given(
    tags=tags_strategy,
    kind=st.one_of(st.sampled_from([38386, 1, 14]), odd_types),
    created_at=st.one_of(st.integers(min_value=-(2**64), max_value=2**64), odd_types),
    size=st.one_of(st.integers(min_value=0, max_value=2**20), odd_types),
)
def test_parser_either_parses_or_raises_its_own_rejection(tags, kind, created_at, size):
    raw = NostrEvent("aa" * 32, MOSTRO, created_at, kind, tags, "", size)
    try:
        parsed = parse(raw)
    except EventRejected:
        return
    assert parsed.dispute_id == parsed.dispute_id.lower() and len(parsed.dispute_id) == 36
    assert parsed.status and 0 <= parsed.event_timestamp <= 2**40
    assert parsed.created_at <= NOW + 600
    assert parsed.solver is None or len(parsed.solver) == 64


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.builds(
            NostrEvent,
            st.one_of(st.text(max_size=70), odd_types),
            st.just(MOSTRO),
            st.one_of(st.integers(), odd_types),
            st.just(38386),
            tags_strategy,
            st.text(max_size=5),
            st.one_of(st.integers(), odd_types),
        ),
        max_size=5,
    )
)
def test_validate_never_raises_and_counts_every_event(events):
    valid, rejected = validate(events, MOSTRO, NOW)
    assert len(valid) + rejected == len(events)
