"""MostroNodeSim's two transports against hand-built Serbero requests on the real relay."""

from __future__ import annotations

import json
import random
import time

import nostr_sdk as ns
import pytest

from serbero_cli.simulate import crypto
from tests.helpers import wait_for
from tests.simulate.serbero_side import take_json, v1_take, v2_take


def rid() -> int:
    return random.randint(1, 2**63 - 1)


def replies_from(serbero, node, n: int = 1):
    return wait_for(
        lambda: (lambda r: r if len(r) >= n else None)(
            [x for x in serbero.inbox() if x.sender == node.pubkey]
        ),
        timeout=10,
    )


def dropped(node, reason: str):
    return wait_for(lambda: [d for d in node.dropped if d.reason == reason], timeout=10)


def assert_no_reply(serbero, node):
    assert [x for x in serbero.inbox() if x.sender == node.pubkey] == []


# -- v1 ------------------------------------------------------------------------------------------
def test_protocol_v1_take_is_accepted_and_answered_with_a_gift_wrap(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    request_id = rid()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, request_id))
    (reply,) = replies_from(serbero, node)
    assert reply.kind == 1059 and reply.sender == node.pubkey and reply.rumor_kind == 1
    assert len(reply.array) == 2 and reply.array[1] is None
    inner = reply.inner
    assert reply.variant == "dispute"
    assert (inner["version"], inner["request_id"], inner["id"], inner["action"]) == (
        1,
        request_id,
        dispute,
        "admin-took-dispute",
    )
    payload_id, info = inner["payload"]["dispute"]
    record = node.dispute(dispute)
    assert payload_id == dispute and info["id"] == record.order_id
    assert (
        info["buyer_pubkey"] == record.buyer_pubkey
        and info["seller_pubkey"] == record.seller_pubkey
    )
    assert (
        crypto.is_valid_xonly(info["buyer_pubkey"])
        and info["buyer_pubkey"] != info["seller_pubkey"]
    )
    assert abs(reply.created_at - time.time()) < 10  # a fresh rumor, not a replay
    assert node.requests == [("giftwrap", serbero.pubkey, dispute, request_id, "taken")]
    assert node.request_log[0].version == 1
    assert record.status == "in-progress" and record.holder == serbero.pubkey


def test_protocol_v1_unsigned_request_is_accepted(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, None, signed=False))
    wait_for(lambda: node.takes(dispute), timeout=10)


def test_protocol_v1_reply_rumor_can_be_kind_14(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    node.set_modes(rumor_kind=14)
    dispute = node.open_dispute()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, rid()))
    assert replies_from(serbero, node)[0].rumor_kind == 14


@pytest.mark.parametrize(
    "kwargs,reason",
    [
        pytest.param({"rumor_at": int(time.time()) - 30}, "stale", id="rumor-older-than-10s"),
        pytest.param({"bad_sig": True}, "bad_signature", id="signature-by-another-key"),
        pytest.param({"tail": ",null"}, "tuple_length", id="three-elements-on-v1"),
    ],
)
def test_protocol_v1_gates_drop_bad_requests_silently(make_node, serbero, kwargs, reason):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    if "rumor_at" in kwargs:
        kwargs["rumor_at"] = int(time.time()) - 30
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, rid(), **kwargs))
    dropped(node, reason)
    assert node.requests == [] and node.dispute(dispute).status == "initiated"
    assert_no_reply(serbero, node)


def test_protocol_v1_seal_signer_must_be_the_rumor_author(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    msg = take_json(dispute, rid(), 1)
    impostor = ns.Keys.generate()
    # The rumor claims Serbero as author, but the impostor seals it.
    rumor = ns.EventBuilder(ns.Kind(1), "[" + msg + ",null]").finalize_unsigned(
        serbero.keys.public_key()
    )
    serbero.publish(ns.nip59_make_gift_wrap(impostor, ns.PublicKey.parse(node.pubkey), rumor))
    wait_for(lambda: node.dropped, timeout=10)
    assert node.dropped[0].reason in ("unwrap", "sender_mismatch") and node.requests == []


def test_protocol_v1_node_enforces_pow_on_the_wrap(make_node, serbero):
    node = make_node(protocol=1, pow=8, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    unmined = v1_take(serbero.keys, node.pubkey, dispute, rid())
    if crypto.leading_zero_bits(unmined.id().to_hex()) >= 8:  # 1 in 256: draw again
        unmined = v1_take(serbero.keys, node.pubkey, dispute, rid())
    serbero.publish(unmined)
    dropped(node, "pow")
    request_id = rid()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, request_id, pow_bits=8))
    wait_for(lambda: node.takes(dispute), timeout=10)
    assert node.request_log[-1].pow_bits >= 8 and node.requests[-1].request_id == request_id


def test_protocol_v1_node_ignores_kind_14_requests(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, rid()))
    dropped(node, "wrong_kind")
    assert node.requests == []
    assert_no_reply(serbero, node)


def test_node_without_protocol_tag_speaks_gift_wrap(make_node, serbero):
    node = make_node(protocol=None, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, rid()))
    assert replies_from(serbero, node)[0].kind == 1059


