"""The single-row `mediation_solver_auth` table (docs/mediation.md#solver-authorization).

A missing row means authorized.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import StrEnum

from serbero_cli.store.db import Store


class AuthStatus(StrEnum):
    """`mediation_solver_auth.status`; the schema allows exactly these."""

    UNAUTHORIZED = "unauthorized"  # the node refused Serbero as a solver: back off, then probe
    TERMINATED = "terminated"  # the retries ran out: escalate instead of taking


@dataclass(frozen=True)
class AuthState:
    status: AuthStatus
    attempts: int
    first_failure_at: int
    last_failure_at: int
    next_probe_at: int | None
    last_reason: str | None


def get_auth(conn: sqlite3.Connection | Store) -> AuthState | None:
    conn = conn.conn if isinstance(conn, Store) else conn
    row = conn.execute(
        "SELECT status, attempts, first_failure_at, last_failure_at, next_probe_at, last_reason "
        "FROM mediation_solver_auth WHERE id=1"
    ).fetchone()
    return AuthState(*row) if row else None


def save_auth(conn: sqlite3.Connection, state: AuthState, now: int) -> None:
    conn.execute(
        "INSERT INTO mediation_solver_auth (id, status, attempts, first_failure_at, last_failure_at, next_probe_at, "
        "last_reason, updated_at) VALUES (1,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
        "attempts=excluded.attempts, first_failure_at=excluded.first_failure_at, "
        "last_failure_at=excluded.last_failure_at, next_probe_at=excluded.next_probe_at, "
        "last_reason=excluded.last_reason, updated_at=excluded.updated_at",
        (
            state.status,
            state.attempts,
            state.first_failure_at,
            state.last_failure_at,
            state.next_probe_at,
            state.last_reason,
            now,
        ),
    )


def clear_auth(conn: sqlite3.Connection) -> bool:
    return conn.execute("DELETE FROM mediation_solver_auth WHERE id=1").rowcount == 1
