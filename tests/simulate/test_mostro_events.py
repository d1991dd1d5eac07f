"""The node's public events (38385 info, 38386 revisions) and its notices to the parties."""

from __future__ import annotations

import random
import time

import nostr_sdk as ns
import pytest

from serbero_cli.simulate import aio
from serbero_cli.simulate.mostro_wire import read_node_messages
from tests.helpers import wait_for
from tests.simulate.serbero_side import v1_take, v2_take


def fetch(serbero, filters):
    return aio.run(serbero.client.fetch(filters))


def info_tags(serbero, node):
    events = fetch(serbero, [{"kinds": [38385], "authors": [node.pubkey], "limit": 5}])
    if not events:
        return None
    newest = max(events, key=lambda e: e.created_at().as_secs())
    return {t.to_vec()[0]: t.to_vec()[1] for t in newest.tags()}


def revision(serbero, node, dispute):
    events = fetch(serbero, [{"kinds": [38386], "authors": [node.pubkey], "#d": [dispute]}])
    newest = max(events, key=lambda e: e.created_at().as_secs())
    return newest.created_at().as_secs(), [t.to_vec() for t in newest.tags()]


def status_of(tags):
    return next(t[1] for t in tags if t[0] == "s")


def take(serbero, node, dispute, bits=0):
    request_id = random.randint(1, 2**63 - 1)
    if node.protocol == 2:
        serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, request_id, bits=bits))
    else:
        serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, request_id, pow_bits=bits))
    return wait_for(lambda: [r for r in node.requests if r.request_id == request_id], timeout=10)[0]


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        pytest.param(
            {"protocol": 2, "pow": 4, "pow_first_contact": 12},
            {"protocol_version": "2", "pow": "4", "pow_first_contact": "12"},
            id="v2",
        ),
        pytest.param(
            {"protocol": 2, "pow": 8, "pow_first_contact": 0},
            {"protocol_version": "2", "pow": "8", "pow_first_contact": "8"},
            id="v2-max-of-both",
        ),
        pytest.param(
            {"protocol": 1, "pow": 8},
            {"protocol_version": "1", "pow": "8", "pow_first_contact": "8"},
            id="v1",
        ),
        pytest.param(
            {"protocol": 2, "info_tags": {"protocol_version": "3"}},
            {"protocol_version": "3"},
            id="override-3",
        ),
        pytest.param(
            {"protocol": 2, "info_tags": {"protocol_version": "x", "pow_first_contact": None}},
            {"protocol_version": "x", "pow_first_contact": None},
            id="override-x-and-remove",
        ),
        pytest.param(
            {"protocol": 2, "info_tags": {"mostro_version": "0.17.0"}},
            {"mostro_version": "0.17.0"},
            id="override-version",
        ),
    ],
)
def test_info_event_tags(make_node, serbero, kwargs, expected):
    node = make_node(**kwargs)
    tags = info_tags(serbero, node)
    assert tags["d"] == node.pubkey and tags["z"] == "info" and tags.get("mostro_version")
    for key, value in expected.items():
        assert tags.get(key) == value


def test_a_daemon_older_than_0_18_publishes_no_protocol_version(make_node, serbero):
    tags = info_tags(serbero, make_node(protocol=None))
    assert "protocol_version" not in tags and "pow_first_contact" not in tags and tags["pow"] == "0"


def test_publish_info_false_publishes_nothing(make_node, serbero):
    node = make_node(protocol=2, publish_info=False)
    node.open_dispute()  # something else by the node does reach the relay
    assert info_tags(serbero, node) is None


def test_set_protocol_republishes_a_newer_info_event(make_node, serbero):
    node = make_node(protocol=2)
    first = max(
        e.created_at().as_secs()
        for e in fetch(serbero, [{"kinds": [38385], "authors": [node.pubkey]}])
    )
    node.set_protocol(1)
    assert info_tags(serbero, node)["protocol_version"] == "1"
    newest = max(
        e.created_at().as_secs()
        for e in fetch(serbero, [{"kinds": [38385], "authors": [node.pubkey]}])
    )
    assert newest > first


