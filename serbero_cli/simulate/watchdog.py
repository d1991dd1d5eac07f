"""A mostro-watchdog-like observer of Serbero, written from the published contract.

The watchdog (a Telegram bot node operators run) reads Serbero's `send-dm` messages addressed to
it, keeps only the first line `Dispute <id> · <subject>`, and relays three kinds of news to the
group: `mediating`, `mediation could not start` and `handed off[: <reason>]`, where a reason is
one snake_case word (`[a-z0-9_]{1,64}`) — anything else is still a handoff, without the reason.
It relays each (dispute, subject) once. A multi-line message means the watchdog was configured as
a solver instead of an observer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nostr_sdk as ns

from serbero_cli.simulate.mostrix import MostrixReader, SolverMessage

REASON = re.compile(r"^[a-z0-9_]{1,64}$")
HEADLINES = ("mediating", "mediation could not start", "handed off")


@dataclass(frozen=True)
class Headline:
    """One update the watchdog would post to Telegram."""

    dispute_id: str
    kind: str  # mediating | mediation could not start | handed off
    reason: str | None
    one_line: bool  # False when the message had more lines (a solver message, not an observer one)

    @property
    def needs_a_solver(self) -> bool:
        return self.kind != "mediating"


def classify(subject: str) -> tuple[str, str | None] | None:
    """(kind, reason) for a subject the watchdog relays; None for one it ignores. The kind must end
    at the end of the subject, a space, `:` or `(`."""
    for kind in HEADLINES:
        if subject == kind or (subject.startswith(kind) and subject[len(kind)] in " :("):
            reason = None
            rest = subject[len(kind) :]
            if rest.startswith(":"):
                words = rest[1:].split()
                reason = words[0] if words and REASON.match(words[0]) else None
            return kind, reason
    return None


def headline_of(message: SolverMessage) -> Headline | None:
    found = classify(message.subject)
    if found is None or message.header_dispute is None:
        return None
    return Headline(message.dispute_id, found[0], found[1], len(message.lines) == 1)


class WatchdogObserver:
    """Relays each (dispute, subject) once, as the real bot's permanent dedup does."""

    def __init__(self, relay_urls: list[str] | str, keys: ns.Keys | None = None, serbero: str = ""):
        self.keys = keys or ns.Keys.generate()
        self.reader = MostrixReader(relay_urls, self.keys, [serbero] if serbero else [])
        self.relayed: set[tuple[str, str]] = set()

    @property
    def pubkey(self) -> str:
        return self.keys.public_key().to_hex()

    def trust(self, serbero: str) -> None:
        self.reader.trusted = {serbero}

    def poll(self) -> list[Headline]:
        """New headlines since the last poll (each (dispute, subject) at most once, ever)."""
        out = []
        for message in self.reader.messages():
            headline = headline_of(message)
            if headline is None or (message.dispute_id, message.subject) in self.relayed:
                continue
            self.relayed.add((message.dispute_id, message.subject))
            out.append(headline)
        return out

    def received(self) -> list[SolverMessage]:
        """Every message addressed to this observer, relayed or not (for tests that count them)."""
        return self.reader.messages()

    def close(self) -> None:
        self.reader.close()
