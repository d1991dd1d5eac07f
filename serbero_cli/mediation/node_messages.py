"""Messages the Mostro node sends to Serbero about disputes Serbero holds.

When the users close a dispute themselves (a cooperative cancel, or the seller releasing) while a
solver holds it, mostrod tells the holder with action `cooperative-cancel-accepted` or `released`,
payload `{"dispute": ["<dispute id>", null]}` (the message's own variant key is `order`, its `id`
the order id). mediate-once reads those on both transports with its chat fetch and treats the
dispute as resolved at once, exactly as a resolved 38386 revision would: the live session closes,
nothing more reaches the parties, and solvers get the `resolved: <status>` report in the same
run. Any other node message is ignored (logged at debug). See docs/mediation.md#node-messages.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from serbero_cli.domain.lifecycle import LifecycleState
from serbero_cli.mediation.context import RunContext
from serbero_cli.mediation.resolution import on_dispute_resolved
from serbero_cli.safetext import short
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import sessions as sess

logger = logging.getLogger(__name__)

# What each closing action means for the dispute's status.
CLOSING_ACTIONS = {"cooperative-cancel-accepted": "cooperatively-canceled", "released": "released"}
GIFTWRAP_BACKDATE_SECONDS = 172_800
OVERLAP_SECONDS = 300
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def closed_dispute(action: str, payload: Any) -> tuple[str, str] | None:
    """(dispute id, final status) when a node message says a dispute was closed, else None (pure)."""
    final = CLOSING_ACTIONS.get(action)
    if final is None or not isinstance(payload, dict):
        return None
    pair = payload.get("dispute")
    if not isinstance(pair, list) or not pair or not isinstance(pair[0], str):
        return None
    dispute_id = pair[0].strip().lower()
    return (dispute_id, final) if _UUID.match(dispute_id) else None


def node_message_filters(serbero: str, mostro: str, oldest_start: int) -> list[dict[str, Any]]:
    """Both transports: kind 14 from the node (real timestamps), and gift wraps (backdated)."""
    return [
        {
            "kinds": [14],
            "authors": [mostro],
            "#p": [serbero],
            "since": max(0, oldest_start - OVERLAP_SECONDS),
        },
        {
            "kinds": [1059],
            "#p": [serbero],
            "since": max(0, oldest_start - GIFTWRAP_BACKDATE_SECONDS - OVERLAP_SECONDS),
        },
    ]


async def apply_node_closings(ctx: RunContext) -> int:
    """Fetch the node's messages about disputes Serbero mediates and resolve the closed ones."""
    from serbero_cli.nostr import mostro as proto

    held = sess.unresolved_disputes_with_sessions(ctx.store)
    if not held:
        return 0
    serbero, mostro = ctx.config.public_key, ctx.config.mostro_pubkey
    events = await ctx.pool.fetch_raw(
        node_message_filters(serbero, mostro, min(held.values())),
        ctx.config.chat.fetch_timeout_seconds,
    )
    closed = 0
    for event in events:
        kind = event.kind().as_u16()
        reader = proto.read_kind14_reply if kind == 14 else proto.read_giftwrap_reply
        reply = reader(event, ctx.config.private_key, mostro, now=ctx.now())
        if reply is None:
            continue
        found = closed_dispute(reply.action, reply.payload)
        if found is None:
            logger.debug(
                "node message event=%s action=%s ignored", short(reply.event_id), reply.action
            )
            continue
        dispute_id, final = found
        if dispute_id in held and _close(ctx, dispute_id, final, reply):
            closed += 1
    return closed


def _close(ctx: RunContext, dispute_id: str, final: str, reply: Any) -> bool:
    now = ctx.now()
    with ctx.store.immediate() as conn:
        state = disputes_store.lifecycle_state(conn, dispute_id)
        if (
            state is None
            or state == LifecycleState.RESOLVED
            or reply.created_at < disputes_store.round_start(conn, dispute_id)
        ):
            return (
                False  # already settled, or a message about an earlier round of a reopened dispute
            )
        disputes_store.move_dispute(
            conn,
            dispute_id,
            state,
            LifecycleState.RESOLVED,
            now,
            "dispute_resolved_externally",
            dispute_status=final,
        )
        on_dispute_resolved(
            conn,
            dispute_id=dispute_id,
            event_id=reply.event_id,
            final_status=final,
            audience=ctx.audience,
            now=now,
        )
    ctx.result.node_closings += 1
    logger.info(
        "dispute=%s closed by the users (%s): session closed, solvers told",
        short(dispute_id),
        reply.action,
    )
    return True
