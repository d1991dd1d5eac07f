"""Party chat I/O for mediate-once: derive channels, publish outbound rows, fetch inbound envelopes.

Keys are re-derived every run from Serbero's secret and the trade pubkeys stored on the session
(mediation.md §6.1); nothing is kept between runs. Outbound rows are committed before they are
published (§6.3) and go out as kind 14 plus, per row, a legacy 1059 copy (mostro-v2.md §4.4).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.keys import Secret, short
from serbero_cli.nostr import chat
from serbero_cli.nostr.chat_keys import ChannelKeyError, ChannelKeys, derive_channel
from serbero_cli.store import mediation as med
from serbero_cli.store import sessions as sess
from serbero_cli.store.db import Store
from serbero_cli.store.sessions import SessionRow

logger = logging.getLogger(__name__)

PUBLISH_PAUSES = (0.1, 0.2)  # §6.2: up to 3 attempts


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
        derived = {"legacy": channel.legacy_pubkey, "conv": channel.conv_pubkey, "sign": channel.sign_pubkey}
        for name, value in stored.items():
            if value is not None and value != derived[name]:
                raise ChannelMismatch(f"{party} {name} pubkey differs from the stored one")
        channels[party] = channel
    return channels


def legacy_required(conn, setting: str, session_id: str, party: str) -> int:
    """mostro-v2.md §4.4: whether a new row for `party` also goes out as a 1059 copy (fixed at insert)."""
    if setting == "always":
        return 1
    if setting == "never":
        return 0
    return 0 if sess.has_fresh_kind14_from(conn, session_id, party) else 1


def new_outbound_row(conn, *, secret: Secret, session_id: str, channel: ChannelKeys, text: str, now: int,
                     bundle: tuple[str, str], copy_setting: str) -> dict[str, Any]:
    """Build the signed inner now (its id is the dedup key) and insert the row unpublished."""
    inner = chat.build_inner(secret, text, now)
    row = {
        "session_id": session_id, "direction": "outbound", "party": channel.party,
        "shared_pubkey": channel.legacy_pubkey, "inner_event_id": inner.id, "inner_event_created_at": now,
        "content": text, "prompt_bundle_id": bundle[0], "policy_hash": bundle[1], "persisted_at": now,
        "stale": 0, "publish_attempts": 0,
        "legacy_required": legacy_required(conn, copy_setting, session_id, channel.party),
    }
    sess.insert_message(conn, row)
    return row


@dataclass
class PublishStats:
    published: int = 0
    failed: int = 0
    published_sessions: set[str] = field(default_factory=set)


async def publish_pending(store: Store, pool: Any, *, secret: Secret, channels: dict[str, dict[str, ChannelKeys]],
                          send_timeout: float, now_fn, bundle: tuple[str, str],
                          session_ids: set[str] | None = None) -> PublishStats:
    """Publish (or republish) every unpublished outbound row of a live session with known channels."""
    stats = PublishStats()
    for row in sess.unpublished_outbound(store):
        if session_ids is not None and row["session_id"] not in session_ids:
            continue
        session_channels = channels.get(row["session_id"])
        if not session_channels:
            continue
        ok = await _publish_row(store, pool, row, session_channels[row["party"]], secret=secret,
                                send_timeout=send_timeout, now=int(now_fn()), bundle=bundle)
        if ok:
            stats.published += 1
            stats.published_sessions.add(row["session_id"])
        else:
            stats.failed += 1
    return stats


async def _publish_row(store: Store, pool: Any, row: dict[str, Any], channel: ChannelKeys, *, secret: Secret,
                       send_timeout: float, now: int, bundle: tuple[str, str]) -> bool:
    updates: dict[str, Any] = {}
    inner_id, inner_ts = row["inner_event_id"], row["inner_event_created_at"]
    if row["kind14_event_id"] is None and chat.needs_fresh_inner(inner_ts, now):
        inner_id, inner_ts = None, now  # re-issue: recipients page by since cursors (mostro-v2.md §4.2)
    inner = chat.build_inner(secret, row["content"], inner_ts)
    if inner.id != row["inner_event_id"]:
        updates.update(inner_event_id=inner.id, inner_event_created_at=inner_ts)
    kind14_id, outer_id = row["kind14_event_id"], row["outer_event_id"]
    if kind14_id is None:
        kind14_id = await _send_with_retries(pool, lambda: chat.kind14_wrap(inner, channel), send_timeout)
        if kind14_id:
            updates["kind14_event_id"] = kind14_id
    if row["legacy_required"] and outer_id is None:
        outer_id = await _send_with_retries(pool, lambda: chat.legacy_wrap(inner, channel, now), send_timeout)
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
            med.insert_event(conn, "outbound_sent", {"inner_event_id": updates.get("inner_event_id", inner_id),
                                                     "shared_pubkey": row["shared_pubkey"]},
                             now=now, session_id=row["session_id"], bundle=bundle)
    level = logging.INFO if done else logging.WARNING
    logger.log(level, "session=%s party=%s message=%d %s", short(row["session_id"]), row["party"], row["id"],
               "published" if done else "publish failed; will retry")
    return done


async def _send_with_retries(pool: Any, build, send_timeout: float) -> str | None:
    for attempt in range(len(PUBLISH_PAUSES) + 1):
        event = build()
        outcome = await pool.publish(event, send_timeout)
        if outcome.ok:
            return outcome.event_id
        if attempt < len(PUBLISH_PAUSES):
            await asyncio.sleep(PUBLISH_PAUSES[attempt])
    return None


@dataclass
class Inbound:
    session: SessionRow
    message: chat.InboundMessage


async def fetch_inbound(pool: Any, *, secret: Secret, serbero_pubkey: str, sessions: list[SessionRow],
                        channels: dict[str, dict[str, ChannelKeys]], now: int, lookback_seconds: int,
                        fetch_timeout: float) -> tuple[list[Inbound], int]:
    """Fetch both envelopes for every live channel in one request; return (opened messages, rejected count)."""
    by_channel: dict[str, tuple[SessionRow, ChannelKeys]] = {}
    cursors: dict[str, int] = {}
    for session in sessions:
        for party, channel in channels.get(session.session_id, {}).items():
            by_channel[channel.trade_pubkey + channel.sign_pubkey] = (session, channel)
            cursors[channel.trade_pubkey] = session.last_seen(party) or session.started_at
    all_channels = [c for _, c in by_channel.values()]
    filters = chat.chat_filters(all_channels, now=now, lookback_seconds=lookback_seconds, cursors=cursors)
    if not filters:
        return [], 0
    events = await pool.fetch_raw(filters, fetch_timeout)
    state = chat.Kind14RunState()
    opened: list[Inbound] = []
    rejected = 0
    for event in events:
        channel = chat.route_event(event, all_channels)
        if channel is None:
            continue
        session = by_channel[channel.trade_pubkey + channel.sign_pubkey][0]
        if event.kind().as_u16() == 14:
            message = chat.open_kind14(event, channel, serbero_pubkey, now, state)
        else:
            message = chat.open_legacy(event, channel, serbero_pubkey, now)
        if message.status == "ok":
            opened.append(Inbound(session, message))
        elif message.counts_as_rejected:
            rejected += 1
            log = logger.warning if message.status == "forgery" else logger.info
            log("session=%s party=%s envelope %s rejected: %s", short(session.session_id), channel.party,
                short(message.outer_id, 16), message.reason)
    opened.sort(key=lambda item: item.message.inner_created_at)
    return opened, rejected
