"""A database with a whole story in it, built once per test session by the real phase code.

`serbero listen` runs as a subprocess against a real loopback relay while a simulated Mostro
opens, takes and settles disputes, so disputes, transitions and notifications are real. The
mediation rows (mediate-once needs a reasoning provider and Mostro's take protocol) are written
with the store helpers and plain sqlite-utils inserts, the way mediate-once writes them. Then the
real `serbero dispatch-once` delivers, supersedes and rejects the handoffs. Each test gets its
own copy of the file, so tests may plant rows without affecting each other.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import nostr_sdk as ns
import pytest
from typer.testing import CliRunner

from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store import sync
from serbero_cli.store.db import open_db
from serbero_cli.store.mediation import insert_event
from tests.helpers import run_json, write_config

# A and B share the prefix "abcd1234-0000-4000-8000-00000000000": prefix tests rely on it.
A = "abcd1234-0000-4000-8000-00000000000a"
B = "abcd1234-0000-4000-8000-00000000000b"
C = "c0ffee00-1111-4111-8111-111111111111"
D = "d00d0000-2222-4222-8222-222222222222"
SESSION = "5e551011-3333-4333-8333-333333333333"
RATIONALE_TEXT = "RATIONALE-ONLY-7f3a: the buyer's story is inconsistent with the payment proof"
SUMMARY_RATIONALE_TEXT = "RATIONALE-ONLY-91c2: both parties agree the payment arrived late"
BUNDLE = ("serbero-default", "ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12")


# The story has mediation and escalation rows, so the configs that read it switch both on.
FEATURES_ON = {
    "escalation": {"enabled": True},
    "mediation": {"enabled": True},
    "reasoning": {"enabled": True},
}


@dataclass(frozen=True)
class Story:
    """The template database and what is in it."""

    db: Path
    config: Path
    private_key: str
    mostro_pubkey: str
    relay_url: str
    reader: str
    writer: str
    rationale_id: str
    summary_rationale_id: str
    built_at: int


def package(
    dispute_id: str, session_id: str | None, trigger: str, at: int, rationale_refs: list[str]
) -> str:
    """A handoff package in the field order of docs/wire-formats.md#handoff-package (never sorted)."""
    body = {"dispute_id": dispute_id}
    if session_id:
        body["session_id"] = session_id
    body.update(
        {
            "trigger": trigger,
            "evidence_refs": ["evt:1", "evt:2"],
            "prompt_bundle_id": BUNDLE[0],
            "policy_hash": BUNDLE[1],
            "rationale_refs": rationale_refs,
            "assembled_at": at,
        }
    )
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def rationale_id_of(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _mediation_rows(db: Path, now: int, reader_keys: ns.Keys) -> tuple[str, str]:
    """Session, messages, rationales, events and a summary for A; handoffs for A, C and D."""
    rid, srid = rationale_id_of(RATIONALE_TEXT), rationale_id_of(SUMMARY_RATIONALE_TEXT)
    store = open_db(db)
    try:
        with store.immediate() as conn:
            disputes_store.move_dispute(
                conn, A, "notified", "taken", now - 3000, "mediation:take", assigned_solver="f" * 64
            )
            disputes_store.move_dispute(
                conn, A, "taken", "waiting", now - 2990, "mediation:awaiting_parties"
            )
            store.db["mediation_sessions"].insert(
                {
                    "session_id": SESSION,
                    "dispute_id": A,
                    "state": "escalation_recommended",
                    "round_count": 2,
                    "prompt_bundle_id": BUNDLE[0],
                    "policy_hash": BUNDLE[1],
                    "current_classification": "conflicting_claims",
                    "current_confidence": 0.42,
                    "buyer_shared_pubkey": "b1" * 32,
                    "seller_shared_pubkey": "5e" * 32,
                    "started_at": now - 3000,
                    "last_transition_at": now,
                }
            )
            for r, text, at in (
                (rid, RATIONALE_TEXT, now - 2000),
                (srid, SUMMARY_RATIONALE_TEXT, now - 1900),
            ):
                store.db["reasoning_rationales"].insert(
                    {
                        "rationale_id": r,
                        "session_id": SESSION,
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "prompt_bundle_id": BUNDLE[0],
                        "policy_hash": BUNDLE[1],
                        "rationale_text": text,
                        "generated_at": at,
                    }
                )
            messages = [
                (
                    "outbound",
                    "buyer",
                    now - 2995,
                    "Hello buyer: when did you send the payment? [bold]x[/bold]",
                    0,
                ),
                ("outbound", "seller", now - 2995, "Hello seller: did the payment arrive?", 0),
                (
                    "inbound",
                    "buyer",
                    now - 2500,
                    "I paid yesterday \x1b[31mred\x1b[0m, here is the proof",
                    0,
                ),
                ("inbound", "seller", now - 2400, "Nothing arrived on my side", 0),
                ("inbound", "buyer", now - 2300, "an older copy that arrived late", 1),
            ]
            for i, (direction, party, at, content, stale) in enumerate(messages):
                store.db["mediation_messages"].insert(
                    {
                        "session_id": SESSION,
                        "direction": direction,
                        "party": party,
                        "shared_pubkey": ("b1" if party == "buyer" else "5e") * 32,
                        "inner_event_id": f"{i:064x}",
                        "inner_event_created_at": at,
                        "content": content,
                        "persisted_at": at,
                        "stale": stale,
                        "published_at": at if direction == "outbound" else None,
                        "publish_attempts": 1 if direction == "outbound" else 0,
                        "envelope": "giftwrap",
                        "prompt_bundle_id": BUNDLE[0],
                        "policy_hash": BUNDLE[1],
                    }
                )
            insert_event(
                conn, "session_opened", {}, now=now - 3000, session_id=SESSION, bundle=BUNDLE
            )
            insert_event(
                conn,
                "classification_produced",
                {"classification": "conflicting_claims", "confidence": 0.42, "rationale_id": rid},
                now=now - 2000,
                session_id=SESSION,
                rationale_id=rid,
                bundle=BUNDLE,
            )
            store.db["mediation_summaries"].insert(
                {
                    "session_id": SESSION,
                    "dispute_id": A,
                    "classification": "coordination_failure_resolvable",
                    "confidence": 0.8,
                    "suggested_next_step": "Ask the buyer for the bank reference.",
                    "summary_text": "The buyer says the payment was sent; the seller has not seen it yet.",
                    "prompt_bundle_id": BUNDLE[0],
                    "policy_hash": BUNDLE[1],
                    "rationale_id": srid,
                    "generated_at": now - 1900,
                }
            )
            # The escalation happens now, so dispatch-once delivers it within seconds (p95 check passes).
            insert_event(
                conn,
                "escalation_recommended",
                {
                    "dispute_id": A,
                    "evidence_refs": ["evt:1"],
                    "rationale_refs": [rid],
                    "trigger": "conflicting_claims",
                },
                now=now,
                session_id=SESSION,
                bundle=BUNDLE,
            )
            insert_event(
                conn,
                "handoff_prepared",
                package(A, SESSION, "conflicting_claims", now, [rid]),
                now=now,
                session_id=SESSION,
                bundle=BUNDLE,
            )
            disputes_store.move_dispute(
                conn, A, "waiting", "escalated", now, "mediation:conflicting_claims"
            )
            # C was settled by Mostro after its handoff was written: dispatch-once supersedes it.
            insert_event(
                conn,
                "handoff_prepared",
                package(C, None, "party_unresponsive", now - 1100, []),
                now=now - 1100,
                bundle=BUNDLE,
            )
            # A malformed package (trigger is not a string): dispatch-once records parse_failed.
            insert_event(
                conn,
                "handoff_prepared",
                json.dumps({"dispute_id": D, "trigger": 5}),
                now=now - 1000,
                bundle=BUNDLE,
            )
            # A re-notification that failed for good (5 attempts), and one still being retried.
            reader = reader_keys.public_key().to_hex()
            outbox.queue(
                conn,
                D,
                "re-notification",
                [outbox.Delivery(reader, "nip17", "reminder D")],
                now - 900,
            )
            outbox.queue(
                conn,
                B,
                "re-notification",
                [outbox.Delivery(reader, "nip17", "reminder B")],
                now - 800,
            )
        for dispute_id, tries in ((D, 5), (B, 1)):
            for attempt in range(tries):
                (row,) = [
                    r
                    for r in outbox.due(store, now=now, max_attempts=5)
                    if r.dispute_id == dispute_id
                ]
                with store.immediate() as conn:
                    assert outbox.claim(conn, row, now - 700 + attempt, None, None)
                    outbox.mark_failed(
                        conn, row.id, "no relay accepted: ws://127.0.0.1:1: connection refused"
                    )
        sync.save_last_run(
            store,
            "mediate_once",
            {"report": "mediate_once/v1", "exit_code": 0, "dry_run": False},
            now - 1150,
        )
    finally:
        store.close()
    return rid, srid


def _pending_handoff(db: Path, now: int) -> None:
    store = open_db(db)
    try:
        with store.immediate() as conn:
            insert_event(
                conn,
                "handoff_prepared",
                package(D, None, "party_unresponsive", now - 600, []),
                now=now - 600,
                bundle=BUNDLE,
            )
    finally:
        store.close()
    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


@pytest.fixture(scope="session")
def story(tmp_path_factory) -> Story:
    from serbero_cli.simulate.mostro import SimMostro
    from serbero_cli.simulate.relay import start_relay
    from serbero_cli.simulate.solver import SimSolver

    base = tmp_path_factory.mktemp("story")
    relay = start_relay()
    mostro = SimMostro(relay.url)
    reader = SimSolver(relay.url, permission="read", name="reader")
    writer = SimSolver(relay.url, permission="write", name="writer")
    keys = ns.Keys.generate()
    db = base / "serbero.db"
    config = write_config(
        base / "config.toml",
        private_key=keys.secret_key().to_hex(),
        mostro_pubkey=mostro.pubkey,
        relays=[relay.url],
        solvers=[(reader.pubkey, "read"), (writer.pubkey, "write")],
        db_path=str(db),
        sections={"escalation": {"enabled": True}},
    )
    try:
        now = int(time.time())
        for i, (dispute_id, initiator) in enumerate(
            ((A, "buyer"), (B, "seller"), (C, "buyer"), (D, "seller"))
        ):
            mostro.open_dispute(dispute_id, initiator=initiator, created_at=now - 5000 + 500 * i)
        code, doc, err = run_json(config, "listen")
        assert code == 0 and doc["notifications"]["sent"] == 8, (doc, err)
        mostro.set_status(B, "in-progress", solver=writer.pubkey, initiator="seller")
        mostro.set_status(C, "settled")
        code, doc, err = run_json(config, "listen")
        assert code == 0 and doc["disputes"] == {"new": 0, "taken": 1, "resolved": 1}, (doc, err)
        rid, srid = _mediation_rows(db, int(time.time()), reader.keys)
        code, doc, err = run_json(config, "dispatch-once")
        assert (
            code == 0
            and doc["counts"]["dispatched"] == 1
            and doc["counts"]["superseded"] == 1
            and doc["counts"]["parse_failed"] == 1
        ), (doc, err)
        _pending_handoff(db, int(time.time()))
        yield Story(
            db,
            config,
            keys.secret_key().to_hex(),
            mostro.pubkey,
            relay.url,
            reader.pubkey,
            writer.pubkey,
            rid,
            srid,
            now,
        )
    finally:
        for sim in (mostro, reader, writer):
            sim.close()
        relay.shutdown()


@pytest.fixture
def audit_db(tmp_path, story) -> tuple[Path, Path]:
    """A private copy of the story database and a config pointing at it: (config, db)."""
    db = tmp_path / "serbero.db"
    shutil.copyfile(story.db, db)
    config = write_config(
        tmp_path / "config.toml",
        private_key=story.private_key,
        mostro_pubkey=story.mostro_pubkey,
        relays=[story.relay_url],
        solvers=[(story.reader, "read"), (story.writer, "write")],
        db_path=str(db),
        sections=FEATURES_ON,
    )
    return config, db


@pytest.fixture
def audit(audit_db):
    """Run `serbero --config <copy> audit ARGS…` in-process; return the click Result.

    The terminal is pinned 200 columns wide, whatever the test runner inherited, so the tables show
    every column; tests/audit/test_width.py checks the narrow layouts on purpose."""
    config, _ = audit_db
    runner = CliRunner(env={"COLUMNS": "200"})

    def invoke(*args: str):
        from serbero_cli.cli.app import app

        return runner.invoke(app, ["--config", str(config), "audit", *args], catch_exceptions=False)

    return invoke


def plant(db: Path, sql: str, params: tuple = ()) -> None:
    """Write a row straight into a test's copy (never into the story template)."""
    conn = sqlite3.connect(str(db))
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()
