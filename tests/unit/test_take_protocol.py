"""The take request on both transports and the reading of node replies (docs/wire-formats.md#take-request,
#take-replies), forged replies included.

The node's side (unwrapping our request, building its replies) is written here with raw
nostr_sdk calls, from the spec.
"""

from __future__ import annotations

import hashlib
import json
import time

import coincurve
import nostr_sdk as ns
import pytest

from serbero_cli.keytext import Secret
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.nostr.mostro import (
    TakeBuildError,
    build_take_giftwrap,
    build_take_kind14,
    default_miner,
    giftwrap_reply_filter,
    info_filter,
    kind14_reply_filter,
    new_request_id,
    newest_info_event,
    parse_info_event,
    read_giftwrap_reply,
    read_kind14_reply,
    sign_message,
    take_message_json,
)
from tests.protocol.party_side import (
    cantdo_message,
    compact,
    giftwrap_reply,
    kind14_reply,
    node_signature,
    took_message,
)

DISPUTE = "3f2a9c1e-7b4d-4e8f-a1c2-9d0e5f6a7b8c"
R = 4_611_686_018_427_387_905
M_V1 = (
    '{"dispute":{"version":1,"request_id":4611686018427387905,"trade_index":null,'
    '"id":"3f2a9c1e-7b4d-4e8f-a1c2-9d0e5f6a7b8c","action":"admin-take-dispute","payload":null}}'
)
M_V2 = M_V1.replace('"version":1', '"version":2')


@pytest.fixture
def keys():
    serbero, mostro = ns.Keys.generate(), ns.Keys.generate()
    return {
        "serbero": serbero,
        "secret": Secret(serbero.secret_key().to_hex()),
        "pub": serbero.public_key().to_hex(),
        "mostro": mostro,
        "mostro_pub": mostro.public_key().to_hex(),
    }


def verifies(pub_hex: str, sig_hex: str, message: str) -> bool:
    digest = hashlib.sha256(message.encode()).digest()
    return coincurve.PublicKeyXOnly(bytes.fromhex(pub_hex)).verify(bytes.fromhex(sig_hex), digest)


def tags_of(event) -> list[list[str]]:
    return [t.to_vec() for t in event.tags()]


# --- the message (its plaintext) ---


def test_take_message_json_is_byte_exact_for_both_versions():
    assert take_message_json(DISPUTE, R, 1) == M_V1
    assert take_message_json(DISPUTE, R, 2) == M_V2


@pytest.mark.parametrize(
    "dispute_id, request_id",
    [(DISPUTE.upper(), R), ("not-a-uuid", R), (DISPUTE, 0), (DISPUTE, 2**63), (DISPUTE, True)],
    ids=["uppercase", "not-uuid", "zero-id", "too-big", "bool"],
)
def test_take_message_json_rejects_bad_input(dispute_id, request_id):
    with pytest.raises(ValueError):
        take_message_json(dispute_id, request_id, 1)


def test_new_request_id_is_random_63_bit():
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(1 <= i <= 2**63 - 1 for i in ids)
    assert max(ids) > 2**60  # uniform over the range, not small counters


def test_sign_message_verifies_with_coincurve(keys):
    sig = sign_message(keys["secret"], M_V1)
    assert len(sig) == 128 and verifies(keys["pub"], sig, M_V1)
    assert not verifies(keys["pub"], sig, M_V2)


def test_giftwrap_take_opens_for_mostro_with_fresh_rumor(keys):
    now = int(time.time())
    wrap = build_take_giftwrap(keys["secret"], keys["mostro_pub"], DISPUTE, R, now=now)
    assert wrap.kind().as_u16() == 1059 and tags_of(wrap) == [["p", keys["mostro_pub"]]]
    assert now - 172_800 <= wrap.created_at().as_secs() <= now
    gift = ns.UnwrappedGift.from_gift_wrap(keys["mostro"], wrap)
    rumor = gift.rumor()
    assert gift.sender().to_hex() == keys["pub"] == rumor.author().to_hex()
    assert rumor.kind().as_u16() == 1 and tags_of(rumor) == []
    assert abs(rumor.created_at().as_secs() - int(time.time())) <= 2
    content = rumor.content()
    assert content.startswith("[" + M_V1 + ',"') and content.endswith('"]')
    message, sig = json.loads(content)
    assert compact(message) == M_V1 and verifies(keys["pub"], sig, M_V1)


