"""Each MostroNodeSim mode does what its name says, on the real relay."""

from __future__ import annotations

import random
import time

import pytest

from tests.helpers import wait_for
from tests.simulate.serbero_side import v1_take, v2_take


def send_take(serbero, node, dispute) -> int:
    request_id = random.randint(1, 2**63 - 1)
    build = v2_take if node.protocol == 2 else v1_take
    serbero.publish(build(serbero.keys, node.pubkey, dispute, request_id))
    return request_id


def decided(node, request_id):
    return wait_for(lambda: [r for r in node.requests if r.request_id == request_id], timeout=10)[0]


def node_replies(serbero, node):
    return [r for r in serbero.inbox() if r.sender == node.pubkey]


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def protocol(request):
    return request.param


def test_silent_node_neither_answers_nor_changes_anything(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    node.set_modes(silent=True)
    dispute = node.open_dispute()
    assert decided(node, send_take(serbero, node, dispute)).outcome == "no_reply:silent"
    assert node_replies(serbero, node) == []
    assert node.dispute(dispute).status == "initiated"
    assert node.party(dispute, "buyer").learn_admin() is None


def test_drop_reply_takes_the_dispute_but_never_answers(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    node.set_modes(drop_reply=True)
    dispute = node.open_dispute()
    assert decided(node, send_take(serbero, node, dispute)).outcome == "taken"
    buyer = node.party(dispute, "buyer")
    assert wait_for(buyer.learn_admin, timeout=10) == serbero.pubkey
    assert node_replies(serbero, node) == []
    buyer.close()


def test_delay_holds_the_reply_back(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    node.set_modes(delay_seconds=1.0)
    dispute = node.open_dispute()
    started = time.monotonic()
    send_take(serbero, node, dispute)
    wait_for(lambda: node_replies(serbero, node), timeout=10)
    assert time.monotonic() - started >= 1.0


def test_duplicate_reply_sends_two_events(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    node.set_modes(duplicate_reply=True)
    dispute = node.open_dispute()
    request_id = send_take(serbero, node, dispute)
    replies = wait_for(
        lambda: (lambda r: r if len(r) == 2 else None)(node_replies(serbero, node)), timeout=10
    )
    assert replies[0].event_id != replies[1].event_id
    assert {r.inner["request_id"] for r in replies} == {request_id}
    assert {r.inner["action"] for r in replies} == {"admin-took-dispute"}
    assert len(node.takes(dispute)) == 1


def test_reply_for_other_dispute_names_another_id_and_takes_nothing(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    node.set_modes(reply_for_other_dispute=True)
    dispute = node.open_dispute()
    request_id = send_take(serbero, node, dispute)
    assert decided(node, request_id).outcome == "no_reply:other_dispute"
    (reply,) = wait_for(lambda: node_replies(serbero, node), timeout=10)
    assert (
        reply.inner["id"] != dispute and reply.inner["payload"]["dispute"][0] == reply.inner["id"]
    )
    assert reply.inner["request_id"] == request_id
    assert node.dispute(dispute).status == "initiated"


def test_reply_for_other_dispute_then_real(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    other = "11111111-1111-4111-8111-111111111111"
    node.set_modes(reply_for_other_dispute="then_real", other_dispute_id=other)
    dispute = node.open_dispute()
    send_take(serbero, node, dispute)
    replies = wait_for(
        lambda: (lambda r: r if len(r) == 2 else None)(node_replies(serbero, node)), timeout=10
    )
    assert sorted(r.inner["id"] for r in replies) == sorted([other, dispute])
    assert node.dispute(dispute).status == "in-progress"


def test_identical_trade_keys(make_node, serbero):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    node.set_modes(identical_trade_keys=True)
    dispute = node.open_dispute()
    send_take(serbero, node, dispute)
    (reply,) = wait_for(lambda: node_replies(serbero, node), timeout=10)
    info = reply.inner["payload"]["dispute"][1]
    assert info["buyer_pubkey"] == info["seller_pubkey"] == node.dispute(dispute).buyer_pubkey


def test_missing_trade_keys(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    node.set_modes(missing_trade_keys=True)
    dispute = node.open_dispute()
    send_take(serbero, node, dispute)
    (reply,) = wait_for(lambda: node_replies(serbero, node), timeout=10)
    info = reply.inner["payload"]["dispute"][1]
    assert "buyer_pubkey" not in info and "seller_pubkey" not in info and info["id"]


def test_per_dispute_modes_leave_other_disputes_alone(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    quiet, normal = node.open_dispute(), node.open_dispute()
    node.set_modes(quiet, silent=True)
    assert decided(node, send_take(serbero, node, quiet)).outcome == "no_reply:silent"
    assert decided(node, send_take(serbero, node, normal)).outcome == "taken"
    assert not node.modes.silent


def test_preseeded_old_replies_are_genuine_mostro_refusals_dated_in_the_past(
    make_node, serbero, protocol
):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    other = "22222222-2222-4222-8222-222222222222"
    ids = node.preseed_old_replies(other, "not_authorized", 120)
    assert len(ids) == 1
    (reply,) = wait_for(lambda: node_replies(serbero, node), timeout=10)
    assert reply.kind == (14 if protocol == 2 else 1059)
    assert reply.inner["id"] == other and reply.inner["payload"] == {"cant_do": "not_authorized"}
    assert reply.inner["request_id"] is None
    assert abs(reply.created_at - (time.time() - 120)) < 5
    assert node.requests == []


def test_attacker_reply_is_not_from_mostro(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    attack = node.attacker_reply(dispute)
    (reply,) = wait_for(
        lambda: [r for r in serbero.inbox() if r.sender == attack.keys.public_key().to_hex()],
        timeout=10,
    )
    assert reply.sender != node.pubkey
    info = reply.inner["payload"]["dispute"][1]
    assert reply.inner["id"] == dispute and reply.inner["action"] == "admin-took-dispute"
    assert (info["buyer_pubkey"], info["seller_pubkey"]) == (
        attack.buyer_pubkey,
        attack.seller_pubkey,
    )
    assert attack.buyer_pubkey != node.dispute(dispute).buyer_pubkey
    assert node_replies(serbero, node) == []


def test_attacker_on_request_echoes_the_request_id_while_the_node_stays_silent(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    node.set_modes(attacker_on_request=True, silent=True)
    dispute = node.open_dispute()
    request_id = send_take(serbero, node, dispute)
    (reply,) = wait_for(lambda: serbero.inbox(), timeout=10)
    assert reply.sender != node.pubkey and reply.inner["request_id"] == request_id
    assert decided(node, request_id).outcome == "no_reply:silent"


def test_null_request_id_answers_without_echo(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    node.set_modes(null_request_id=True)
    dispute = node.open_dispute()
    request_id = send_take(serbero, node, dispute)
    (reply,) = wait_for(lambda: node_replies(serbero, node), timeout=10)
    assert reply.inner["request_id"] is None and reply.inner["id"] == dispute
    assert decided(node, request_id).request_id == request_id  # the log keeps what was asked
