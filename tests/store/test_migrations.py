"""Migrations (docs/architecture.md#migrations): ordered, each in its own BEGIN IMMEDIATE, exactly once, never
past the code."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from serbero_cli.errors import DatabaseMissing, DatabaseTooNew
from serbero_cli.store import migrations
from serbero_cli.store.db import open_db


def columns(store, table):
    return {r["name"] for r in store.query(f"PRAGMA table_info({table})")}


def test_fresh_database_gets_every_table_and_column(tmp_path):
    store = open_db(tmp_path / "s.db")
    for table in (
        "disputes",
        "notifications",
        "dispute_state_transitions",
        "sync_state",
        "mediation_sessions",
        "mediation_messages",
        "reasoning_rationales",
        "mediation_summaries",
        "mediation_events",
        "mediation_solver_auth",
        "escalation_dispatches",
    ):
        assert store.table_exists(table), table
    assert {"claimed_at", "relays_accepted", "body"} <= columns(store, "notifications")
    assert {"buyer_trade_pubkey", "buyer_chat_conv_pubkey", "take_revision_created_at"} <= columns(
        store, "mediation_sessions"
    )
    assert {"published_at", "publish_attempts", "envelope", "legacy_required"} <= columns(
        store, "mediation_messages"
    )
    assert {"route", "attempts", "finished_at"} <= columns(store, "escalation_dispatches")
    assert store.scalar("PRAGMA journal_mode") == "wal" and store.scalar("PRAGMA foreign_keys") == 1
    assert migrations.pending(store.conn) == []
    store.close()


def test_failing_migration_rolls_back(tmp_path):
    def good(conn):
        conn.execute("CREATE TABLE a (x)")

    def bad(conn):
        conn.execute("CREATE TABLE b (x)")
        raise RuntimeError("boom")

    store = open_db(tmp_path / "s.db", migrate=False)
    with pytest.raises(RuntimeError):
        migrations.apply(store, (good, bad))
    assert store.table_exists("a") and not store.table_exists("b")
    assert migrations.current_version(store.conn) == 1


def test_rerun_after_failure_applies_each_migration_once(tmp_path):
    calls = []

    def one(conn):
        calls.append(1)
        conn.execute("CREATE TABLE a (x)")

    state = {"fail": True}

    def two(conn):
        calls.append(2)
        if state["fail"]:
            raise RuntimeError("boom")
        conn.execute("CREATE TABLE b (x)")

    store = open_db(tmp_path / "s.db", migrate=False)
    with pytest.raises(RuntimeError):
        migrations.apply(store, (one, two))
    state["fail"] = False
    assert migrations.apply(store, (one, two)) == ["two"]
    assert calls == [1, 2, 2]


def test_pending_and_current_version_are_read_only(tmp_path):
    path = tmp_path / "s.db"
    open_db(path, migrate=False).close()
    conn = sqlite3.connect(path)
    before = conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    assert migrations.pending(conn) == [m.__name__ for m in migrations.MIGRATIONS]
    assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone() == before


def test_database_newer_than_the_code_refuses_to_open(tmp_path):
    path = tmp_path / "s.db"
    open_db(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?)", (len(migrations.MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    for readonly in (False, True):
        with pytest.raises(
            DatabaseTooNew, match=r"written by a newer serbero \(schema \d+; .*upgrade serbero"
        ) as info:
            open_db(path, readonly=readonly)
        assert info.value.exit_code == 2


def test_readonly_open_never_creates_or_migrates(tmp_path):
    with pytest.raises(DatabaseMissing):
        open_db(tmp_path / "missing.db", readonly=True)
    assert not (tmp_path / "missing.db").exists()
    path = tmp_path / "old.db"
    open_db(path, migrate=False).close()
    store = open_db(path, readonly=True)
    assert migrations.current_version(store.conn) == 0
    with pytest.raises(sqlite3.OperationalError):
        store.conn.execute("CREATE TABLE x (y)")


def test_two_first_runs_at_once_apply_each_migration_once(tmp_path):
    path = tmp_path / "race.db"
    code = f"import sys; from serbero_cli.store.db import open_db; open_db({str(path)!r}).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(4)]
    assert [p.wait(60) for p in procs] == [0] * 4
    conn = sqlite3.connect(path)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(migrations.MIGRATIONS) + 1))


def test_guarded_dispute_index_tolerates_malformed_payloads(tmp_path):
    from serbero_cli.store.mediation import DISPUTE_EXPR

    store = open_db(tmp_path / "s.db")
    with store.immediate() as conn:
        conn.execute(
            "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('x', 'not json', 1)"
        )
        conn.execute(
            "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('x', X'00ff', 1)"
        )
        conn.execute("""INSERT INTO mediation_events (kind, payload_json, occurred_at)
                        VALUES ('x', '{"dispute_id":"d1"}', 1)""")
    rows = store.query(
        f"SELECT id FROM mediation_events WHERE session_id IS NULL AND ({DISPUTE_EXPR}) = 'd1'"
    )
    assert len(rows) == 1
    plan = " ".join(
        r["detail"]
        for r in store.query(
            f"EXPLAIN QUERY PLAN SELECT id FROM mediation_events WHERE session_id IS NULL AND ({DISPUTE_EXPR}) = 'd1'"
        )
    )
    assert "idx_mediation_events_dispute" in plan


def test_the_handoff_audit_index_has_the_expression_the_queries_use(tmp_path):
    """SQLite uses an expression index only for the same expression: the migration's literal text and
    `handoff_ref()` must stay one expression."""
    import re

    from serbero_cli.store.mediation import handoff_ref

    store = open_db(tmp_path / "x.db")
    try:
        (sql,) = store.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name='idx_mediation_events_handoff_audit'"
        ).fetchone()
    finally:
        store.close()

    def flat(text: str) -> str:
        return re.sub(r"\s+", " ", text).replace("( ", "(").replace(" )", ")").strip()

    assert flat(handoff_ref()) in flat(sql)
