"""The outbox's failure paths (docs/delivery.md#outbox): a `sending` row past its attempts is abandoned
without another send, a row another process claimed first is left to that process, and a message
that cannot be built is recorded failed with its reason while the rest of the run goes on.

The flush runs on a real SQLite file and publishes through Serbero's own sender and relay pool to a
loopback relay, where simulated solvers read what arrived.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid

from serbero_cli.delivery.outbox import flush_outbox
from serbero_cli.keytext import Secret
from serbero_cli.nostr.dm import DmSender
from serbero_cli.nostr.relays import RelayPool
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import open_db
from serbero_cli.store.notifications import Delivery
from tests.helpers import db_rows, invoke_json

MAX_ATTEMPTS = 3
# NIP-44 encrypts at most 65 535 bytes of plaintext: this body cannot become a NIP-17 message.
TOO_LONG = "x" * 70_000
CONTESTED = "a message another process is sending"


def add_dispute(store, now: int) -> str:
    dispute_id = str(uuid.uuid4())
    with store.immediate() as conn:
        disputes_store.insert_dispute(
            conn,
            dispute_id=dispute_id,
            event_id="e" * 64,
            mostro_pubkey="f" * 64,
            initiator_role="buyer",
            dispute_status="initiated",
            event_timestamp=now - 60,
            now=now,
            lifecycle_state="notified",
            assigned_solver=None,
        )
    return dispute_id


def queue_one(store, dispute_id: str, recipient: str, body: str, now: int) -> int:
    with store.immediate() as conn:
        outbox.queue(conn, dispute_id, "assignment", [Delivery(recipient, "nip17", body)], now)
        return conn.execute("SELECT MAX(id) FROM notifications").fetchone()[0]


class RivalClaimsFirst:
    """Serbero's own sender; while this run builds the message for `row_id`, another writer (its own
    connection to the same file, as a second process has) claims that row first."""

    def __init__(self, sender: DmSender, db_path, row_id: int):
        self.sender, self.db_path, self.row_id = sender, db_path, row_id
        self.rival_event_id: str | None = None

    def build(self, envelope, recipient_hex, dispute_id, text, now):
        built = self.sender.build(envelope, recipient_hex, dispute_id, text, now)
        if text != CONTESTED or self.rival_event_id is not None:
            return built
        rival = open_db(self.db_path)
        try:
            (row,) = [
                r
                for r in outbox.due(rival, now=now, max_attempts=MAX_ATTEMPTS)
                if r.id == self.row_id
            ]
            other = self.sender.build(envelope, recipient_hex, dispute_id, text, now)
            with rival.immediate() as conn:
                assert outbox.claim(conn, row, now, other.id, other.json)
            self.rival_event_id = other.id
        finally:
            rival.close()
        return built

    async def publish(self, event_json, extra_relays=(), *, event=None):
        return await self.sender.publish(event_json, extra_relays=extra_relays, event=event)


def flush(db_path, relay_url, serbero_keys, wrap=None):
    async def go():
        pool = RelayPool([relay_url])
        try:
            await pool.connect(5)
            sender = DmSender(pool, Secret(serbero_keys.secret_key().to_hex()), 5)
            store = open_db(db_path)
            try:
                return await flush_outbox(
                    store,
                    wrap(sender) if wrap else sender,
                    clock=time.time,
                    max_attempts=MAX_ATTEMPTS,
                )
            finally:
                store.close()
        finally:
            await pool.close()

    return asyncio.run(go())


def test_a_sending_row_past_its_attempts_is_abandoned_and_a_row_claimed_elsewhere_is_not_sent(
    db_path, relay, solvers, serbero_keys
):
    reader, writer = solvers
    now = int(time.time())
    store = open_db(db_path)
    try:
        dispute = add_dispute(store, now)
        normal = queue_one(store, dispute, reader.pubkey, "an ordinary message", now)
        spent = queue_one(
            store, dispute, writer.pubkey, "a message that was tried three times", now
        )
        contested = queue_one(store, dispute, writer.pubkey, CONTESTED, now)
    finally:
        store.close()
    # `spent` died in flight on its last attempt: it holds its stored event and no attempts are left.
    event = DmSender(None, Secret(serbero_keys.secret_key().to_hex()), 5).build(
        "nip17", writer.pubkey, dispute, "a message that was tried three times", now
    )
    conn = sqlite3.connect(db_path)
    conn.execute(
        "UPDATE notifications SET status='sending', attempts=?, claimed_at=?, event_id=?, event_json=? "
        "WHERE id=?",
        (MAX_ATTEMPTS, now - 30, event.id, event.json, spent),
    )
    conn.commit()
    conn.close()

    rivals = []

    def wrap(sender):
        rivals.append(RivalClaimsFirst(sender, db_path, contested))
        return rivals[0]

    result = flush(db_path, relay.url, serbero_keys, wrap)
    # Only the ordinary row went out; abandoning is not a send failure and a lost claim is no outcome.
    assert (result.sent, result.failed, result.sent_ids) == (1, 0, [normal])
    rows = {
        r["id"]: r
        for r in db_rows(
            db_path, "SELECT id, status, attempts, error_message, event_id FROM notifications"
        )
    }
    assert rows[normal]["status"] == "sent" and rows[normal]["attempts"] == 1
    assert (rows[spent]["status"], rows[spent]["error_message"], rows[spent]["attempts"]) == (
        "failed",
        "abandoned",
        MAX_ATTEMPTS,
    )
    # The contested row is the rival's: its claim and its event stand, and this run sent nothing for it.
    assert (rows[contested]["status"], rows[contested]["attempts"]) == ("sending", 1)
    assert rows[contested]["event_id"] == rivals[0].rival_event_id
    assert [dm.content for dm in reader.inbox()] == ["an ordinary message"]
    assert writer.inbox() == []


def test_a_message_that_cannot_be_built_fails_with_its_reason_and_the_run_goes_on(
    make_config, mostro, solvers, db_path
):
    reader, writer = solvers
    cfg = make_config()
    dispute = mostro.open_dispute()
    assert invoke_json(cfg, "listen")[0] == 0
    store = open_db(db_path)
    try:
        now = int(time.time())
        huge = queue_one(store, dispute, reader.pubkey, TOO_LONG, now)
        fine = queue_one(store, dispute, writer.pubkey, "a message that fits", now)
    finally:
        store.close()
    code, doc, err = invoke_json(cfg, "listen")
    assert (
        code == 4 and doc["notifications"]["failed"] == 1 and doc["notifications"]["sent"] == 1
    ), err
    rows = {
        r["id"]: r
        for r in db_rows(db_path, "SELECT id, status, error_message, event_json FROM notifications")
    }
    assert rows[huge]["status"] == "failed" and rows[huge]["event_json"] is None
    assert rows[huge]["error_message"].startswith("cannot build nip17 message: ")
    assert rows[fine]["status"] == "sent"
    assert f"notification={huge} " in err and "cannot build nip17 message" in err
    assert "a message that fits" in [dm.content for dm in writer.inbox()]
    assert all(len(dm.content) < 1000 for dm in reader.inbox())
