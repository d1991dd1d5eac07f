"""The `mostro` envelope byte for byte: Serbero's send-dm against a reader written from the contract.

Mostrix and mostro-watchdog re-serialize the message the way Rust's serde does and verify the
signature against those bytes, so any difference in key order or escaping silently drops the
message. These tests build real events and open them with `serbero_cli.simulate.mostrix`, whose
serializer is written independently of the sender.
"""

from __future__ import annotations

import json

import nostr_sdk as ns
import pytest

from serbero_cli.keytext import Secret
from serbero_cli.nostr.dm import build_mostro_dm, send_dm_message_json, send_dm_plaintext
from serbero_cli.simulate.mostrix import Rejected, open_message, serde_message, serde_string

DISPUTE = "5e0c9a1e-2b7d-4c1f-9d3a-0a6f2e8b7c41"

TEXTS = {
    "quotes": "She said \"paid\" and 'sent'",
    "backslashes": "C:\\path\\to\\file \\n is not a newline",
    "newlines": "Dispute x · new\nline two\n\nafter a blank line",
    "tabs": "col1\tcol2\t\tcol3",
    "carriage-return": "windows\r\nline",
    "control-characters": "nul\x00 bell\x07 esc\x1b[31m us\x1f del\x7f",
    "backspace-formfeed": "back\bspace form\ffeed",
    "line-separator": "before\u2028after\u2029para",
    "emoji": "✅ paid 💸 100 € 🇦🇷",
    "non-latin": "Платёж получен · 付款已收到 · تم استلام الدفعة · पैसा मिल गया",
    "long": "x" * 20_000,
}


@pytest.mark.parametrize("name", TEXTS)
def test_message_json_is_what_serde_writes(name):
    text = TEXTS[name]
    ours = send_dm_message_json(DISPUTE, text)
    body = json.loads(ours)["dm"]
    assert ours == serde_message("dm", body)
    assert ours.startswith(
        '{"dm":{"version":2,"request_id":null,"trade_index":null,"id":"'
        + DISPUTE
        + '","action":"send-dm","payload":{"text_message":'
    )
    assert body["payload"]["text_message"] == text


def test_escaping_follows_serde_exactly():
    assert (
        serde_string('a"b\\c\n\t\r\b\f\x01\x1f\x7f\u2028é')
        == '"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f\u2028é"'
    )
    assert "\\u001b" in send_dm_message_json(DISPUTE, "\x1b")  # lowercase hex, four digits


def test_a_lone_surrogate_is_replaced_before_anything_is_signed():
    message = send_dm_message_json(DISPUTE, "broken \ud800 text")
    assert "\ud800" not in message and "\ufffd" in message
    message.encode("utf-8")


@pytest.mark.parametrize("name", TEXTS)
def test_a_mostrix_reader_opens_and_verifies_every_text(name):
    serbero, solver = ns.Keys.generate(), ns.Keys.generate()
    signed = build_mostro_dm(
        Secret(serbero.secret_key().to_hex()),
        solver.public_key().to_hex(),
        DISPUTE,
        TEXTS[name],
        now=1_800_000_000,
    )
    event = ns.Event.from_json(signed.json)
    message = open_message(event, solver, {serbero.public_key().to_hex()})
    assert message.text == TEXTS[name] and message.dispute_id == DISPUTE
    assert event.kind().as_u16() == 14 and event.created_at().as_secs() == 1_800_000_000
    assert [t.to_vec() for t in event.tags()] == [["p", solver.public_key().to_hex()]]


def test_the_envelope_is_a_signed_three_tuple_with_null_identity():
    serbero = ns.Keys.generate()
    plaintext = send_dm_plaintext(Secret(serbero.secret_key().to_hex()), DISPUTE, "hello")
    message, signature, identity = json.loads(plaintext)
    assert identity is None and len(signature) == 128 and set(message) == {"dm"}
    assert plaintext.startswith("[" + send_dm_message_json(DISPUTE, "hello") + ",")


def test_a_tampered_message_fails_the_readers_signature_check():
    serbero, solver = ns.Keys.generate(), ns.Keys.generate()
    secret = Secret(serbero.secret_key().to_hex())
    plaintext = send_dm_plaintext(secret, DISPUTE, "original").replace("original", "tampered")
    content = ns.nip44_encrypt(
        serbero.secret_key(), solver.public_key(), plaintext, ns.Nip44Version.V2
    )
    event = (
        ns.EventBuilder(ns.Kind(14), content)
        .tags([ns.Tag.public_key(solver.public_key())])
        .finalize(serbero)
    )
    with pytest.raises(Rejected, match="signature"):
        open_message(event, solver, {serbero.public_key().to_hex()})


def test_a_reader_drops_a_send_dm_from_an_untrusted_author():
    stranger, solver = ns.Keys.generate(), ns.Keys.generate()
    signed = build_mostro_dm(
        Secret(stranger.secret_key().to_hex()),
        solver.public_key().to_hex(),
        DISPUTE,
        "hi",
        now=1_800_000_000,
    )
    with pytest.raises(Rejected, match="trusted"):
        open_message(
            ns.Event.from_json(signed.json), solver, {ns.Keys.generate().public_key().to_hex()}
        )
