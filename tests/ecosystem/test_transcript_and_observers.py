"""The handoff transcript's layout and splitting, observers' retry rules and inbox relays (pure parts)."""

from __future__ import annotations

import re

import pytest

from serbero_cli.delivery.inbox import inbox_relays_from, usable_relay
from serbero_cli.delivery.outbox import observer_retry_due
from serbero_cli.domain.transcript import MAX_MESSAGE_BYTES, transcript_messages
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.store.notifications import OutboxRow

DISPUTE = "5e0c9a1e-2b7d-4c1f-9d3a-0a6f2e8b7c41"
T0 = 1_800_000_000  # 2027-01-15 08:00 UTC


def row(direction: str, party: str, text: str, at: int = T0, i: int = 0) -> dict:
    return {
        "id": i,
        "direction": direction,
        "party": party,
        "content": text,
        "inner_event_created_at": at,
    }


def test_each_message_is_one_line_with_time_and_speaker_and_continuations_are_indented():
    (text,) = transcript_messages(
        DISPUTE,
        [
            row("outbound", "buyer", "Buyer: did you pay?", T0, 1),
            row("inbound", "buyer", "yes\nref 123\n", T0 + 60, 2),
            row("inbound", "seller", "bell\x07 esc\x1b[2J\u202e", T0 + 120, 3),
        ],
    )
    assert text.split("\n") == [
        f"Dispute {DISPUTE} \u00b7 transcript (3 messages, times UTC)",
        "[08:00] serbero \u2192 buyer: Buyer: did you pay?",
        "[08:01] buyer: yes",
        "  ref 123",
        "  ",
        "[08:02] seller: bell\ufffd esc\ufffd[2J\ufffd",
    ]


def test_a_long_transcript_is_split_between_lines_and_every_part_names_the_whole_count():
    rows = [
        row("inbound", "buyer" if i % 2 else "seller", f"message {i} " + "é" * 1500, T0 + i, i)
        for i in range(60)
    ]
    parts = transcript_messages(DISPUTE, rows)
    assert len(parts) >= 4
    for i, part in enumerate(parts, start=1):
        assert len(part.encode("utf-8")) <= MAX_MESSAGE_BYTES
        assert part.split("\n")[0] == (
            f"Dispute {DISPUTE} \u00b7 transcript (60 messages, times UTC, part {i}/{len(parts)})"
        )
    lines = [line for part in parts for line in part.split("\n")[1:]]
    assert [int(re.search(r"message (\d+)", line).group(1)) for line in lines] == list(range(60))


def test_a_single_line_longer_than_a_message_is_cut_on_a_character_boundary():
    parts = transcript_messages(DISPUTE, [row("inbound", "seller", "€" * 40_000)])
    assert len(parts) == 5 and all(
        len(p.encode()) <= MAX_MESSAGE_BYTES for p in parts
    )  # 120 000 bytes
    assert parts[1].split("\n")[1].startswith("  €")  # the rest reads as a continuation
    assert sum(p.count("€") for p in parts) == 40_000


def test_no_messages_means_no_transcript():
    assert transcript_messages(DISPUTE, []) == []


def outbox_row(status: str, attempts: int, claimed_at: int | None) -> OutboxRow:
    return OutboxRow(
        1,
        DISPUTE,
        "ab" * 32,
        "observer",
        status,
        attempts,
        claimed_at,
        "x",
        "mostro",
        None,
        T0,
        None,
    )


@pytest.mark.parametrize(
    "attempts,wait", [(1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (20, 3600)]
)
def test_observer_retries_back_off_from_a_minute_doubling_to_an_hour(attempts, wait):
    failed = outbox_row("failed", attempts, T0)
    assert not observer_retry_due(failed, T0 + wait - 1)
    assert observer_retry_due(failed, T0 + wait)
    assert observer_retry_due(outbox_row("pending", 0, None), T0)


def inbox_event(
    pubkey: str, created_at: int, relays: list[str], event_id: str = "e" * 64
) -> NostrEvent:
    return NostrEvent(event_id, pubkey, created_at, 10050, tuple(("relay", r) for r in relays), "")


@pytest.mark.parametrize(
    "url,usable",
    [
        ("wss://inbox.example.com", True),
        ("wss://relay.example:7777/path", True),
        ("ws://inbox.example.com", False),
        ("wss://127.0.0.1:7000", False),
        ("wss://localhost", False),
        ("wss://10.1.2.3", False),
        ("wss://[::1]:80", False),
        ("wss://192.168.1.9", False),
        ("wss://printer.local", False),
        ("https://example.com", False),
        ("wss://", False),
        ("not a url", False),
    ],
)
def test_inbox_relays_are_wss_to_public_hosts_only(url, usable):
    assert usable_relay(url) is usable


def test_the_newest_inbox_list_wins_and_keeps_at_most_three_usable_relays():
    me = "ab" * 32
    events = [
        inbox_event(me, 100, ["wss://old.example"]),
        inbox_event(
            me,
            200,
            [
                "ws://plain.example",
                "wss://a.example",
                "wss://127.0.0.1",
                "wss://b.example",
                "wss://c.example",
                "wss://d.example",
                "wss://a.example",
            ],
        ),
        inbox_event("cd" * 32, 300, ["wss://someone-else.example"]),
    ]
    assert inbox_relays_from(events, me) == [
        "wss://a.example",
        "wss://b.example",
        "wss://c.example",
    ]
    assert inbox_relays_from(events, "ef" * 32) == []
