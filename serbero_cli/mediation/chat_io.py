"""Party chat I/O for mediate-once: derive channels, publish outbound rows, fetch inbound envelopes.

Keys are re-derived every run from Serbero's secret and the trade pubkeys stored on the session;
nothing is kept between runs. Outbound rows are committed before they are published and go out as
kind 14 plus, per row, a legacy 1059 copy (docs/delivery.md#chat-publishing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.keytext import Secret
from serbero_cli.nostr import chat
from serbero_cli.nostr.chat_keys import ChannelKeyError, ChannelKeys, derive_channel
from serbero_cli.safetext import short
from serbero_cli.store import mediation as med
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Connection, Store
from serbero_cli.store.sessions import SessionRow

logger = logging.getLogger(__name__)

PUBLISH_PAUSES = (0.1, 0.2)  # up to 3 attempts in a run


class ChannelMismatch(Exception):
    """Derived chat keys differ from the ones stored on the session (Serbero's key changed?)."""


def derive_channels(secret: Secret, session: SessionRow) -> dict[str, ChannelKeys]:
    """Both parties' channels, checked against the pubkeys stored at session open."""
    channels = {}
    for party in ("buyer", "seller"):
        trade = session.trade_pubkey(party)
        if not trade:
            raise ChannelMismatch(f"no {party} trade pubkey stored")
        try:
            channel = derive_channel(secret, party, trade)
        except ChannelKeyError as exc:
            raise ChannelMismatch(str(exc)) from None
        stored = {
            "legacy": getattr(session, f"{party}_shared_pubkey"),
            "conv": getattr(session, f"{party}_chat_conv_pubkey"),
            "sign": getattr(session, f"{party}_chat_sign_pubkey"),
        }
        derived = {
            "legacy": channel.legacy_pubkey,
            "conv": channel.conv_pubkey,
            "sign": channel.sign_pubkey,
        }
        for name, value in stored.items():
            if value is not None and value != derived[name]:
                raise ChannelMismatch(f"{party} {name} pubkey differs from the stored one")
        channels[party] = channel
    return channels


def legacy_required(conn: Connection, setting: str, session_id: str, party: str) -> int:
    """Whether a new row for `party` also goes out as a 1059 copy (fixed at insert)."""
    if setting == "always":
        return 1
    if setting == "never":
        return 0
    return 0 if sess.has_fresh_kind14_from(conn, session_id, party) else 1


def new_outbound_row(
    conn: Connection,
    *,
    secret: Secret,
    session_id: str,
    channel: ChannelKeys,
    text: str,
    now: int,
    bundle: tuple[str, str],
    copy_setting: str,
) -> dict[str, Any]:
    """Build the signed inner now (its id is the dedup key) and insert the row unpublished."""
    inner = chat.build_inner(secret, text, now)
    row = {
        "session_id": session_id,
        "direction": "outbound",
        "party": channel.party,
        "shared_pubkey": channel.legacy_pubkey,
        "inner_event_id": inner.id,
        "inner_event_created_at": now,
        "content": text,
        "prompt_bundle_id": bundle[0],
        "policy_hash": bundle[1],
        "persisted_at": now,
        "stale": 0,
        "publish_attempts": 0,
        "legacy_required": legacy_required(conn, copy_setting, session_id, channel.party),
    }
    sess.insert_message(conn, row)
    return row


@dataclass
class PublishStats:
    published: int = 0
    failed: int = 0
    published_sessions: set[str] = field(default_factory=set)


async def publish_pending(
    store: Store,
    pool: Any,
    *,
    secret: Secret,
    channels: dict[str, dict[str, ChannelKeys]],
    send_timeout: float,
    now_fn: Callable[[], float],
    bundle: tuple[str, str],
    session_ids: set[str] | None = None,
) -> PublishStats:
    """Publish (or republish) every unpublished outbound row of a live session with known channels."""
    stats = PublishStats()
    for row in sess.unpublished_outbound(store):
        if session_ids is not None and row["session_id"] not in session_ids:
            continue
        session_channels = channels.get(row["session_id"])
        if not session_channels:
            continue
        ok = await _publish_row(
            store,
            pool,
            row,
            session_channels[row["party"]],
            secret=secret,
            send_timeout=send_timeout,
            now=int(now_fn()),
            bundle=bundle,
        )
        if ok:
            stats.published += 1
            stats.published_sessions.add(row["session_id"])
        else:
            stats.failed += 1
    return stats


async def _publish_row(
    store: Store,
    pool: Any,
    row: dict[str, Any],
    channel: ChannelKeys,
    *,
    secret: Secret,
    send_timeout: float,
    now: int,
    bundle: tuple[str, str],
) -> bool:
    """Publish a row's envelopes, each built and stored before its first publish.

    The kind-14 envelope and the legacy 1059 copy are signed once and stored on the row; every
    later attempt, in this run or the next, republishes exactly that event, so a party never sees a
    second copy. Only a row whose kind-14 envelope was never built may still get a fresh inner
    event when it is over ten minutes old (recipients page by time cursors).
    """
    events = _stored_or_built(store, row, channel, secret=secret, now=now)
    if events is None:
        return False
    kind14_json, legacy_json = events
    updates: dict[str, Any] = {}
    kind14_id, outer_id = row["kind14_event_id"], row["outer_event_id"]
    if kind14_id is None:
        kind14_id = await _republish(pool, kind14_json, send_timeout)
        if kind14_id:
            updates["kind14_event_id"] = kind14_id
    if row["legacy_required"] and outer_id is None:
        outer_id = await _republish(pool, legacy_json, send_timeout)
        if outer_id:
            updates["outer_event_id"] = outer_id
    done = kind14_id is not None and (not row["legacy_required"] or outer_id is not None)
    with store.immediate() as conn:
        current = sess.message_by_id(conn, row["id"])
        if current is None or current["published_at"] is not None:
            return current is not None
        if done:
            updates["published_at"] = now
        else:
            updates["publish_attempts"] = current["publish_attempts"] + 1
        sess.update_message(conn, row["id"], **updates)
        if done:
            med.insert_event(
                conn,
                "outbound_sent",
                {
                    "inner_event_id": current["inner_event_id"],
                    "shared_pubkey": row["shared_pubkey"],
                },
                now=now,
                session_id=row["session_id"],
                bundle=bundle,
            )
    level = logging.INFO if done else logging.WARNING
    logger.log(
        level,
        "session=%s party=%s message=%d %s",
        short(row["session_id"]),
        row["party"],
        row["id"],
        "published" if done else "publish failed; will retry",
    )
    return done


def _stored_or_built(
    store: Store, row: dict[str, Any], channel: ChannelKeys, *, secret: Secret, now: int
) -> tuple[str, str | None] | None:
    """The row's stored (kind-14, legacy) events; build, sign and store the missing ones first.

    None when another process changed the row meanwhile (it will be seen again next time)."""
    kind14_json, legacy_json = row.get("kind14_event_json"), row.get("legacy_event_json")
    if kind14_json is not None and (legacy_json is not None or not row["legacy_required"]):
        return kind14_json, legacy_json
    updates: dict[str, Any] = {}
    inner_ts = row["inner_event_created_at"]
    if (
        kind14_json is None
        and row["kind14_event_id"] is None
        and chat.needs_fresh_inner(inner_ts, now)
    ):
        inner_ts = (
            now  # never built, so never seen: re-issue with a fresh time (mostro-v2 republish rule)
        )
    inner = chat.build_inner(secret, row["content"], inner_ts)
    if inner.id != row["inner_event_id"]:
        if kind14_json is not None:
            inner = chat.build_inner(secret, row["content"], row["inner_event_created_at"])
        else:
            updates.update(inner_event_id=inner.id, inner_event_created_at=inner_ts)
    if kind14_json is None:
        kind14_json = updates["kind14_event_json"] = chat.kind14_wrap(inner, channel).as_json()
    if legacy_json is None and row["legacy_required"]:
        legacy_json = updates["legacy_event_json"] = chat.legacy_wrap(inner, channel, now).as_json()
    with store.immediate() as conn:
        current = sess.message_by_id(conn, row["id"])
        if (
            current is None
            or current["kind14_event_json"] != row.get("kind14_event_json")
            or current["legacy_event_json"] != row.get("legacy_event_json")
        ):
            return None
        sess.update_message(conn, row["id"], **updates)
    row.update(updates)
    return kind14_json, legacy_json


async def _republish(pool: Any, event_json: str | None, send_timeout: float) -> str | None:
    """Publish one stored event, up to three times with short pauses; its id when a relay took it."""
    if event_json is None:
        return None
    for attempt in range(len(PUBLISH_PAUSES) + 1):
        outcome = await pool.publish_json(event_json, send_timeout)
        if outcome.ok:
            return outcome.event_id
        if attempt < len(PUBLISH_PAUSES):
            await asyncio.sleep(PUBLISH_PAUSES[attempt])
    return None


@dataclass
class Inbound:
    session: SessionRow
    reply: chat.PartyReply


async def fetch_inbound(
    pool: Any,
    *,
    secret: Secret,
    serbero_pubkey: str,
    sessions: list[SessionRow],
    channels: dict[str, dict[str, ChannelKeys]],
    now: int,
    lookback_seconds: int,
    fetch_timeout: float,
) -> tuple[list[Inbound], int]:
    """Fetch both envelopes for every live channel in one request; return (opened messages, rejected count)."""
    by_channel: dict[str, tuple[SessionRow, ChannelKeys]] = {}
    cursors: dict[str, int] = {}
    for session in sessions:
        for party, channel in channels.get(session.session_id, {}).items():
            by_channel[channel.trade_pubkey + channel.sign_pubkey] = (session, channel)
            cursors[channel.trade_pubkey] = session.last_seen(party) or session.started_at
    all_channels = [c for _, c in by_channel.values()]
    filters = chat.chat_filters(
        all_channels, now=now, lookback_seconds=lookback_seconds, cursors=cursors
    )
    if not filters:
        return [], 0
    events = await pool.fetch_raw(filters, fetch_timeout)
    state = chat.Kind14RunState()
    opened: list[Inbound] = []
    rejected = 0
    for event in events:
        routed = chat.route_event(event, all_channels)
        if routed is None:
            continue
        session = by_channel[routed.trade_pubkey + routed.sign_pubkey][0]
        if event.kind().as_u16() == 14:
            message = chat.open_kind14(event, routed, serbero_pubkey, now, state)
        else:
            message = chat.open_legacy(event, routed, serbero_pubkey, now)
        reply = message.accepted()
        if reply is not None:
            opened.append(Inbound(session, reply))
        elif message.counts_as_rejected:
            rejected += 1
            log = logger.warning if message.status == "forgery" else logger.info
            log(
                "session=%s party=%s envelope %s rejected: %s",
                short(session.session_id),
                routed.party,
                short(message.outer_id, 16),
                message.reason,
            )
    opened.sort(key=lambda item: item.reply.inner_created_at)
    return opened, rejected
