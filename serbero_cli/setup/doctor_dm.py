"""Doctor's solver-delivery checks: each solver's NIP-17 inbox relays, and (on request) one test
message to each solver in each of its envelopes, reported per relay."""

from __future__ import annotations

import time
import uuid
from typing import Any

from serbero_cli.config import Config
from serbero_cli.delivery.audience import Audience
from serbero_cli.delivery.inbox import INBOX_KIND, inbox_relays_from
from serbero_cli.domain import headline
from serbero_cli.domain.notifications import Envelope
from serbero_cli.nostr.events import NostrEvent
from serbero_cli.safetext import short
from serbero_cli.setup.checks import FAIL, OK, WARN, Check

TEST_SUBJECT = "test message from serbero doctor"
TEST_NOTE = "No dispute is involved: `serbero doctor --send-test-dm` checks that Serbero's messages reach you."


def inbox_filter(config: Config) -> dict[str, Any] | None:
    """The 10050 events of every solver who takes the nip17 envelope (None: nobody does)."""
    audience = Audience.from_config(config)
    authors = [s for s in audience.solvers if audience.uses(s, Envelope.NIP17)]
    return {"kinds": [INBOX_KIND], "authors": authors} if authors else None


def inbox_row(config: Config, events: list[NostrEvent]) -> Check:
    """One line per nip17 solver: the inbox relays it announces (the ones Serbero would use)."""
    audience = Audience.from_config(config)
    parts = []
    for solver in audience.solvers:
        if not audience.uses(solver, Envelope.NIP17):
            continue
        relays = inbox_relays_from(events, solver)
        parts.append(f"{short(solver)}: {', '.join(relays) if relays else 'none announced'}")
    if not parts:
        return Check("inbox relays", OK, "no solver takes the nip17 envelope")
    return Check(
        "inbox relays",
        OK,
        "; ".join(parts),
        "nip17 messages also go to announced inbox relays (wss only); the configured relays decide "
        "delivery",
    )


async def send_test_dms(config: Config) -> list[Check]:
    """Send each solver one message per envelope; a row per solver with every relay's answer."""
    from serbero_cli.nostr.dm import build_dm
    from serbero_cli.nostr.relays import RelayPool

    audience = Audience.from_config(config)
    rows = []
    pool = RelayPool(config.relays)
    try:
        connected = await pool.connect(config.delivery.send_timeout_seconds)
        if not connected.connected:
            return [
                Check(
                    "test message", FAIL, "no relay reachable: nothing sent", "fix the relays first"
                )
            ]
        for solver in audience.solvers:
            reports, delivered = [], True
            for envelope in audience.envelopes_of(solver):
                marker = str(
                    uuid.uuid4()
                )  # a send-dm must name a dispute: this one names none that exists
                text = headline.message(headline.subject_line(marker, TEST_SUBJECT), TEST_NOTE, [])
                event = build_dm(
                    config.private_key, envelope, solver, marker, text, int(time.time())
                )
                outcome = await pool.publish_json(event.json, config.delivery.send_timeout_seconds)
                delivered = delivered and outcome.ok
                answers = [f"{url} ok" for url in outcome.accepted]
                answers += [f"{url} {why}" for url, why in sorted(outcome.rejected.items())]
                reports.append(f"{envelope}: {', '.join(answers) or outcome.error_message()}")
            rows.append(
                Check(
                    f"test message {short(solver)}",
                    OK if delivered else FAIL,
                    "; ".join(reports),
                    "" if delivered else "no relay accepted it: check the relays' write policy",
                )
            )
    finally:
        await pool.close()
    return rows or [Check("test message", WARN, "no [[solvers]] to send to")]
