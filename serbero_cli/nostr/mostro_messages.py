"""Mostro protocol messages as plain data: the take message, reply parsing, the 38385 info event.

No nostr_sdk here, so the pure decisions in `mediation/` can use these types without paying for
it. Mostro messages keep a fixed key order and are never sorted: the
node re-serializes a message and checks signatures against its own canonical bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from serbero_cli.nostr.events import (
    MAX_EVENT_JSON_BYTES,
    MAX_INT_TAG,
    NostrEvent,
    is_from_the_future,
    parse_int_tag,
)
from serbero_cli.safetext import has_control

logger = logging.getLogger(__name__)

ACTION_TAKE = "admin-take-dispute"
ACTION_TOOK = "admin-took-dispute"
KIND_INFO = 38385
MAX_REQUEST_ID = 2**63 - 1
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
INFO_INTEGER_TAGS = ("pow", "pow_first_contact")
INFO_TEXT_TAGS = ("protocol_version", "mostro_version")
_HEX128 = re.compile(r"^[0-9a-fA-F]{128}$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class MostroReply:
    """One message from the node, after the transport checks (docs/wire-formats.md#take-replies).

    variant: the single key of element 0 ("dispute", "cant-do", "order", ...). request_id: the
    echoed id, None when null. inner_id: the message's `id` (a dispute or order uuid), None when
    absent. payload: parsed JSON (None for null). created_at: the rumor time (v1) or the event time
    (v2), unix seconds. event_id: the outer event id. transport: "giftwrap" | "nip44".
    """

    variant: str
    version: int | None
    request_id: int | None
    inner_id: str | None
    action: str
    payload: Any
    created_at: int
    event_id: str
    transport: str


@dataclass(frozen=True)
class NodeInfo:
    """Tags of a kind-38385 info event Serbero reads (docs/wire-formats.md#node-info); None = absent or
    not an integer."""

    protocol_version: str | None
    pow: int | None
    pow_first_contact: int | None
    mostro_version: str | None
    event_id: str
    created_at: int
    serbero: str | None = None  # the node's own Serbero (`serbero` tag), 64 lowercase hex
    serbero_malformed: bool = False  # a `serbero` tag was there but is not a 64-hex public key


def new_request_id() -> int:
    """A fresh random request id in 1..2^63−1; the node echoes it in its reply."""
    return secrets.randbelow(MAX_REQUEST_ID) + 1


def take_message_json(dispute_id: str, request_id: int, version: int) -> str:
    """The byte-exact `admin-take-dispute` message M (version 1 on gift wrap, 2 on kind 14).

    Raise ValueError for a dispute id that is not a lowercase hyphenated uuid or a request id
    outside 1..2^63−1.
    """
    if not _UUID.match(dispute_id):
        raise ValueError("dispute id must be a lowercase hyphenated uuid")
    if isinstance(request_id, bool) or not 1 <= request_id <= MAX_REQUEST_ID:
        raise ValueError("request id must be in 1..2^63-1")
    inner = {
        "version": version,
        "request_id": request_id,
        "trade_index": None,
        "id": dispute_id,
        "action": ACTION_TAKE,
        "payload": None,
    }
    return json.dumps({"dispute": inner}, separators=(",", ":"))


def canonical_message_json(variant: str, body: dict[str, Any]) -> str:
    """Re-serialize a message in the node's order: version, request_id, trade_index, id (left out
    when absent), action, payload. Unknown keys are dropped, as the node's parser drops them.
    Nested payload objects keep the order they arrived in, which is the node's own order."""
    ordered: dict[str, Any] = {
        "version": body.get("version"),
        "request_id": body.get("request_id"),
        "trade_index": body.get("trade_index"),
    }
    if body.get("id") is not None:
        ordered["id"] = body["id"]
    ordered["action"] = body.get("action")
    ordered["payload"] = body.get("payload")
    return json.dumps({variant: ordered}, separators=(",", ":"), ensure_ascii=False)


def verify_message_signature(pubkey_hex: str, message_json: str, signature_hex: Any) -> bool:
    """True when `signature_hex` is a BIP-340 signature by `pubkey_hex` over sha256(message_json)."""
    if not isinstance(signature_hex, str) or not _HEX128.match(signature_hex):
        return False
    import coincurve

    digest = hashlib.sha256(message_json.encode("utf-8")).digest()
    try:
        return bool(
            coincurve.PublicKeyXOnly(bytes.fromhex(pubkey_hex)).verify(
                bytes.fromhex(signature_hex), digest
            )
        )
    except ValueError:
        return False


def parse_message(
    element: Any,
    *,
    signature: Any,
    signer_pubkey: str,
    created_at: int,
    event_id: str,
    transport: str,
    now: int | None = None,
) -> MostroReply | None:
    """Element 0 of a reply tuple as a MostroReply, or None when it is malformed.

    A non-null `signature` must be a valid signature by `signer_pubkey` over the canonical
    re-serialization; anything else is skipped. So is a reply dated more than ten minutes after
    `now` (when given), with an integer out of range, or with a control character in a text
    Serbero keeps (the id, the action, a cant-do reason).
    """
    if not isinstance(element, dict) or len(element) != 1:
        return None
    if not _in_range(created_at, MAX_INT_TAG) or (
        now is not None and is_from_the_future(created_at, now)
    ):
        return None
    variant, body = next(iter(element.items()))
    if not isinstance(body, dict) or not _short_text(body.get("action")):
        return None
    version, request_id, inner_id = body.get("version"), body.get("request_id"), body.get("id")
    if version is not None and not _in_range(version, MAX_INT_TAG):
        return None
    if request_id is not None and not _in_range(request_id, MAX_REQUEST_ID):
        return None
    if inner_id is not None and not _short_text(inner_id):
        return None
    payload = body.get("payload")
    if (
        isinstance(payload, dict)
        and "cant_do" in payload
        and payload["cant_do"] is not None
        and not _short_text(payload["cant_do"])
    ):
        return None
    if signature is not None and not verify_message_signature(
        signer_pubkey, canonical_message_json(variant, body), signature
    ):
        return None
    return MostroReply(
        variant=variant,
        version=version,
        request_id=request_id,
        inner_id=inner_id,
        action=body["action"],
        payload=body.get("payload"),
        created_at=created_at,
        event_id=event_id,
        transport=transport,
    )


def parse_tuple(plaintext: str) -> list[Any] | None:
    """The decrypted content as a non-empty JSON array, or None."""
    try:
        value = json.loads(plaintext)
    except ValueError:
        return None
    return value if isinstance(value, list) and value else None


def giftwrap_reply_filter(serbero_pubkey: str, since: int) -> dict[str, Any]:
    """v1 replies: gift wraps to Serbero. `since` must reach back past the 2-day backdating."""
    return {"kinds": [1059], "#p": [serbero_pubkey], "since": since}


def kind14_reply_filter(serbero_pubkey: str, mostro_pubkey: str, since: int) -> dict[str, Any]:
    """v2 replies: kind 14 authored by the node and tagged to Serbero (real timestamps)."""
    return {"kinds": [14], "authors": [mostro_pubkey], "#p": [serbero_pubkey], "since": since}


def info_filter(mostro_pubkey: str) -> dict[str, Any]:
    """The filter for the node's kind-38385 info event (docs/mediation.md#transport)."""
    return {"kinds": [KIND_INFO], "authors": [mostro_pubkey], "limit": 5}


def newest_info_event(
    events: Iterable[NostrEvent], mostro_pubkey: str, *, now: int
) -> NostrEvent | None:
    """The newest acceptable 38385 by the node: highest created_at, ties broken by the lowest id.

    Events that fail `info_event_problem` are skipped (and logged), so a hostile or broken one
    never hides an older good one.
    """
    mine = []
    for event in events:
        if event.kind != KIND_INFO or event.pubkey != mostro_pubkey:
            continue
        problem = info_event_problem(event, now)
        if problem is None:
            mine.append(event)
        else:
            logger.warning("info event=%s rejected: %s", event.id[:16], problem)
    return min(mine, key=lambda e: (-e.created_at, e.id)) if mine else None


def info_event_problem(event: NostrEvent, now: int) -> str | None:
    """Why a 38385 must be rejected (too large, from the future, a malformed integer or a control
    character in a tag Serbero keeps), or None when it is acceptable."""
    if event.size > MAX_EVENT_JSON_BYTES:
        return f"event larger than {MAX_EVENT_JSON_BYTES} bytes"
    if is_from_the_future(event.created_at, now):
        return "from the future"
    for tag in event.tags:
        if len(tag) < 2:
            continue
        if tag[0] in INFO_INTEGER_TAGS:
            try:
                parse_int_tag(tag[1])
            except ValueError as exc:
                return f"{tag[0]} tag: {exc}"
        if tag[0] in INFO_TEXT_TAGS and (has_control(tag[1]) or len(tag[1]) > 64):
            return f"{tag[0]} tag is not a short printable value"
    return None


def parse_info_event(event: NostrEvent) -> NodeInfo:
    """Read `protocol_version`, `pow`, `pow_first_contact` and `mostro_version` from a 38385."""
    return NodeInfo(
        protocol_version=event.first_tag("protocol_version"),
        pow=_int_or_none(event.first_tag("pow")),
        pow_first_contact=_int_or_none(event.first_tag("pow_first_contact")),
        mostro_version=event.first_tag("mostro_version"),
        event_id=event.id,
        created_at=event.created_at,
        **_serbero_tag(event.first_tag("serbero")),
    )


def _serbero_tag(value: str | None) -> dict[str, Any]:
    """mostrod ≥ 0.19.2 announces its Serbero as `["serbero", "<64 hex>"]`; an npub, a wrong length
    or a point off the curve is malformed (reported, then treated as no tag). Uppercase is fine."""
    if value is None:
        return {}
    from serbero_cli.keytext import is_valid_xonly

    if _HEX64.match(value) and is_valid_xonly(value.lower()):
        return {"serbero": value.lower()}
    return {"serbero_malformed": True}


def _in_range(value: Any, maximum: int) -> bool:
    """A JSON integer (not a bool) in 0 … maximum."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


def _short_text(value: Any) -> bool:
    """A string Serbero may store and log: at most 256 characters, no control or bidi character."""
    return isinstance(value, str) and len(value) <= 256 and not has_control(value)


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_int_tag(value)
    except ValueError:
        return None