def test_giftwrap_take_mined_by_hand_meets_bits_and_still_opens(keys):
    now = int(time.time())
    wrap = build_take_giftwrap(keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=10, now=now)
    assert wrap.verify() and ns.get_leading_zero_bits(wrap.id().as_bytes()) >= 10
    assert tags_of(wrap)[0] == ["p", keys["mostro_pub"]] and tags_of(wrap)[1][0] == "nonce"
    assert wrap.author().to_hex() != keys["pub"]
    gift = ns.UnwrappedGift.from_gift_wrap(keys["mostro"], wrap)
    assert gift.sender().to_hex() == keys["pub"] and gift.rumor().created_at().as_secs() == now
    assert json.loads(gift.rumor().content())[0] == json.loads(M_V1)


@pytest.mark.parametrize("bits", [0, 12])
def test_kind14_take_event_tags_mostro_with_an_expiry_and_optional_pow(keys, bits):
    now = int(time.time())
    event = build_take_kind14(
        keys["secret"], keys["mostro_pub"], DISPUTE, R, pow_bits=bits, now=now
    )
    assert event.kind().as_u16() == 14 and event.verify()
    assert event.author().to_hex() == keys["pub"] and event.created_at().as_secs() == now
    tags = tags_of(event)
    assert tags[:2] == [["p", keys["mostro_pub"]], ["expiration", str(now + 3600)]]
    if bits:
        assert len(tags) == 3 and tags[2][0] == "nonce" and tags[2][2] == str(bits)
        assert ns.get_leading_zero_bits(event.id().as_bytes()) >= bits
    else:
        assert len(tags) == 2
    plaintext = ns.nip44_decrypt(keys["mostro"].secret_key(), event.author(), event.content())
    assert plaintext.startswith("[" + M_V2 + ',"') and plaintext.endswith('",null]')
    elements = json.loads(plaintext)
    assert len(elements) == 3 and elements[2] is None
    assert verifies(keys["pub"], elements[1], M_V2)


# --- PoW bounds ---


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def slow_miner(clock: FakeClock, seen: list[int], slow_calls: int):
    def mine(unsigned, bits):
        seen.append(unsigned.created_at().as_secs())
        if len(seen) <= slow_calls:
            clock.t += 6.0
        return default_miner(unsigned, bits)

    return mine


@pytest.mark.parametrize(
    "builder", [build_take_kind14, build_take_giftwrap], ids=["kind14", "giftwrap"]
)
def test_pow_above_24_bits_is_not_attempted(keys, builder):
    with pytest.raises(TakeBuildError) as err:
        builder(
            keys["secret"],
            keys["mostro_pub"],
            DISPUTE,
            R,
            pow_bits=25,
            now=1_790_000_000,
            miner=lambda *_: pytest.fail("mined"),
        )
    assert err.value.reason == "pow_too_high"


@pytest.mark.parametrize(
    "builder", [build_take_kind14, build_take_giftwrap], ids=["kind14", "giftwrap"]
)
def test_two_slow_mines_fail_with_pow_timeout_after_one_rebuild(keys, builder):
    clock, seen = FakeClock(), []
    with pytest.raises(TakeBuildError) as err:
        builder(
            keys["secret"],
            keys["mostro_pub"],
            DISPUTE,
            R,
            pow_bits=4,
            now=1_790_000_000,
            miner=slow_miner(clock, seen, 2),
            clock=clock,
        )
    assert err.value.reason == "pow_timeout"
    assert len(seen) == 2


def test_one_slow_mine_rebuilds_with_fresh_created_at(keys):
    clock, seen = FakeClock(), []
    now = 1_790_000_000
    event = build_take_kind14(
        keys["secret"],
        keys["mostro_pub"],
        DISPUTE,
        R,
        pow_bits=4,
        now=now,
        miner=slow_miner(clock, seen, 1),
        clock=clock,
    )
    assert seen == [now, now + 6]
    assert event.created_at().as_secs() == now + 6
    assert tags_of(event)[1] == ["expiration", str(now + 6 + 3600)]
    assert event.verify() and ns.get_leading_zero_bits(event.id().as_bytes()) >= 4


def test_one_slow_mine_rebuilds_giftwrap_rumor_with_fresh_created_at(keys):
    clock, seen = FakeClock(), []
    now = 1_790_000_000
    wrap = build_take_giftwrap(
        keys["secret"],
        keys["mostro_pub"],
        DISPUTE,
        R,
        pow_bits=4,
        now=now,
        miner=slow_miner(clock, seen, 1),
        clock=clock,
    )
    assert (
        ns.UnwrappedGift.from_gift_wrap(keys["mostro"], wrap).rumor().created_at().as_secs()
        == now + 6
    )


