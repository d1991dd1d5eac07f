"""A synthetic audit database (a year of a busy node) and the default audit views to run on it.

The tests build a small one and check that every dashboard and default list query reads an index
(EXPLAIN QUERY PLAN); `./scripts/bench --only audit-views` builds 100 000 disputes and times every
view. SQLite chooses the same plans at both sizes: nothing runs ANALYZE, so the planner has no
table statistics and decides from the schema and the query alone.
"""

from __future__ import annotations

import random
import re

from serbero_cli.audit import health, timeline, views
from serbero_cli.store.db import open_db

NOTIFICATIONS_PER_DISPUTE = 3
BIG = ("disputes", "notifications")
SOLVERS = ("a1" * 32, "b2" * 32, "c3" * 32)
NOW = 1_800_000_000


def dispute_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def build(path, disputes: int) -> None:
    """A migrated file filled with sqlite-utils' bulk insert: a year of a busy node, `disputes` of them
    with three notifications each and one mediation session per 50 disputes."""
    rng = random.Random(7)
    states = ["resolved"] * 80 + ["taken"] * 10 + ["notified"] * 5 + ["escalated"] * 3 + ["new"] * 2
    store = open_db(path)
    # A throw-away file: no journal, no fsync, a big cache (46 s -> 6 s). The migration and the
    # indexes are the real ones; the file goes back to WAL, as production files are, at the end.
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000"):
        store.conn.execute(f"PRAGMA {pragma}")
    try:
        # In time order, as a real node records them.
        opened = sorted(NOW - rng.randrange(365 * 86400) for _ in range(disputes))
        store.db["disputes"].insert_all(
            (
                {
                    "dispute_id": dispute_id(i),
                    "event_id": f"{i:064x}",
                    "mostro_pubkey": "dd" * 32,
                    "initiator_role": "buyer" if i % 2 else "seller",
                    "dispute_status": "initiated",
                    "event_timestamp": opened[i],
                    "detected_at": opened[i] + 5,
                    "lifecycle_state": rng.choice(states),
                    "last_notified_at": opened[i] + 6,
                    "last_state_change": opened[i] + 6,
                }
                for i in range(disputes)
            ),
            batch_size=10_000,
        )

        def notification(n: int) -> dict:
            i, k = divmod(n, NOTIFICATIONS_PER_DISPUTE)
            roll = rng.random()
            status = "sent" if roll < 0.95 else ("failed" if roll < 0.98 else "pending")
            attempts = rng.randint(1, 5) if status == "failed" else (1 if status == "sent" else 0)
            return {
                "dispute_id": dispute_id(i),
                "solver_pubkey": SOLVERS[k],
                "notif_type": ("initial", "re-notification", "assignment")[rng.randrange(3)],
                "status": status,
                "attempts": attempts,
                "claimed_at": opened[i] + 7 if attempts else None,
                "created_at": opened[i] + 6 + k,
                "sent_at": opened[i] + 8 if status == "sent" else None,
                "error_message": "no relay accepted: timeout" if status == "failed" else None,
                "body": f"New Mostro dispute: a solver is needed.\ndispute_id: {dispute_id(i)}\n"
                f"initiator: buyer\nevent_timestamp: {opened[i]}\nstatus: initiated",
                "relays_accepted": '["wss://relay.example"]' if status == "sent" else None,
            }

        store.db["notifications"].insert_all(
            (notification(n) for n in range(disputes * NOTIFICATIONS_PER_DISPUTE)),
            batch_size=10_000,
        )
        # A realistic mediation share: a session per 50 disputes, handoffs, dispatches and their audit rows.
        sessions = [
            (f"5e55{i:04x}-0000-4000-8000-{i:012x}", dispute_id(i * 50))
            for i in range(disputes // 50)
        ]
        store.db["mediation_sessions"].insert_all(
            (
                {
                    "session_id": s,
                    "dispute_id": d,
                    "state": rng.choice(["closed", "escalation_recommended", "awaiting_response"]),
                    "prompt_bundle_id": "b",
                    "policy_hash": "h" * 64,
                    "started_at": opened[i * 50] + 60,
                    "last_transition_at": opened[i * 50] + 600,
                }
                for i, (s, d) in enumerate(sessions)
            ),
            batch_size=2000,
        )
        store.db["mediation_events"].insert_all(
            (
                {
                    "session_id": s,
                    "kind": "handoff_prepared",
                    "occurred_at": opened[i * 50] + 900,
                    "payload_json": f'{{"dispute_id":"{d}","session_id":"{s}","trigger":"round_limit"}}',
                }
                for i, (s, d) in enumerate(sessions)
            ),
            batch_size=2000,
        )
        store.db["escalation_dispatches"].insert_all(
            (
                {
                    "dispatch_id": f"d15{i:05x}-0000-4000-8000-{i:012x}",
                    "dispute_id": d,
                    "session_id": s,
                    "handoff_event_id": i + 1,
                    "target_solver": SOLVERS[0],
                    "dispatched_at": opened[i * 50] + 910,
                    "created_at": opened[i * 50] + 910,
                    "status": "dispatched",
                    "route": "targeted",
                    "attempts": 1,
                    "finished_at": opened[i * 50] + 911,
                }
                for i, (s, d) in enumerate(sessions[: len(sessions) * 3 // 4])
            ),
            batch_size=2000,
        )
        store.conn.execute("PRAGMA journal_mode=WAL")
    finally:
        store.close()


DEFAULT_VIEWS = [
    ("dashboard", lambda s: views.run_dashboard(s, now=NOW)),
    ("disputes", lambda s: views.run_disputes(s, now=NOW)),
    ("disputes --state", lambda s: views.run_disputes(s, now=NOW, state="notified")),
    ("disputes --since", lambda s: views.run_disputes(s, now=NOW, since="2h")),
    ("notifications", lambda s: views.run_notifications(s, now=NOW)),
    (
        "notifications --status failed",
        lambda s: views.run_notifications(s, now=NOW, status="failed"),
    ),
    (
        "notifications --status failed_final",
        lambda s: views.run_notifications(s, now=NOW, status="failed_final"),
    ),
    (
        "notifications --type",
        lambda s: views.run_notifications(s, now=NOW, notif_type="assignment"),
    ),
    (
        "notifications --dispute",
        lambda s: views.run_notifications(s, now=NOW, dispute=dispute_id(1242)),
    ),
    ("notifications --since", lambda s: views.run_notifications(s, now=NOW, since="7d")),
    ("sessions", lambda s: views.run_sessions(s, now=NOW)),
    ("sessions --state live", lambda s: views.run_sessions(s, now=NOW, state="live")),
    ("events", lambda s: views.run_events(s, now=NOW)),
    ("events --dispute", lambda s: views.run_events(s, now=NOW, dispute=dispute_id(100))),
    ("handoffs", lambda s: views.run_handoffs(s, now=NOW)),
    ("handoffs --stuck", lambda s: views.run_handoffs(s, now=NOW, stuck=True)),
    ("dispatches", lambda s: views.run_dispatches(s, now=NOW)),
    ("dispute ID", lambda s: timeline.run_dispute(s, now=NOW, dispute=dispute_id(100)[:13])),
    ("status", lambda s: health.run_status(s, now=NOW)),
]
_BARE_SCAN = re.compile(r"^SCAN (\w+)$")


def plan_problems(conn, sql: str) -> tuple[list[str], list[str]]:
    """(the plan lines, what is wrong with them): a big table read without an index, or sorted whole."""
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    problems = []
    scans_big = False
    for line in plan:
        bare = _BARE_SCAN.match(line)
        if bare and bare.group(1) in BIG:
            problems.append(f"full table scan: {line}")
        if line.startswith("SCAN ") and line.split()[1] in BIG:
            scans_big = True
    if scans_big and any("TEMP B-TREE FOR ORDER BY" in line for line in plan):
        problems.append("a big table is read through an index in the wrong order and then sorted")
    return plan, problems
