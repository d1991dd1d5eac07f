"""Timestamps written while the clock ran ahead: read as now in due-time computations, rewritten to
now by real runs, so reminders, retries and timeouts resume once the clock is fixed."""

from __future__ import annotations

import sqlite3
import time

import pytest

from serbero_cli.mediation import auth
from serbero_cli.mediation.timeouts import due_timeout
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import sessions as sess
from serbero_cli.store.clock import clamp, clamped, repair_future_timestamps
from serbero_cli.store.db import open_db
from serbero_cli.store.solver_auth import AuthState
from tests.helpers import db_rows, invoke_json, wait_for
from tests.unit.test_mediation_units import add_dispute, add_event, add_session, mediation_cfg

NOW = 1_700_000_000
YEAR = 365 * 86400


@pytest.fixture
def store(tmp_path):
    s = open_db(tmp_path / "clock.db")
    yield s
    s.close()


@pytest.mark.parametrize(
    "value,expected",
    [(None, None), (NOW - 5, NOW - 5), (NOW + 600, NOW + 600), (NOW + 601, NOW), (NOW + YEAR, NOW)],
)
def test_clamp_reads_a_value_more_than_ten_minutes_ahead_as_now(value, expected):
    assert clamp(value, NOW) == expected
    sql = (
        sqlite3.connect(":memory:")
        .execute(f"SELECT {clamped(':v')}", {"v": value, "now": NOW})
        .fetchone()[0]
    )
    assert sql == expected


def test_a_reminder_counts_from_the_repair_after_a_clock_that_ran_ahead(store):
    dispute_id = add_dispute(store, "notified", ts=NOW - 5000)
    with store.immediate() as conn:
        disputes_store.update_dispute(conn, dispute_id, last_notified_at=NOW + YEAR)

    def due(now: int) -> list[str]:
        return [
            d.dispute_id
            for d in disputes_store.disputes_due_reminder(
                store, now=now, base_seconds=300, cap_seconds=21600, max_attempts=5
            )
        ]

    assert due(NOW + 3600) == []  # read as now, never a year ahead: but now moves with it
    with store.immediate() as conn:
        repair_future_timestamps(conn, NOW)  # what the next real run does first
    assert due(NOW + 299) == [] and due(NOW + 300) == [dispute_id]


def test_repair_rewrites_every_due_driving_column_from_the_future_and_nothing_else(store):
    dispute_id = add_dispute(store, "notified", ts=NOW - 100)
    session_id = add_session(store, dispute_id, started_at=NOW + YEAR)
    with store.immediate() as conn:
        disputes_store.update_dispute(
            conn, dispute_id, last_notified_at=NOW + YEAR, round_started_at=NOW - 50
        )
        conn.execute(
            "UPDATE mediation_sessions SET buyer_last_seen_inner_ts=?, seller_last_seen_inner_ts=? "
            "WHERE session_id=?",
            (NOW + 500, NOW + YEAR, session_id),
        )
        assert repair_future_timestamps(conn, NOW) == 3
    row = store.conn.execute(
        "SELECT last_notified_at, round_started_at, event_timestamp FROM disputes"
    ).fetchone()
    assert row == (NOW, NOW - 50, NOW - 100)
    session = store.conn.execute(
        "SELECT started_at, buyer_last_seen_inner_ts, seller_last_seen_inner_ts "
        "FROM mediation_sessions"
    ).fetchone()
    assert session == (NOW, NOW + 500, NOW)  # within ten minutes is a fair clock difference, kept
    with store.immediate() as conn:
        assert repair_future_timestamps(conn, NOW) == 0


def test_session_timeouts_count_from_now_once_a_future_start_was_repaired(store):
    dispute_id = add_dispute(store)
    add_session(store, dispute_id, started_at=NOW + YEAR)
    (session,) = sess.live_sessions(store)
    assert due_timeout(session, NOW + 7200, 1800, 3600) is None  # read as now: nothing is due yet
    with store.immediate() as conn:
        repair_future_timestamps(conn, NOW)
    (session,) = sess.live_sessions(store)
    assert due_timeout(session, NOW + 1801, 1800, 86400) == "party_unresponsive"
    assert due_timeout(session, NOW + 3601, 0, 3600) == "mediation_timeout"


def test_a_start_attempt_logged_in_the_future_does_not_hold_retries_back(store):
    dispute_id = add_dispute(store, "notified", ts=NOW - 100)
    add_event(
        store,
        "start_attempt_started",
        {"dispute_id": dispute_id, "trigger": "first_attempt"},
        now=NOW + YEAR,
    )
    ids = [
        r["dispute_id"]
        for r in sess.eligible_dispute_candidates(store, now=NOW, retry_interval=300)
    ]
    assert ids == [dispute_id]


def test_a_probe_time_further_off_than_the_longest_back_off_probes_now():
    cfg = mediation_cfg()
    state = AuthState("unauthorized", 3, NOW + YEAR, NOW + YEAR, NOW + YEAR, "not_allowed")
    assert auth.gate(state, NOW, cfg) == auth.PROBE
    legit = AuthState("unauthorized", 3, NOW - 100, NOW - 100, NOW + 3000, "not_allowed")
    assert auth.gate(legit, NOW, cfg) == auth.BACKOFF  # a real back-off past ten minutes is kept


def test_listen_resumes_reminders_after_the_clock_was_wrong(make_config, mostro, solvers, db_path):
    cfg = make_config(sections={"timeouts": {"renotification_seconds": 1}})
    dispute_id = mostro.open_dispute(created_at=int(time.time()) - 60)
    assert invoke_json(cfg, "listen")[0] == 0
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE disputes SET last_notified_at=? WHERE dispute_id=?",
        (int(time.time()) + YEAR, dispute_id),
    )
    conn.commit()
    conn.close()
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0 and "disputes.last_notified_at value(s) were in the future" in err
    assert db_rows(db_path, "SELECT last_notified_at FROM disputes")[0]["last_notified_at"] <= int(
        time.time()
    )

    def reminded():
        invoke_json(cfg, "listen")
        return db_rows(
            db_path,
            "SELECT COUNT(*) AS n FROM notifications WHERE notif_type='re-notification' "
            "AND status='sent'",
        )[0]["n"] == len(solvers)

    wait_for(reminded, timeout=30, interval=0.5)
    assert all(len(s.inbox()) == 2 for s in solvers)
