"""PartyScript answers each new question once, in order."""

from __future__ import annotations

import time

from serbero_cli.simulate.scripted import PartyScript, step_all
from tests.helpers import wait_for
from tests.simulate.serbero_side import (
    SerberoChannel,
    serbero_inner,
    serbero_kind14,
    serbero_legacy,
    serbero_read,
    v1_take,
    v2_take,
)


def test_party_script_answers_each_question_once(make_node, serbero, parties):
    node = make_node(protocol=2, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v2_take(serbero.keys, node.pubkey, dispute, 1))
    wait_for(lambda: node.takes(dispute), timeout=10)
    buyer, seller = node.party(dispute, "buyer", "kind14"), node.party(dispute, "seller", "legacy")
    parties(buyer)
    parties(seller)
    buyer_ch = SerberoChannel.of(serbero.keys, buyer.trade_pubkey)
    seller_ch = SerberoChannel.of(serbero.keys, seller.trade_pubkey)
    scripts = [
        PartyScript(buyer, ["I paid at noon.", lambda q: f"echo: {q}"]),
        PartyScript(seller, ["Nothing arrived."]),
    ]

    now = int(time.time())
    serbero.publish(
        serbero_kind14(serbero_inner(serbero.keys, "Buyer: when did you pay?", now - 2), buyer_ch)
    )
    serbero.publish(
        serbero_legacy(serbero_inner(serbero.keys, "Seller: did it arrive?", now - 2), seller_ch)
    )
    wait_for(lambda: buyer.messages() and seller.messages(), timeout=10)
    first = step_all(scripts)
    assert [(e.question.content, e.answer) for e in first] == [
        ("Buyer: when did you pay?", "I paid at noon."),
        ("Seller: did it arrive?", "Nothing arrived."),
    ]
    assert step_all(scripts) == []  # nothing new: nobody answers twice

    serbero.publish(
        serbero_kind14(serbero_inner(serbero.keys, "Round 1. Buyer: bank?", now - 1), buyer_ch)
    )
    serbero.publish(
        serbero_legacy(serbero_inner(serbero.keys, "Round 1. Seller: sure?", now - 1), seller_ch)
    )
    wait_for(lambda: len(buyer.messages()) == 2 and len(seller.messages()) == 2, timeout=10)
    second = step_all(scripts)
    assert [(e.question.content, e.answer) for e in second] == [
        ("Round 1. Buyer: bank?", "echo: Round 1. Buyer: bank?"),
        ("Round 1. Seller: sure?", None),
    ]
    assert scripts[1].exhausted and scripts[0].exhausted

    def answers(ch, author):
        return sorted(
            e.content() for _, e in serbero_read(serbero, ch) if e.author().to_hex() == author
        )

    assert wait_for(
        lambda: (
            answers(buyer_ch, buyer.trade_pubkey)
            == ["I paid at noon.", "echo: Round 1. Buyer: bank?"]
        ),
        timeout=10,
    )
    assert answers(seller_ch, seller.trade_pubkey) == ["Nothing arrived."]


def test_repeat_last_keeps_answering(make_node, serbero, parties):
    node = make_node(protocol=1, solvers={serbero.pubkey: "read"})
    dispute = node.open_dispute()
    serbero.publish(v1_take(serbero.keys, node.pubkey, dispute, 1))
    wait_for(lambda: node.takes(dispute), timeout=10)
    buyer = node.party(dispute, "buyer", "dual")
    parties(buyer)
    ch = SerberoChannel.of(serbero.keys, buyer.trade_pubkey)
    script = PartyScript(buyer, ["same"], repeat_last=True)
    now = int(time.time())
    for i, text in enumerate(["q1", "q2", "q3"]):
        serbero.publish(serbero_kind14(serbero_inner(serbero.keys, text, now - 10 + i), ch))
    wait_for(lambda: len(buyer.messages()) == 3, timeout=10)
    assert [e.answer for e in script.step()] == ["same", "same", "same"]
    assert not script.exhausted