# --- v1 replies (docs/wire-formats.md#take-replies), forged ones included ---


def test_giftwrap_reply_took_dispute_is_read(keys):
    msg = took_message(DISPUTE, R, "aa" * 32, "bb" * 32)
    wrap = giftwrap_reply(
        keys["mostro"], keys["pub"], compact([msg, None]), created_at=1_790_000_000
    )
    reply = read_giftwrap_reply(wrap, keys["secret"], keys["mostro_pub"])
    assert reply is not None
    assert (reply.variant, reply.version, reply.request_id, reply.inner_id, reply.action) == (
        "dispute",
        1,
        R,
        DISPUTE,
        "admin-took-dispute",
    )
    assert reply.payload == msg["dispute"]["payload"]
    assert (reply.created_at, reply.event_id, reply.transport) == (
        1_790_000_000,
        wrap.id().to_hex(),
        "giftwrap",
    )


def test_giftwrap_reply_rumor_kind_is_not_checked(keys):
    wrap = giftwrap_reply(
        keys["mostro"],
        keys["pub"],
        compact([cantdo_message(DISPUTE, None, "not_found"), None]),
        created_at=1_790_000_000,
        rumor_kind=14,
    )
    reply = read_giftwrap_reply(wrap, keys["secret"], keys["mostro_pub"])
    assert (
        reply is not None and reply.payload == {"cant_do": "not_found"} and reply.request_id is None
    )


def test_giftwrap_reply_with_valid_node_signature_is_read(keys):
    msg = cantdo_message(DISPUTE, R, "invalid_pubkey")
    content = compact([msg, node_signature(keys["mostro"], msg)])
    wrap = giftwrap_reply(keys["mostro"], keys["pub"], content, created_at=1_790_000_000)
    assert read_giftwrap_reply(wrap, keys["secret"], keys["mostro_pub"]) is not None


def _giftwrap_case(keys, case):
    msg = took_message(DISPUTE, R, "aa" * 32, "bb" * 32)
    attacker = ns.Keys.generate()
    mostro, pub = keys["mostro"], keys["pub"]
    if case == "x1_wrapped_by_non_mostro_key":
        return giftwrap_reply(mostro, pub, compact([msg, None]), created_at=1, sealer=attacker)
    if case == "addressed_to_someone_else":
        return giftwrap_reply(
            mostro, attacker.public_key().to_hex(), compact([msg, None]), created_at=1
        )
    if case == "not_json":
        return giftwrap_reply(mostro, pub, "hello", created_at=1)
    if case == "not_an_array":
        return giftwrap_reply(mostro, pub, compact(msg), created_at=1)
    if case == "two_variant_keys":
        both = {**msg, **cantdo_message(DISPUTE, R, "x")}
        return giftwrap_reply(mostro, pub, compact([both, None]), created_at=1)
    if case == "element0_not_object":
        return giftwrap_reply(mostro, pub, compact(["dispute", None]), created_at=1)
    if case == "bad_node_signature":
        return giftwrap_reply(mostro, pub, compact([msg, "ab" * 64]), created_at=1)
    if case == "signature_by_other_key":
        return giftwrap_reply(
            mostro, pub, compact([msg, node_signature(attacker, msg)]), created_at=1
        )
    if case == "signature_over_other_message":
        other = took_message(DISPUTE, R + 1, "aa" * 32, "bb" * 32)
        return giftwrap_reply(
            mostro, pub, compact([msg, node_signature(mostro, other)]), created_at=1
        )
    if case == "string_request_id":
        bad = cantdo_message(DISPUTE, None, "x")
        bad["cant-do"]["request_id"] = str(R)
        return giftwrap_reply(mostro, pub, compact([bad, None]), created_at=1)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "x1_wrapped_by_non_mostro_key",
        "addressed_to_someone_else",
        "not_json",
        "not_an_array",
        "two_variant_keys",
        "element0_not_object",
        "bad_node_signature",
        "signature_by_other_key",
        "signature_over_other_message",
        "string_request_id",
    ],
)
def test_giftwrap_reply_is_skipped(keys, case):
    assert (
        read_giftwrap_reply(_giftwrap_case(keys, case), keys["secret"], keys["mostro_pub"]) is None
    )


# --- v2 replies (docs/wire-formats.md#take-replies) ---


