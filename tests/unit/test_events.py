"""core.md §3.3 validation of kind-38386 events, with a hypothesis property for the parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serbero_cli.core.events import EventRejected, in_apply_order, parse_dispute_event
from serbero_cli.keys import parse_secret_key, public_key_of
from serbero_cli.nostr.events import NostrEvent

MOSTRO = public_key_of(parse_secret_key("11" * 32))
SOLVER = public_key_of(parse_secret_key("22" * 32))


def event(tags, *, kind=38386, author=MOSTRO, created_at=1000, eid="aa" * 32) -> NostrEvent:
    return NostrEvent(eid, author, created_at, kind, tuple(tuple(t) for t in tags), "")


GOOD = [["d", "d-1"], ["s", "initiated"], ["initiator", "buyer"]]


@pytest.mark.parametrize("tags,kind,author,reason", [
    pytest.param(GOOD, 1, MOSTRO, "wrong kind", id="wrong-kind"),
    pytest.param(GOOD, 38386, SOLVER, "wrong author", id="wrong-author"),
    pytest.param([["s", "initiated"], ["initiator", "buyer"]], 38386, MOSTRO, "missing d", id="no-d"),
    pytest.param([["d", "x"], ["initiator", "buyer"]], 38386, MOSTRO, "missing s", id="no-s"),
    pytest.param([["d", "x"], ["s", "paused"]], 38386, MOSTRO, "unknown status", id="unknown-s"),
    pytest.param([["d", "x"], ["s", "initiated"]], 38386, MOSTRO, "initiator", id="initiated-no-initiator"),
    pytest.param([["d", "x"], ["s", "initiated"], ["initiator", "unknown"]], 38386, MOSTRO, "initiator",
                 id="initiated-unknown-initiator"),
    pytest.param(GOOD + [["y", "m" * 257]], 38386, MOSTRO, "over 256", id="huge-tag"),
    pytest.param([["d", "x" * 257], ["s", "settled"]], 38386, MOSTRO, "over 256", id="huge-d"),
])
def test_parse_rejects_each_invalid_case(tags, kind, author, reason):
    with pytest.raises(EventRejected, match=reason):
        parse_dispute_event(event(tags, kind=kind, author=author), MOSTRO)


def test_parse_accepts_real_mostro_shape_and_prefers_the_created_at_tag():
    tags = GOOD + [["created_at", "900"], ["y", "mostro"], ["z", "dispute"], ["p", SOLVER]]
    parsed = parse_dispute_event(event(tags), MOSTRO)
    assert (parsed.dispute_id, parsed.status, parsed.initiator, parsed.solver) == ("d-1", "initiated", "buyer", SOLVER)
    assert parsed.event_timestamp == 900 and parsed.created_at == 1000


def test_parse_reads_published_at_as_an_alias_and_ignores_a_bad_p_tag():
    tags = [["d", "d-1"], ["s", "settled"], ["initiator", "unknown"], ["published_at", "950"], ["p", "zz"]]
    parsed = parse_dispute_event(event(tags), MOSTRO)
    assert parsed.event_timestamp == 950 and parsed.solver is None and parsed.initiator == "unknown"


def test_parse_falls_back_to_event_time_when_the_tag_is_garbage():
    assert parse_dispute_event(event(GOOD + [["created_at", "soon"]]), MOSTRO).event_timestamp == 1000


def test_apply_order_is_created_at_then_lower_id():
    a = parse_dispute_event(event(GOOD, created_at=5, eid="bb" * 32), MOSTRO)
    b = parse_dispute_event(event(GOOD, created_at=5, eid="aa" * 32), MOSTRO)
    c = parse_dispute_event(event(GOOD, created_at=4, eid="cc" * 32), MOSTRO)
    assert [e.event_id for e in in_apply_order([a, b, c])] == ["cc" * 32, "aa" * 32, "bb" * 32]


tag_values = st.one_of(st.sampled_from(["d", "s", "initiator", "p", "created_at", "initiated", "in-progress",
                                        "settled", "buyer", "seller", SOLVER, "123"]), st.text(max_size=300))


@settings(max_examples=300, deadline=None)
@given(tags=st.lists(st.lists(tag_values, min_size=0, max_size=4), max_size=8),
       kind=st.sampled_from([38386, 1, 14]), created_at=st.integers(min_value=0, max_value=2**40))
def test_parser_either_parses_or_raises_its_own_rejection(tags, kind, created_at):
    try:
        parsed = parse_dispute_event(event(tags, kind=kind, created_at=created_at), MOSTRO)
    except EventRejected:
        return
    assert parsed.dispute_id and parsed.status
    assert parsed.solver is None or len(parsed.solver) == 64
