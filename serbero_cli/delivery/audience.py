"""Who receives Serbero's messages, and in which envelopes (docs/delivery.md#envelopes).

Routing decisions (which solvers get a summary, a handoff) stay with the phases; this turns a
list of recipients and one text into one outbox delivery per recipient per envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from serbero_cli.domain.notifications import ENVELOPES, Envelope
from serbero_cli.store.notifications import Delivery


@dataclass(frozen=True)
class Audience:
    """Configured solvers and observers (lowercase hex, config order) and each one's envelopes."""

    solvers: tuple[str, ...] = ()
    observers: tuple[str, ...] = ()
    envelopes: Mapping[str, tuple[Envelope, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def from_config(cls, config: Any) -> Audience:
        envelopes = {s.pubkey: tuple(s.envelopes) for s in config.solvers}
        envelopes.update({o.pubkey: tuple(o.envelopes) for o in config.observers})
        return cls(
            tuple(s.pubkey for s in config.solvers),
            tuple(o.pubkey for o in config.observers),
            MappingProxyType(envelopes),
        )

    def envelopes_of(self, pubkey: str) -> tuple[Envelope, ...]:
        return self.envelopes.get(pubkey, ENVELOPES)

    def deliveries(self, recipients: Iterable[str], body: str) -> list[Delivery]:
        """One delivery per recipient per envelope, recipients in the order given."""
        return [
            Delivery(pubkey, envelope, body)
            for pubkey in recipients
            for envelope in self.envelopes_of(pubkey)
        ]

    def fanout(self) -> int:
        """Rows one message to every solver makes (solvers × their envelopes)."""
        return sum(len(self.envelopes_of(s)) for s in self.solvers)

    def uses(self, pubkey: str, envelope: Envelope) -> bool:
        return envelope in self.envelopes_of(pubkey)