def test_kind14_reply_took_dispute_is_read(keys):
    msg = took_message(DISPUTE, R, "aa" * 32, "bb" * 32, version=2)
    event = kind14_reply(
        keys["mostro"], keys["pub"], compact([msg, None, None]), created_at=1_790_000_000
    )
    reply = read_kind14_reply(event, keys["secret"], keys["mostro_pub"])
    assert reply is not None
    assert (
        reply.variant,
        reply.version,
        reply.request_id,
        reply.inner_id,
        reply.created_at,
        reply.transport,
    ) == ("dispute", 2, R, DISPUTE, 1_790_000_000, "nip44")


def test_kind14_reply_with_valid_node_signature_is_read(keys):
    msg = cantdo_message(DISPUTE, R, "invalid_pubkey", version=2)
    event = kind14_reply(
        keys["mostro"],
        keys["pub"],
        compact([msg, node_signature(keys["mostro"], msg), None]),
        created_at=1_790_000_000,
    )
    reply = read_kind14_reply(event, keys["secret"], keys["mostro_pub"])
    assert reply is not None and reply.payload == {"cant_do": "invalid_pubkey"}


def _kind14_case(keys, case):
    msg = cantdo_message(DISPUTE, R, "invalid_pubkey", version=2)
    good = compact([msg, None, None])
    mostro, pub, attacker = keys["mostro"], keys["pub"], ns.Keys.generate()
    if case == "bad_event_signature":
        event = kind14_reply(mostro, pub, good, created_at=1)
        data = json.loads(event.as_json())
        data["sig"] = data["sig"][:-1] + ("0" if data["sig"][-1] != "0" else "1")
        return ns.Event.from_json(json.dumps(data))
    if case == "wrong_author":
        return kind14_reply(mostro, pub, good, created_at=1, author=attacker)
    if case == "missing_p":
        return kind14_reply(mostro, pub, good, created_at=1, tags=[])
    if case == "p_for_someone_else":
        return kind14_reply(
            mostro, pub, good, created_at=1, tags=[ns.Tag.public_key(attacker.public_key())]
        )
    if case == "bad_decrypt":
        body = ns.nip44_encrypt(
            attacker.secret_key(), ns.PublicKey.parse(pub), good, ns.Nip44Version.V2
        )
        return kind14_reply(mostro, pub, good, created_at=1, content=body)
    if case == "two_element_tuple":
        return kind14_reply(mostro, pub, compact([msg, None]), created_at=1)
    if case == "four_element_tuple":
        return kind14_reply(mostro, pub, compact([msg, None, None, None]), created_at=1)
    if case == "identity_proof_present":
        return kind14_reply(mostro, pub, compact([msg, None, [pub, "ab" * 64]]), created_at=1)
    if case == "bad_node_signature":
        return kind14_reply(
            mostro, pub, compact([msg, node_signature(attacker, msg), None]), created_at=1
        )
    if case == "not_json":
        return kind14_reply(mostro, pub, "[oops", created_at=1)
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "bad_event_signature",
        "wrong_author",
        "missing_p",
        "p_for_someone_else",
        "bad_decrypt",
        "two_element_tuple",
        "four_element_tuple",
        "identity_proof_present",
        "bad_node_signature",
        "not_json",
    ],
)
def test_kind14_reply_is_skipped(keys, case):
    assert read_kind14_reply(_kind14_case(keys, case), keys["secret"], keys["mostro_pub"]) is None


# --- filters and the info event ---


def test_reply_and_info_filters():
    assert giftwrap_reply_filter("aa", 100) == {"kinds": [1059], "#p": ["aa"], "since": 100}
    assert kind14_reply_filter("aa", "bb", 100) == {
        "kinds": [14],
        "authors": ["bb"],
        "#p": ["aa"],
        "since": 100,
    }
    assert info_filter("bb") == {"kinds": [38385], "authors": ["bb"], "limit": 5}


def info_event(tags, *, created_at=1000, event_id="e1", pubkey="bb", kind=38385) -> NostrEvent:
    return NostrEvent(
        id=event_id,
        pubkey=pubkey,
        created_at=created_at,
        kind=kind,
        tags=tuple(tuple(t) for t in tags),
        content="",
    )


def test_parse_info_event_reads_tags_and_drops_non_integers():
    ev = info_event(
        [
            ("d", "bb"),
            ("protocol_version", "2"),
            ("pow", "8"),
            ("pow_first_contact", "12"),
            ("mostro_version", "0.18.5"),
            ("z", "info"),
        ]
    )
    info = parse_info_event(ev)
    assert (info.protocol_version, info.pow, info.pow_first_contact, info.mostro_version) == (
        "2",
        8,
        12,
        "0.18.5",
    )
    assert (info.event_id, info.created_at) == ("e1", 1000)
    odd = parse_info_event(info_event([("pow", "eight"), ("pow_first_contact", "-3")]))
    assert (odd.protocol_version, odd.pow, odd.pow_first_contact, odd.mostro_version) == (
        None,
        None,
        None,
        None,
    )


