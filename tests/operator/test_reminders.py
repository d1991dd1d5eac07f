"""Reminders people can bear: spaced 5, 10, 20, 40 min … then every 6 h, and one digest instead of a
flood in a phone's DM app."""

from __future__ import annotations

import sqlite3
import time

import pytest

from serbero_cli.delivery.audience import Audience
from serbero_cli.listen.sweep import plan_reminders, queue_renotifications
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import open_db
from serbero_cli.store.disputes import DisputeView
from tests.helpers import invoke_json

T0 = 1_800_000_000
BASE, CAP = 300, 21_600
SOLVER_A, SOLVER_B = "aa" * 32, "bb" * 32


@pytest.fixture
def store(tmp_path):
    s = open_db(tmp_path / "reminders.db")
    yield s
    s.close()


def notified(store, dispute_id: str, opened: int = T0) -> None:
    with store.immediate() as conn:
        disputes_store.insert_dispute(
            conn,
            dispute_id=dispute_id,
            event_id="e" * 64,
            mostro_pubkey="m" * 64,
            initiator_role="buyer",
            dispute_status="initiated",
            event_timestamp=opened,
            now=opened,
            lifecycle_state="new",
            assigned_solver=None,
        )
        disputes_store.move_dispute(
            conn,
            dispute_id,
            "new",
            "notified",
            opened,
            "initial_notification",
            last_notified_at=opened,
        )


def deliver_all(store, now: int) -> None:
    """Every queued reminder reaches its solver at `now` (what a flush records)."""
    from serbero_cli.delivery.outbox import after_sent

    for row in outbox.due(store, now=now, max_attempts=5):
        with store.immediate() as conn:
            assert outbox.claim(conn, row, now, "id", "{}")
            outbox.mark_sent(conn, row.id, now, ["ws://relay"])
            after_sent(conn, row, now)


def test_reminders_back_off_from_the_interval_doubling_to_the_cap(store):
    notified(store, "d-1")
    audience = Audience((SOLVER_A,), envelopes={SOLVER_A: ("nip17",)})
    sent_at, now = [], T0
    while now < T0 + 3 * 86400:
        now += 60  # a cron run every minute for three days
        if queue_renotifications(
            store,
            audience=audience,
            now=now,
            renotification_seconds=BASE,
            max_interval_seconds=CAP,
            max_attempts=5,
        ):
            deliver_all(store, now)
            sent_at.append(now)
    gaps = [b - a for a, b in zip([T0, *sent_at], sent_at, strict=False)]
    assert gaps[:7] == [300, 600, 1200, 2400, 4800, 9600, 19200]
    assert set(gaps[7:]) == {21_600}
    assert len(sent_at) == 7 + 10  # a handful a day, not 288


def test_no_second_round_while_one_is_unfinished(store):
    notified(store, "d-1")
    audience = Audience((SOLVER_A,), envelopes={SOLVER_A: ("nip17",)})
    args = {"renotification_seconds": BASE, "max_interval_seconds": CAP, "max_attempts": 5}
    assert queue_renotifications(store, audience=audience, now=T0 + BASE, **args) == 1
    assert queue_renotifications(store, audience=audience, now=T0 + 10 * BASE, **args) == 0


def view(dispute_id: str, opened: int) -> DisputeView:
    return DisputeView(dispute_id, "notified", "initiated", None, "seller", opened, opened)


def test_more_than_three_disputes_become_one_digest_in_the_nip17_envelope_only():
    due = [view(f"d-{i}", T0 - 600 * i) for i in range(4)]
    audience = Audience(
        (SOLVER_A, SOLVER_B), envelopes={SOLVER_A: ("mostro", "nip17"), SOLVER_B: ("mostro",)}
    )
    plan = plan_reminders(due, audience, T0)
    assert [(solver, [d.dispute_id for d in ds]) for solver, ds in plan.digests] == [
        (SOLVER_A, ["d-0", "d-1", "d-2", "d-3"])
    ]
    for (
        deliveries
    ) in plan.per_dispute.values():  # a send-dm belongs to one dispute: kept per dispute
        assert sorted((d.recipient, d.envelope) for d in deliveries) == [
            (SOLVER_A, "mostro"),
            (SOLVER_B, "mostro"),
        ]
    three = plan_reminders(due[:3], audience, T0)
    assert three.digests == [] and all(len(v) == 3 for v in three.per_dispute.values())


