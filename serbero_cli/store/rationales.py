"""The `reasoning_rationales` table (docs/mediation.md#rationales): model rationales keyed by content hash.

Rationale text lives only here; events and handoffs refer to it by id. A row records which
session, provider, model and bundle produced it, so an id already stored under different
provenance is not silently reused for another session: the caller gets no reference instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from typing import Any

from serbero_cli.errors import UsageError

logger = logging.getLogger(__name__)

_HEX_PREFIX = re.compile(r"^[0-9a-f]{1,64}$")


def rationale_id(text: str) -> str:
    """The lowercase hex SHA-256 of the rationale text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def store_rationale(
    conn: sqlite3.Connection,
    text: str,
    *,
    session_id: str | None,
    provider: str,
    model: str,
    bundle_id: str,
    policy_hash: str,
    now: int,
) -> str | None:
    """Insert the rationale once and return its id for event rows to reference.

    Return None, writing nothing, for a blank rationale. Return None and log a WARNING when the id
    is already stored with a different session, provider, model, bundle or hash; a conflict never
    blocks mediation. Runs on `conn` as given: the caller owns the transaction.
    """
    if not text or not text.strip():
        return None
    rid = rationale_id(text)
    conn.execute(
        "INSERT OR IGNORE INTO reasoning_rationales (rationale_id, session_id, provider, model, "
        "prompt_bundle_id, policy_hash, rationale_text, generated_at) VALUES (?,?,?,?,?,?,?,?)",
        (rid, session_id, provider, model, bundle_id, policy_hash, text, now),
    )
    stored = conn.execute(
        "SELECT session_id, provider, model, prompt_bundle_id, policy_hash FROM reasoning_rationales "
        "WHERE rationale_id=?",
        (rid,),
    ).fetchone()
    wanted = (session_id, provider, model, bundle_id, policy_hash)
    if tuple(stored) != wanted:
        differing = [
            name
            for name, have, want in zip(
                ("session", "provider", "model", "bundle", "policy_hash"),
                stored,
                wanted,
                strict=True,
            )
            if have != want
        ]
        logger.warning(
            "rationale provenance conflict rationale=%s session=%s differs=%s; "
            "events will carry no rationale reference",
            rid[:16],
            (session_id or "-")[:8],
            ",".join(differing),
        )
        return None
    return rid


def rebind_rationale(conn: sqlite3.Connection, rationale_id: str, session_id: str) -> bool:
    """Attach an opening rationale (stored before the session existed) to its new session.

    Return True when a row changed; a rationale already bound to a session is left as it is.
    """
    cur = conn.execute(
        "UPDATE reasoning_rationales SET session_id=? WHERE rationale_id=? AND session_id IS NULL",
        (session_id, rationale_id),
    )
    return cur.rowcount == 1


def get_rationale(store: Any, prefix: str) -> dict[str, Any] | None:
    """The rationale row whose id starts with `prefix` (hex, any case), or None when none matches.

    Raise UsageError when the prefix is not hex or matches more than one rationale.
    """
    wanted = prefix.strip().lower()
    if not _HEX_PREFIX.match(wanted):
        raise UsageError(f"not a rationale id or id prefix: {prefix!r}")
    # GLOB is case-sensitive and, with hex-only input, has no wildcard to escape.
    rows = store.query(
        "SELECT rationale_id, session_id, provider, model, prompt_bundle_id, policy_hash, rationale_text, "
        "generated_at FROM reasoning_rationales WHERE rationale_id GLOB ? ORDER BY rationale_id LIMIT 2",
        (wanted + "*",),
    )
    if len(rows) > 1:
        raise UsageError(
            f"rationale id prefix {wanted} matches more than one rationale; give more characters"
        )
    return rows[0] if rows else None
