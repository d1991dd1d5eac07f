"""Who may take a dispute (docs/mediation.md#takeover) and how refusals look, on both transports."""

from __future__ import annotations

import random

import nostr_sdk as ns
import pytest

from tests.helpers import wait_for
from tests.simulate.serbero_side import v1_take, v2_take


def take(serbero, node, dispute, keys=None):
    """Send a take in the node's transport; wait for the decision; return (outcome, replies to requester)."""
    keys = keys or serbero.keys
    request_id = random.randint(1, 2**63 - 1)
    build = v2_take if node.protocol == 2 else v1_take
    serbero.publish(build(keys, node.pubkey, dispute, request_id))
    entry = wait_for(lambda: [r for r in node.requests if r.request_id == request_id], timeout=10)[
        0
    ]
    return entry.outcome, request_id


def cant_do_for(serbero, node, request_id):
    return wait_for(
        lambda: [
            r
            for r in serbero.inbox()
            if r.sender == node.pubkey and r.inner.get("request_id") == request_id
        ],
        timeout=10,
    )


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def protocol(request):
    return request.param


def test_non_solver_gets_cant_do_invalid_pubkey(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={})
    dispute = node.open_dispute()
    outcome, request_id = take(serbero, node, dispute)
    assert outcome == "cant_do:invalid_pubkey"
    (reply,) = cant_do_for(serbero, node, request_id)
    assert reply.variant == "cant-do"
    assert (reply.inner["action"], reply.inner["id"], reply.inner["payload"]) == (
        "cant-do",
        dispute,
        {"cant_do": "invalid_pubkey"},
    )
    assert reply.inner["version"] == protocol
    assert node.dispute(dispute).status == "initiated"


def test_unknown_dispute_gets_no_reply(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    outcome, _ = take(serbero, node, "00000000-0000-4000-8000-000000000000")
    assert outcome == "no_reply:unknown_dispute"
    assert [r for r in serbero.inbox() if r.sender == node.pubkey] == []


def test_resolved_dispute_is_refused(make_node, serbero, protocol):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    node.auto_close(dispute, "seller-refunded")
    assert take(serbero, node, dispute)[0] == "cant_do:invalid_pubkey"


def test_holder_may_take_again(make_node, serbero):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    assert take(serbero, node, dispute)[0] == "taken"
    assert take(serbero, node, dispute)[0] == "taken"
    assert len(node.takes(dispute)) == 2


def test_read_solver_cannot_take_from_another_read_solver(make_node, serbero):
    other = ns.Keys.generate().public_key().to_hex()
    node = make_node(protocol=2, solvers={serbero.pubkey: "read", other: "read"})
    dispute = node.open_dispute(holder=other)
    assert take(serbero, node, dispute)[0] == "cant_do:invalid_pubkey"
    assert node.dispute(dispute).holder == other


def test_write_solver_takes_over_from_read_holder_but_not_from_write(make_node, serbero):
    writer, writer2 = ns.Keys.generate(), ns.Keys.generate()
    node = make_node(
        protocol=1,
        solvers={
            serbero.pubkey: "read",
            writer.public_key().to_hex(): "write",
            writer2.public_key().to_hex(): "write",
        },
    )
    dispute = node.open_dispute()
    assert take(serbero, node, dispute)[0] == "taken"
    assert take(serbero, node, dispute, keys=writer)[0] == "taken"
    assert node.dispute(dispute).holder == writer.public_key().to_hex()
    assert take(serbero, node, dispute, keys=writer2)[0] == "cant_do:invalid_pubkey"
    # And the read solver cannot take it back.
    assert take(serbero, node, dispute)[0] == "cant_do:invalid_pubkey"


@pytest.mark.parametrize("reason", ["not_authorized", "invalid_pubkey", "not_found"])
def test_refuse_with_answers_that_reason_and_echoes_the_request(
    make_node, serbero, protocol, reason
):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    node.set_modes(refuse_with=reason)
    dispute = node.open_dispute()
    outcome, request_id = take(serbero, node, dispute)
    assert outcome == f"cant_do:{reason}"
    (reply,) = cant_do_for(serbero, node, request_id)
    assert reply.inner["payload"] == {"cant_do": reason} and reply.inner["id"] == dispute
    assert node.dispute(dispute).status == "initiated"
