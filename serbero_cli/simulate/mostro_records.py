"""The simulated Mostro node's state: modes, dispute records, what it decided, and who may take.

Plain data plus one pure decision (`decide_take`: who may take a dispute), kept apart from the
node's I/O in mostro_node.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import nostr_sdk as ns

OPEN_STATUSES = ("initiated", "in-progress")


@dataclass
class NodeModes:
    """How the node misbehaves; set node-wide or per dispute with `set_modes`."""

    silent: bool = False  # no reply and no side effect (an internal error on the node)
    drop_reply: bool = False  # the take happens, but the requester's reply is never sent
    delay_seconds: float = 0.0  # handle the request this long after it arrives
    duplicate_reply: bool = False  # the requester's reply goes out twice (two events)
    reply_for_other_dispute: bool | str = (
        False  # True: only a reply naming another dispute; "then_real"
    )
    other_dispute_id: str | None = None  # the dispute those replies name (default: a fresh uuid)
    refuse_with: str | None = None  # always answer cant-do with this reason
    identical_trade_keys: bool = False  # SolverDisputeInfo names the buyer's key twice
    missing_trade_keys: bool = False  # SolverDisputeInfo lacks buyer_pubkey / seller_pubkey
    attacker_on_request: bool = (
        False  # a non-Mostro key answers each request first (request_id echoed)
    )
    null_request_id: bool = (
        False  # answer with "request_id": null instead of echoing it (older nodes)
    )
    rumor_kind: int = 1  # v1 replies: the rumor kind (mostrod sends 1; some simulators 14)


@dataclass
class DisputeRecord:
    """One dispute on the node, with the order's trade keys (tests read them to build PartySims)."""

    dispute_id: str
    order_id: str
    status: str  # initiated | in-progress | settled | seller-refunded
    initiator: str  # buyer | seller
    buyer_keys: ns.Keys
    seller_keys: ns.Keys
    opened_at: int
    holder: str | None = None  # the solver pubkey that holds it
    last_revision_at: int = 0  # created_at of the newest 38386 revision published
    taken_at: int = 0
    last_notice_at: int = 0  # created_at of the newest peer notice sent to the parties
    modes: NodeModes | None = None  # per-dispute override of the node's modes

    @property
    def buyer_pubkey(self) -> str:
        return self.buyer_keys.public_key().to_hex()

    @property
    def seller_pubkey(self) -> str:
        return self.seller_keys.public_key().to_hex()

    def trade_keys(self, role: str) -> ns.Keys:
        return self.buyer_keys if role == "buyer" else self.seller_keys


class TakeRequest(NamedTuple):
    """One take request the node decided on; outcome: taken | cant_do:<reason> | no_reply:<why>."""

    transport: str
    author: str
    dispute_id: str | None
    request_id: int | None
    outcome: str


@dataclass(frozen=True)
class TakeDetail:
    """Everything known about a decided request (for assertions beyond `TakeRequest`)."""

    request: TakeRequest
    event_id: str
    version: Any
    pow_bits: int
    created_at: int
    received_at: int
    message: dict[str, Any]


@dataclass(frozen=True)
class DroppedEvent:
    """An inbound event the node dropped silently at a gate."""

    kind: int
    event_id: str
    author: str
    reason: str


@dataclass(frozen=True)
class AttackerReply:
    """A forged `admin-took-dispute`: who signed it and the trade keys it tries to plant."""

    keys: ns.Keys
    buyer_pubkey: str
    seller_pubkey: str
    event_ids: list[str]


def decide_take(
    status: str, holder: str | None, author: str, solvers: dict[str, str], mostro_pubkey: str
) -> str | None:
    """None when `author` may take the dispute, else the cant-do reason mostrod would give."""
    if author == mostro_pubkey and status in OPEN_STATUSES:
        return None
    permission = solvers.get(author)
    if permission is None:
        return "invalid_pubkey"
    if status == "initiated":
        return None
    if status == "in-progress":
        if holder == author:
            return None
        if _is_write(permission) and holder is not None and solvers.get(holder) == "read":
            return None
    return "invalid_pubkey"


def _is_write(permission: str) -> bool:
    return permission in ("write", "read-write")
