"""`sync_state`: the dispute cursor of each Mostro node, cached facts, each subcommand's last-run
summary and run record."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)
LEGACY_CURSOR_KEY = "disputes_cursor"  # the one shared cursor before each node had its own


def get_value(store: Store, key: str) -> str | None:
    row = store.conn.execute("SELECT value FROM sync_state WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def get_row(store: Store, key: str) -> tuple[str, int] | None:
    row = store.conn.execute(
        "SELECT value, updated_at FROM sync_state WHERE key=?", (key,)
    ).fetchone()
    return (row[0], row[1]) if row else None


def set_value(conn: sqlite3.Connection, key: str, value: str, now: int) -> None:
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
        (key, value, now),
    )


def cursor_key(mostro_pubkey: str) -> str:
    """The `sync_state` key of one Mostro node's dispute cursor."""
    return f"disputes_cursor:{mostro_pubkey}"


def get_cursor(store: Store, mostro_pubkey: str, now: int) -> int | None:
    """The node's dispute cursor, or None before the first run.

    Before per-node cursors there was one shared key; it is read as this node's until the node has
    its own. A cursor beyond `now` (written while the clock, or an event, was in the future) falls
    back to when it was written, so the events it skipped are read again.
    """
    row = get_row(store, cursor_key(mostro_pubkey)) or get_row(store, LEGACY_CURSOR_KEY)
    if row is None:
        return None
    value, written_at = row
    try:
        cursor = int(value)
    except (TypeError, ValueError):
        return None
    return min(cursor, written_at, now) if cursor > now else cursor


def advance_cursor(conn: sqlite3.Connection, mostro_pubkey: str, created_at: int, now: int) -> None:
    """Raise the node's cursor to `created_at`, never beyond `now`; a stored cursor beyond `now` is replaced."""
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES (?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at "
        "WHERE CAST(sync_state.value AS INTEGER) < CAST(excluded.value AS INTEGER) "
        "OR CAST(sync_state.value AS INTEGER) > ?",
        (cursor_key(mostro_pubkey), str(min(created_at, now)), now, now),
    )


def save_last_run(store: Store, command_key: str, summary: dict[str, Any], now: int) -> None:
    """Upsert `<command>_last_run` with the run's summary JSON."""
    with store.immediate() as conn:
        set_value(
            conn,
            f"{command_key}_last_run",
            json.dumps(summary, sort_keys=True, separators=(",", ":")),
            now,
        )


RUN_RECORD_SUFFIX = "_run_record"


def save_run_record(store: Store, command_key: str, record: dict[str, Any], now: int) -> bool:
    """Upsert `<command>_run_record` with the run's record JSON. Return False (and log) if it failed.

    The record is written on the way out of a run that may be failing because of the database
    itself, so a failure here is logged and reported, never raised over the run's own error.
    """
    try:
        if store.conn.in_transaction:
            store.conn.execute("ROLLBACK")
        with store.immediate() as conn:
            set_value(
                conn,
                command_key + RUN_RECORD_SUFFIX,
                json.dumps(record, sort_keys=True, separators=(",", ":")),
                now,
            )
        return True
    except sqlite3.Error as exc:
        logger.warning("run record for %s not written: %s", command_key, exc)
        return False