@pytest.mark.parametrize("protocol", [1, 2], ids=["v1", "v2"])
def test_take_publishes_in_progress_revision_without_p_tag_and_tells_both_parties(
    make_node, serbero, parties, protocol
):
    node = make_node(protocol=protocol, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute(initiator="seller")
    opened_at, tags = revision(serbero, node, dispute)
    assert status_of(tags) == "initiated"
    request = take(serbero, node, dispute)
    assert request.outcome == "taken"
    taken_at, tags = wait_for(
        lambda: (lambda r: r if status_of(r[1]) == "in-progress" else None)(
            revision(serbero, node, dispute)
        ),
        timeout=10,
    )
    assert taken_at > opened_at
    assert not [t for t in tags if t[0] == "p"]
    assert ["initiator", "seller"] in tags and ["z", "dispute"] in tags
    record = node.dispute(dispute)
    for role in ("buyer", "seller"):
        party = node.party(dispute, role)
        parties(party)
        assert wait_for(party.learn_admin, timeout=10) == serbero.pubkey
        # The raw notice: an order message about the ORDER id, in the node's transport, request_id echoed.
        events = fetch(serbero, [{"kinds": [1059, 14], "#p": [party.trade_pubkey]}])
        (notice,) = read_node_messages(events, record.trade_keys(role), node.pubkey)
        assert notice.transport == ("nip44" if protocol == 2 else "giftwrap")
        assert notice.variant == "order" and notice.inner["id"] == record.order_id
        assert (
            notice.inner["request_id"] == request.request_id and notice.inner["version"] == protocol
        )
        assert notice.inner["payload"] == {"peer": {"pubkey": serbero.pubkey, "reputation": None}}


def test_takeover_by_a_write_solver_is_a_real_request_with_a_newer_revision(
    make_node, serbero, parties
):
    writer = ns.Keys.generate()
    writer_hex = writer.public_key().to_hex()
    node = make_node(protocol=2, pow_first_contact=8, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    assert take(serbero, node, dispute, bits=8).outcome == "taken"
    ours_at, _ = wait_for(
        lambda: (lambda r: r if status_of(r[1]) == "in-progress" else None)(
            revision(serbero, node, dispute)
        ),
        timeout=10,
    )
    buyer = node.party(dispute, "buyer", chat="dual")
    parties(buyer)
    assert wait_for(buyer.learn_admin, timeout=10) == serbero.pubkey

    assert node.takeover(dispute, writer) == "taken"
    assert node.solvers[writer_hex] == "write" and node.dispute(dispute).holder == writer_hex
    assert node.request_log[-1].pow_bits >= 8  # a first-contact key had to mine
    theirs_at, tags = wait_for(
        lambda: (lambda r: r if r[0] > ours_at else None)(revision(serbero, node, dispute)),
        timeout=10,
    )
    assert status_of(tags) == "in-progress" and not [t for t in tags if t[0] == "p"]
    assert wait_for(lambda: buyer.learn_admin() == writer_hex, timeout=10)
    events = fetch(serbero, [{"kinds": [14], "authors": [node.pubkey], "#p": [writer_hex]}])
    (reply,) = read_node_messages(events, writer, node.pubkey)
    assert reply.inner["action"] == "admin-took-dispute" and reply.inner["id"] == dispute


def test_takeover_refused_leaves_the_holder(make_node, serbero):
    reader = ns.Keys.generate()
    node = make_node(
        protocol=1, solvers={serbero.pubkey: "read", reader.public_key().to_hex(): "read"}
    )
    dispute = node.open_dispute(holder=serbero.pubkey)
    assert node.takeover(dispute, reader) == "cant_do:invalid_pubkey"
    assert node.dispute(dispute).holder == serbero.pubkey


def test_takeover_without_a_running_node_times_out(make_node, serbero):
    node = make_node(protocol=2, start=False)
    dispute = node.open_dispute()
    assert node.takeover(dispute, ns.Keys.generate(), timeout=0.5) == "timeout"


@pytest.mark.parametrize("status", ["settled", "seller-refunded"])
def test_auto_close_publishes_a_newer_terminal_revision(make_node, serbero, status):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute(holder=serbero.pubkey)
    before, _ = revision(serbero, node, dispute)
    at = node.auto_close(dispute, status)
    assert at > before
    after, tags = wait_for(
        lambda: (lambda r: r if r[0] == at else None)(revision(serbero, node, dispute)), timeout=10
    )
    assert status_of(tags) == status and ["initiator", "buyer"] in tags
    assert node.dispute(dispute).status == status


def test_revision_times_only_move_forward_even_within_one_second(make_node, serbero):
    node = make_node(protocol=2)
    dispute = node.open_dispute(created_at=int(time.time()))
    times = [node.dispute(dispute).last_revision_at]
    for status in ("in-progress", "in-progress", "settled"):
        node.set_status(dispute, status)
        times.append(node.dispute(dispute).last_revision_at)
    assert times == sorted(set(times))