# -- v2 ------------------------------------------------------------------------------------------
def test_take_with_first_contact_pow_is_accepted_and_answered_in_kind_14(make_node, serbero):
    node = make_node(protocol=2, pow=0, pow_first_contact=12, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    request_id = rid()
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, request_id, bits=12))
    (reply,) = replies_from(serbero, node)
    assert reply.kind == 14 and reply.sender == node.pubkey
    assert [t[0] for t in reply.tags] == ["p", "expiration"] and reply.tags[0][1] == serbero.pubkey
    assert abs(int(reply.tags[1][1]) - (time.time() + 30 * 86400)) < 60
    assert len(reply.array) == 3 and reply.array[1:] == [None, None]
    assert (reply.inner["version"], reply.inner["request_id"], reply.inner["action"]) == (
        2,
        request_id,
        "admin-took-dispute",
    )
    info = reply.inner["payload"]["dispute"][1]
    assert info["buyer_pubkey"] == node.dispute(dispute).buyer_pubkey
    assert node.requests == [("nip44", serbero.pubkey, dispute, request_id, "taken")]
    assert node.request_log[0].version == 2 and node.request_log[0].pow_bits >= 12


def test_under_mined_take_gets_silence(make_node, serbero):
    node = make_node(protocol=2, pow_first_contact=12, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    event = v2_take(serbero.keys, node.pubkey, dispute, rid(), bits=6)
    while crypto.leading_zero_bits(event.id().to_hex()) >= 12:  # mined past the bar by luck
        event = v2_take(serbero.keys, node.pubkey, dispute, rid(), bits=6)
    serbero.publish(event)
    dropped(node, "first_contact_pow")
    assert node.requests == [] and node.dispute(dispute).status == "initiated"
    assert_no_reply(serbero, node)


def test_base_pow_applies_to_everyone(make_node, serbero):
    node = make_node(protocol=2, pow=8, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    event = v2_take(serbero.keys, node.pubkey, dispute, rid())
    if crypto.leading_zero_bits(event.id().to_hex()) < 8:
        serbero.publish(event)
        dropped(node, "pow")
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, rid(), bits=8))
    wait_for(lambda: node.takes(dispute), timeout=10)


def test_active_holder_needs_no_first_contact_pow(make_node, serbero):
    node = make_node(protocol=2, pow_first_contact=12, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute(holder=serbero.pubkey)
    assert serbero.pubkey in node.active_keys()
    event = v2_take(serbero.keys, node.pubkey, dispute, rid(), bits=0)
    serbero.publish(event)
    wait_for(lambda: node.takes(dispute, serbero.pubkey), timeout=10)
    assert node.request_log[0].pow_bits < 12 or crypto.leading_zero_bits(event.id().to_hex()) >= 12


def test_node_ignores_gift_wraps(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, rid()))
    dropped(node, "wrong_kind")
    assert node.requests == []
    assert_no_reply(serbero, node)


def test_replayed_event_id_is_dropped(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    event = v2_take(serbero.keys, node.pubkey, dispute, rid())
    serbero.publish(event)
    wait_for(lambda: node.requests, timeout=10)
    node.inject(event)  # the same id delivered again within 60 s
    assert [d.reason for d in node.dropped] == ["replay"] and len(node.requests) == 1


@pytest.mark.parametrize(
    "build,reason",
    [
        pytest.param(
            lambda s, m, d: v2_take(s, m, d, rid(), created_at=int(time.time()) - 30),
            "stale",
            id="created-more-than-10s-ago",
        ),
        pytest.param(
            lambda s, m, d: v2_take(s, m, d, rid(), payload="[" + take_json(d, 1, 2) + ",null]"),
            "tuple_length",
            id="two-elements",
        ),
        pytest.param(
            lambda s, m, d: v2_take(
                s, m, d, rid(), payload="[" + take_json(d, 1, 2) + ',null,"proof"]'
            ),
            "identity_proof",
            id="identity-proof-present",
        ),
        pytest.param(
            lambda s, m, d: v2_take(s, m, d, rid(), bad_sig=True),
            "bad_signature",
            id="element-2-signed-by-another-key",
        ),
        pytest.param(
            lambda s, m, d: v2_take(
                s, m, d, rid(), encrypt_to=ns.Keys.generate().public_key().to_hex()
            ),
            "decrypt",
            id="encrypted-to-another-key",
        ),
        pytest.param(
            lambda s, m, d: v2_take(s, m, d, rid(), payload="not json"), "bad_payload", id="garbage"
        ),
    ],
)
def test_gates_drop_bad_requests_silently(make_node, serbero, build, reason):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(build(serbero.keys, node.pubkey, dispute))
    dropped(node, reason)
    assert node.requests == [] and node.dispute(dispute).status == "initiated"
    assert_no_reply(serbero, node)


def test_unsigned_element_2_is_accepted(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, rid(), signed=False))
    wait_for(lambda: node.takes(dispute), timeout=10)


def test_forged_event_signature_is_dropped(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    good = v2_take(serbero.keys, node.pubkey, dispute, rid())
    doc = json.loads(good.as_json())
    doc["sig"] = v2_take(
        serbero.keys, node.pubkey, dispute, rid()
    ).signature()  # valid sig of another id
    forged = ns.Event.from_json(json.dumps(doc))
    node.inject(forged)  # a relay would refuse to store it, so hand it to the gates directly
    assert [d.reason for d in node.dropped] == ["event_signature"]
