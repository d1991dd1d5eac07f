"""`sync_state`: the dispute cursor, cached facts, each subcommand's last-run summary and run record."""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from serbero_cli.store.db import Store

logger = logging.getLogger(__name__)


def get_value(store: Store, key: str) -> str | None:
    row = store.conn.execute("SELECT value FROM sync_state WHERE key=?", (key,)).fetchone()
    return row[0] if row else None


def get_row(store: Store, key: str) -> tuple[str, int] | None:
    row = store.conn.execute("SELECT value, updated_at FROM sync_state WHERE key=?", (key,)).fetchone()
    return (row[0], row[1]) if row else None


def set_value(conn: sqlite3.Connection, key: str, value: str, now: int) -> None:
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES (?,?,?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
        (key, value, now),
    )


def get_cursor(store: Store) -> int | None:
    value = get_value(store, "disputes_cursor")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def advance_cursor(conn: sqlite3.Connection, created_at: int, now: int) -> None:
    """Set `disputes_cursor` to `created_at` if that is larger than the stored value."""
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES ('disputes_cursor', ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at "
        "WHERE CAST(sync_state.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
        (str(created_at), now),
    )


def save_last_run(store: Store, command_key: str, summary: dict[str, Any], now: int) -> None:
    """Upsert `<command>_last_run` with the run's summary JSON."""
    with store.immediate() as conn:
        set_value(conn, f"{command_key}_last_run", json.dumps(summary, sort_keys=True, separators=(",", ":")), now)


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
            set_value(conn, command_key + RUN_RECORD_SUFFIX,
                      json.dumps(record, sort_keys=True, separators=(",", ":")), now)
        return True
    except sqlite3.Error as exc:
        logger.warning("run record for %s not written: %s", command_key, exc)
        return False