def test_newest_info_event_by_time_then_lowest_id_and_only_from_the_node():
    events = [
        info_event([], created_at=10, event_id="b"),
        info_event([], created_at=10, event_id="a"),
        info_event([], created_at=5, event_id="c"),
        info_event([], created_at=99, event_id="z", pubkey="evil"),
        info_event([], created_at=99, event_id="y", kind=38383),
    ]
    assert newest_info_event(events, "bb", now=1000).id == "a"
    assert newest_info_event([], "bb", now=1000) is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"tags": [("pow", "²")]}, id="superscript-pow"),
        pytest.param({"tags": [("pow_first_contact", "١٢")]}, id="arabic-indic-pow-first-contact"),
        pytest.param({"tags": [("pow", str(2**40 + 1))]}, id="pow-out-of-range"),
        pytest.param({"tags": [("protocol_version", "2\x1b[2J")]}, id="escape-in-protocol-version"),
        pytest.param({"tags": [("mostro_version", "\u202e5.81.0")]}, id="bidi-in-mostro-version"),
        pytest.param({"created_at": 1000 + 601}, id="from-the-future"),
        pytest.param({"size": 64 * 1024 + 1}, id="over-64-kib"),
    ],
)
def test_newest_info_event_skips_a_hostile_newer_event_for_the_good_older_one(bad):
    good = info_event([("protocol_version", "2"), ("pow", "8")], created_at=900, event_id="good")
    fields = {"tags": [("protocol_version", "2")], "created_at": 950, "size": 0, **bad}
    hostile = NostrEvent(
        id="bad",
        pubkey="bb",
        created_at=fields["created_at"],
        kind=38385,
        tags=tuple(tuple(t) for t in fields["tags"]),
        content="",
        size=fields["size"],
    )
    assert newest_info_event([good, hostile], "bb", now=1000).id == "good"
    assert newest_info_event([hostile], "bb", now=1000) is None


def _hostile_reply(keys, case: str, now: int):
    msg = cantdo_message(DISPUTE, R, "not_allowed", version=2)
    created_at = now
    if case == "cant_do_with_escape":
        msg["cant-do"]["payload"] = {"cant_do": "not_allowed\x1b]0;pwned\x07"}
    elif case == "cant_do_with_bidi":
        msg["cant-do"]["payload"] = {"cant_do": "\u202edewolla_ton"}
    elif case == "id_with_newline":
        msg["cant-do"]["id"] = DISPUTE + "\nforged: line"
    elif case == "request_id_beyond_63_bits":
        msg["cant-do"]["request_id"] = 2**63
    elif case == "negative_request_id":
        msg["cant-do"]["request_id"] = -1
    elif case == "huge_version":
        msg["cant-do"]["version"] = 2**70
    elif case == "from_the_future":
        created_at = now + 601
    elif case == "over_64_kib":  # NIP-44 caps the content, so the bulk rides in a tag
        padding = [
            ns.Tag.public_key(ns.PublicKey.parse(keys["pub"])),
            ns.Tag.parse(["x", "p" * 70_000]),
        ]
        return kind14_reply(
            keys["mostro"], keys["pub"], compact([msg, None, None]), created_at=now, tags=padding
        )
    else:
        raise AssertionError(case)
    return kind14_reply(
        keys["mostro"], keys["pub"], compact([msg, None, None]), created_at=created_at
    )


@pytest.mark.parametrize(
    "case",
    [
        "cant_do_with_escape",
        "cant_do_with_bidi",
        "id_with_newline",
        "request_id_beyond_63_bits",
        "negative_request_id",
        "huge_version",
        "from_the_future",
        "over_64_kib",
    ],
)
def test_hostile_kind14_reply_is_skipped_not_raised(keys, case):
    now = int(time.time())
    event = _hostile_reply(keys, case, now)
    assert read_kind14_reply(event, keys["secret"], keys["mostro_pub"], now=now) is None


def test_a_reply_just_inside_the_clock_limit_is_read(keys):
    now = int(time.time())
    msg = cantdo_message(DISPUTE, R, "not_allowed", version=2)
    event = kind14_reply(
        keys["mostro"], keys["pub"], compact([msg, None, None]), created_at=now + 600
    )
    assert read_kind14_reply(event, keys["secret"], keys["mostro_pub"], now=now).payload == {
        "cant_do": "not_allowed"
    }
