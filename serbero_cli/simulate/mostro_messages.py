"""Mostro protocol messages as plain dicts: the take request, the node's replies, the peer notice.

Written from docs/wire-formats.md#take-request and #take-replies. Serialization goes through
`crypto.canonical_message_json`, the same bytes the node signs and checks.
"""

from __future__ import annotations

import json
from typing import Any

from serbero_cli.simulate.crypto import canonical_message_json, sign_message

TAKE_ACTION = "admin-take-dispute"
TOOK_ACTION = "admin-took-dispute"
CANT_DO_ACTION = "cant-do"


class MessageError(ValueError):
    """A payload that is not a well-formed Mostro tuple or message."""


def _message(
    variant: str,
    *,
    version: int,
    request_id: int | None,
    message_id: str | None,
    action: str,
    payload: Any,
) -> dict[str, Any]:
    inner: dict[str, Any] = {"version": version, "request_id": request_id, "trade_index": None}
    if message_id is not None:
        inner["id"] = message_id
    inner["action"] = action
    inner["payload"] = payload
    return {variant: inner}


def take_request(dispute_id: str, request_id: int | None, version: int) -> dict[str, Any]:
    """`{"dispute":{…,"action":"admin-take-dispute","payload":null}}`."""
    return _message(
        "dispute",
        version=version,
        request_id=request_id,
        message_id=dispute_id,
        action=TAKE_ACTION,
        payload=None,
    )


def took_reply(
    dispute_id: str, request_id: int | None, version: int, info: dict[str, Any]
) -> dict[str, Any]:
    """The node's `admin-took-dispute` answer carrying SolverDisputeInfo."""
    return _message(
        "dispute",
        version=version,
        request_id=request_id,
        message_id=dispute_id,
        action=TOOK_ACTION,
        payload={"dispute": [dispute_id, info]},
    )


def cant_do_reply(
    dispute_id: str | None, request_id: int | None, version: int, reason: str | None
) -> dict[str, Any]:
    """The node's refusal: variant and action `cant-do`, payload `{"cant_do": reason}`."""
    return _message(
        "cant-do",
        version=version,
        request_id=request_id,
        message_id=dispute_id,
        action=CANT_DO_ACTION,
        payload={"cant_do": reason},
    )


def peer_notice(
    order_id: str, request_id: int | None, version: int, admin_pubkey: str
) -> dict[str, Any]:
    """The order message each party gets after a take: who the admin (chat peer) is."""
    return _message(
        "order",
        version=version,
        request_id=request_id,
        message_id=order_id,
        action=TOOK_ACTION,
        payload={"peer": {"pubkey": admin_pubkey, "reputation": None}},
    )


def solver_dispute_info(
    *,
    order_id: str,
    initiator: str,
    buyer_pubkey: str | None,
    seller_pubkey: str | None,
    order_created_at: int,
    taken_at: int,
    omit_trade_keys: bool = False,
) -> dict[str, Any]:
    """A plausible SolverDisputeInfo (the fields mostrod sends); `id` is the ORDER id.

    `omit_trade_keys` drops buyer_pubkey/seller_pubkey entirely (a broken node).
    """
    initiator_pubkey = buyer_pubkey if initiator == "buyer" else seller_pubkey
    info: dict[str, Any] = {
        "id": order_id,
        "kind": "sell",
        "status": "dispute",
        "hash": None,
        "preimage": None,
        "order_previous_status": "fiat-sent",
        "initiator_pubkey": initiator_pubkey,
        "buyer_pubkey": buyer_pubkey,
        "seller_pubkey": seller_pubkey,
        "initiator_full_privacy": True,
        "counterpart_full_privacy": True,
        "initiator_info": None,
        "counterpart_info": None,
        "premium": 0,
        "payment_method": "bank transfer",
        "amount": 21000,
        "fiat_amount": 100,
        "fee": 21,
        "routing_fee": 0,
        "buyer_invoice": None,
        "invoice_held_at": order_created_at + 60,
        "taken_at": taken_at,
        "created_at": order_created_at,
    }
    if omit_trade_keys:
        del info["buyer_pubkey"]
        del info["seller_pubkey"]
    return info


def encode_tuple(
    message: dict[str, Any], *, signer_secret: bytes | None = None, elements: int = 2
) -> str:
    """`[msg, sig|null]` (v1) or `[msg, sig|null, null]` (v2), compact, message in canonical order."""
    sig = json.dumps(sign_message(signer_secret, message)) if signer_secret is not None else "null"
    parts = [canonical_message_json(message), sig] + ["null"] * (elements - 2)
    return "[" + ",".join(parts) + "]"


def decode_tuple(text: str) -> list[Any]:
    """The JSON array of a Mostro payload; raises MessageError when it is not one."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise MessageError("not JSON") from exc
    if not isinstance(value, list) or not value:
        raise MessageError("not a non-empty JSON array")
    return value


def split_message(message: Any) -> tuple[str, dict[str, Any]]:
    """(variant, inner) of `{variant: inner}`; raises MessageError on any other shape."""
    if not isinstance(message, dict) or len(message) != 1:
        raise MessageError("message must have exactly one variant key")
    ((variant, inner),) = message.items()
    if not isinstance(inner, dict) or not isinstance(inner.get("action"), str):
        raise MessageError("message inner must be an object with an action")
    return variant, inner