def test_a_digest_counts_every_dispute_it_lists_as_reminded(store):
    for i in range(5):
        notified(store, f"d-{i}", opened=T0 - i)
    audience = Audience((SOLVER_A,), envelopes={SOLVER_A: ("nip17",)})
    args = {"renotification_seconds": BASE, "max_interval_seconds": CAP, "max_attempts": 5}
    assert queue_renotifications(store, audience=audience, now=T0 + BASE, **args) == 1
    (row,) = outbox.due(store, now=T0 + BASE, max_attempts=5)
    assert row.notif_type == "re-notification-digest" and len(row.covered_disputes) == 5
    lines = row.body.split("\n")
    assert lines[0] == "Serbero \u00b7 unattended: 5 disputes" and len(lines) == 6
    assert lines[1].startswith("d-4, opened by the buyer, 5 min ago, ")
    assert (
        queue_renotifications(store, audience=audience, now=T0 + 10 * BASE, **args) == 0
    )  # listed: unfinished
    deliver_all(store, T0 + 2 * BASE)
    reminded = store.conn.execute(
        "SELECT reminders_sent, last_notified_at FROM disputes"
    ).fetchall()
    assert reminded == [(1, T0 + 2 * BASE)] * 5


def test_reminders_end_to_end_with_short_intervals(
    make_config, mostro, solvers, db_path, serbero_keys
):
    cfg = make_config(
        envelopes=["mostro", "nip17"],
        sections={
            "timeouts": {"renotification_seconds": 60, "renotification_max_interval_seconds": 240}
        },
    )
    opened = int(time.time()) - 3600
    disputes = [mostro.open_dispute(initiator="buyer", created_at=opened + i) for i in range(4)]
    assert invoke_json(cfg, "listen")[0] == 0
    for reminders_sent, gap in ((0, 60), (1, 120), (2, 240), (3, 240)):
        age(db_path, gap)
        code, doc, err = invoke_json(cfg, "listen")
        assert code == 0 and doc["notifications"]["sent"] == 2 * 4 + 2, (
            err
        )  # 4 mostro each + 1 digest each
        assert_counts(db_path, reminders_sent + 1)
    serbero = serbero_keys.public_key().to_hex()
    reader = solvers[0]
    subjects = [m.subject for m in reader.mostrix(serbero) if m.dispute_id == disputes[0]]
    # The runs follow each other within a second, so the messages' order on the relay is not theirs.
    assert subjects.count("new") == 1 and len(subjects) == 5
    minutes = [
        int(s.removeprefix("unattended (").removesuffix(" min)")) for s in subjects if s != "new"
    ]
    assert len(minutes) == 4 and all(
        m >= 60 for m in minutes
    )  # counted from the opening, an hour ago
    digests = [
        dm
        for dm in reader.inbox(sender=serbero)
        if dm.content.startswith("Serbero \u00b7 unattended")
    ]
    assert len(digests) == 4 and all(dm.content.count("\n") == 4 for dm in digests)


def age(db_path, seconds: int) -> None:
    """Move the last reminder `seconds` into the past (instead of waiting for it)."""
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE disputes SET last_notified_at = last_notified_at - ?", (seconds,))
    conn.commit()
    conn.close()


def assert_counts(db_path, expected: int) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert {r[0] for r in conn.execute("SELECT reminders_sent FROM disputes")} == {expected}
    finally:
        conn.close()
