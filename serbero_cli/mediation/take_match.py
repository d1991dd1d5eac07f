"""Which pending take a Mostro reply settles, and how (docs/wire-formats.md#take-replies).

Pure: the reply has already passed the transport checks in `nostr/mostro.py`. Relays replay old
replies and anyone can publish, so a reply only settles a request when its request id, or else
its dispute id plus the 30 s freshness guard, ties it to one. The shared-secret comparison is the
only crypto and can be injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from serbero_cli.keytext import Secret, is_valid_xonly
from serbero_cli.mediation.transport import TakeTransport

if TYPE_CHECKING:
    from serbero_cli.nostr.mostro_messages import MostroReply

FRESHNESS_GUARD_SECONDS = 30
ACTION_TOOK = "admin-took-dispute"


class TakeOutcomeKind(StrEnum):
    """How a take ended (docs/mediation.md#take-outcomes)."""

    TAKEN = "taken"  # the node gave Serbero the dispute and usable trade keys
    REFUSED = "refused"  # the node answered cant-do
    INVALID = (
        "invalid"  # no usable answer: bad keys in the reply, not published, or no reply in time
    )


@dataclass(frozen=True)
class PendingTake:
    """A take request waiting for its reply. sent_at: unix seconds."""

    dispute_id: str
    request_id: int
    sent_at: int
    transport: TakeTransport


@dataclass(frozen=True)
class TakeOutcome:
    """How a take ended.

    reason: the cant-do reason for REFUSED ("unknown" when null), `invalid_reply:<code>` for
    INVALID (codes: missing_keys, bad_key, same_keys, is_serbero, same_secret), None for TAKEN.
    buyer_pubkey / seller_pubkey: lowercase trade pubkeys, set only for TAKEN.
    """

    kind: TakeOutcomeKind
    reason: str | None = None
    buyer_pubkey: str | None = None
    seller_pubkey: str | None = None

    @property
    def trade_pubkeys(self) -> tuple[str, str]:
        """(buyer, seller) of a TAKEN outcome, the only kind that carries them."""
        if self.buyer_pubkey is None or self.seller_pubkey is None:
            raise ValueError(f"a {self.kind} take outcome carries no trade pubkeys")
        return self.buyer_pubkey, self.seller_pubkey


def match_reply(
    pending: list[PendingTake],
    reply: MostroReply,
    *,
    serbero_pubkey: str,
    serbero_secret: Secret | None = None,
    secrets_differ: Callable[[str, str], bool] | None = None,
) -> tuple[str, TakeOutcome] | None:
    """(dispute id, outcome) for the pending take this reply settles, or None to skip it.

    `secrets_differ(buyer, seller)` defaults to comparing the ECDH secrets of `serbero_secret`;
    pass one of the two. Raise ValueError when neither is given.
    """
    if secrets_differ is None:
        if serbero_secret is None:
            raise ValueError("match_reply needs serbero_secret or secrets_differ")
        from serbero_cli.nostr.chat_keys import shared_secrets_differ

        def secrets_differ(buyer: str, seller: str) -> bool:
            return shared_secrets_differ(serbero_secret, buyer, seller)

    request = _pending_for(pending, reply)
    if request is None:
        return None
    payload = reply.payload
    if isinstance(payload, dict) and "cant_do" in payload:  # a refusal
        reason = payload["cant_do"]
        return request.dispute_id, TakeOutcome(
            TakeOutcomeKind.REFUSED, reason if isinstance(reason, str) and reason else "unknown"
        )
    info = _took_info(reply, request.dispute_id)  # else it must be the take itself
    if info is None:
        return None
    return request.dispute_id, validate_taken(
        info, serbero_pubkey=serbero_pubkey, secrets_differ=secrets_differ
    )


def validate_taken(
    info: dict[str, Any], *, serbero_pubkey: str, secrets_differ: Callable[[str, str], bool]
) -> TakeOutcome:
    """taken(info) when the trade pubkeys are usable chat peers, else invalid_reply:<code>."""
    buyer, seller = info.get("buyer_pubkey"), info.get("seller_pubkey")
    if not isinstance(buyer, str) or not isinstance(seller, str) or not buyer or not seller:
        return _invalid("missing_keys")
    if not is_valid_xonly(buyer) or not is_valid_xonly(seller):
        return _invalid("bad_key")
    buyer, seller = buyer.lower(), seller.lower()
    if buyer == seller:
        return _invalid("same_keys")
    if serbero_pubkey.lower() in (buyer, seller):
        return _invalid("is_serbero")
    if not secrets_differ(buyer, seller):
        return _invalid("same_secret")
    return TakeOutcome(TakeOutcomeKind.TAKEN, None, buyer, seller)


def _pending_for(pending: list[PendingTake], reply: MostroReply) -> PendingTake | None:
    """The request a reply answers: by its echoed request id, else (a null request id) by its
    dispute id and the freshness guard."""
    if reply.request_id is not None:
        match = next((p for p in pending if p.request_id == reply.request_id), None)
        # an echoed request id is the strong tie; the dispute id, when present, must still agree
        if match is None or (reply.inner_id is not None and reply.inner_id != match.dispute_id):
            return None
        return match
    fresh = [
        p
        for p in pending
        if p.dispute_id == reply.inner_id
        and reply.created_at >= p.sent_at - FRESHNESS_GUARD_SECONDS
    ]
    return max(fresh, key=lambda p: p.sent_at) if fresh else None


def _took_info(reply: MostroReply, dispute_id: str) -> dict[str, Any] | None:
    """The SolverDisputeInfo of an `admin-took-dispute` for `dispute_id`, or None."""
    if reply.action != ACTION_TOOK or not isinstance(reply.payload, dict):
        return None
    pair = reply.payload.get("dispute")
    if len(reply.payload) != 1 or not isinstance(pair, list) or len(pair) != 2:
        return None
    if pair[0] != dispute_id or not isinstance(pair[1], dict):
        return None
    return pair[1]


def _invalid(code: str) -> TakeOutcome:
    return TakeOutcome(TakeOutcomeKind.INVALID, f"invalid_reply:{code}")
