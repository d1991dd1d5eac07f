"""The dispatch table, the store functions of this phase, and its config."""

from __future__ import annotations

import json
import sqlite3

import pytest
import tomlkit

from serbero_cli.config import load_config
from serbero_cli.keytext import is_valid_xonly
from serbero_cli.store import dispatches, migrations
from serbero_cli.store.db import open_db
from serbero_cli.store.dispatches import HandoffRow
from tests.dispatch_once.conftest import BUNDLE, package_json
from tests.helpers import db_rows, invoke


def insert_dispatch(
    conn, dispatch_id: str, handoff_id: int, dispute: str, *, status="sending", attempts=1
):
    conn.execute(
        "INSERT INTO escalation_dispatches (dispatch_id, dispute_id, handoff_event_id, target_solver, "
        "dispatched_at, created_at, status, attempts) VALUES (?,?,?,?,?,?,?,?)",
        (dispatch_id, dispute, handoff_id, "ab", 1, 1, status, attempts),
    )


def test_check_constraints_and_one_row_per_handoff(seed, db_path):
    dispute = seed.dispute()
    ids = [seed.handoff(dispute) for _ in range(5)]
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        for handoff_id, status in zip(ids, ("sending", "dispatched", "send_failed"), strict=False):
            insert_dispatch(conn, f"d-{status}", handoff_id, dispute, status=status)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            insert_dispatch(conn, "d-bogus", ids[3], dispute, status="bogus")
        for attempts in (0, 4):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                insert_dispatch(conn, f"d-{attempts}", ids[3], dispute, attempts=attempts)
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            insert_dispatch(conn, "d-second", ids[0], dispute)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "UPDATE escalation_dispatches SET attempts = 4 WHERE dispatch_id = 'd-sending'"
            )
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute(
                "UPDATE escalation_dispatches SET route = 'sideways' WHERE dispatch_id = 'd-sending'"
            )
    finally:
        conn.close()
    with open_db(db_path) as store:
        handoff = HandoffRow(ids[0], None, *BUNDLE, 0)
        assert dispatches.claim_handoff(
            store,
            handoff,
            dispute_id=dispute,
            route="broadcast",
            recipients=["ab"],
            fallback_broadcast=False,
            now=5,
        ) == (None, "claimed by another run")


def test_migration_is_idempotent_and_keeps_existing_rows(db_path):
    store = open_db(db_path, migrate=False)
    try:
        migrations.apply(store, migrations.MIGRATIONS[:2])
        assert not store.table_exists("escalation_dispatches")
        with store.immediate() as conn:
            conn.execute(
                "INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, dispute_status, event_timestamp, "
                "detected_at) VALUES ('d', 'e', 'm', 'initiated', 1, 1)"
            )
            conn.execute(
                "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('handoff_prepared', ?, 1)",
                (package_json("d"),),
            )
            conn.execute(
                "INSERT INTO notifications (dispute_id, solver_pubkey, notif_type, status, created_at, body) "
                "VALUES ('d', 's', 'initial', 'sent', 1, 'b')"
            )
        before = {
            t: store.query(f"SELECT * FROM {t}")
            for t in ("disputes", "mediation_events", "notifications")
        }
        assert migrations.apply(store)[0] == "add_escalation_dispatches"
        assert migrations.apply(store) == []
        # Later migrations add columns; the values that were there stay as they were.
        after = {
            t: [
                {k: row[k] for k in old}
                for row, old in zip(store.query(f"SELECT * FROM {t}"), before[t], strict=True)
            ]
            for t in before
        }
        assert before == after
        indexes = {
            r["name"]: r["unique"] for r in store.query("PRAGMA index_list(escalation_dispatches)")
        }
        assert indexes["idx_escalation_dispatches_handoff"] == 1
        assert {"idx_escalation_dispatches_dispute", "idx_escalation_dispatches_sending"} <= set(
            indexes
        )
        columns = {r["name"] for r in store.query("PRAGMA table_info(escalation_dispatches)")}
        assert {"route", "attempts", "finished_at", "fallback_broadcast", "status"} <= columns
    finally:
        store.close()


def test_superseded_and_unroutable_writers_copy_row_pins_once_per_handoff(seed, db_path):
    dispute = seed.dispute(state="resolved")
    session = seed.session(dispute)
    other = seed.dispute()
    # The payload names different pins: the audit rows must take the ROW's columns.
    payload = package_json(dispute, session_id=session).replace('"bundle-a"', '"payload-bundle"')
    with open_db(db_path) as store:
        with store.immediate() as conn:
            first = conn.execute(
                "INSERT INTO mediation_events (session_id, kind, payload_json, prompt_bundle_id, "
                "policy_hash, occurred_at) VALUES (?, 'handoff_prepared', ?, 'row-bundle', 'row-hash', 1)",
                (session, payload),
            ).lastrowid
        row = HandoffRow(first, session, "row-bundle", "row-hash", 1)
        second = HandoffRow(seed.handoff(dispute), None, *BUNDLE, 1)
        assert dispatches.record_superseded(store, row, dispute_id=dispute, now=10) is True
        assert dispatches.record_superseded(store, row, dispute_id=dispute, now=11) is False
        assert dispatches.record_superseded(store, second, dispute_id=dispute, now=12) is True
        third = HandoffRow(seed.handoff(other), None, *BUNDLE, 1)
        assert (
            dispatches.record_superseded(store, third, dispute_id=other, now=13) is False
        )  # not resolved
        assert dispatches.record_unroutable(
            store, third, dispute_id=other, configured_solver_count=2, now=14
        )
        assert not dispatches.record_unroutable(
            store, third, dispute_id=other, configured_solver_count=2, now=15
        )
        assert not dispatches.record_unroutable(
            store, row, dispute_id=dispute, configured_solver_count=2, now=16
        )
    rows = db_rows(
        db_path,
        "SELECT kind, session_id, prompt_bundle_id, policy_hash, payload_json, occurred_at "
        "FROM mediation_events WHERE kind LIKE 'escalation_%' ORDER BY id",
    )
    assert rows[0] == {
        "kind": "escalation_superseded",
        "session_id": session,
        "prompt_bundle_id": "row-bundle",
        "policy_hash": "row-hash",
        "occurred_at": 10,
        "payload_json": f'{{"dispute_id":"{dispute}","handoff_event_id":{first},'
        '"reason":"dispute_already_resolved"}',
    }
    assert json.loads(rows[1]["payload_json"])["handoff_event_id"] == second.id
    assert rows[2]["payload_json"] == (
        f'{{"configured_solver_count":2,"dispute_id":"{other}",'
        f'"fallback_to_all_solvers":false,"handoff_event_id":{third.id}}}'
    )
    assert len(rows) == 3


def test_parse_failed_detail_verbatim_and_finalize_is_atomic(seed, db_path):
    dispute = seed.dispute()
    detail = "x" * 499 + "\u00e9"
    with open_db(db_path) as store:
        broken = HandoffRow(seed.handoff(payload="{"), None, *BUNDLE, 1)
        assert dispatches.record_parse_failed(
            store, broken, dispute_id="unknown", reason="deserialize_failed", detail=detail, now=3
        )
        assert not dispatches.record_parse_failed(
            store, broken, dispute_id="unknown", reason="deserialize_failed", detail=detail, now=4
        )
        handoff = HandoffRow(seed.handoff(dispute), None, *BUNDLE, 1)
        dispatch_id, _ = dispatches.claim_handoff(
            store,
            handoff,
            dispute_id=dispute,
            route="broadcast",
            recipients=["aa", "bb"],
            fallback_broadcast=False,
            now=5,
        )
        row = dispatches.dispatch_for_handoff(store, handoff.id)
        store.conn.execute(
            "CREATE TRIGGER fail_audit BEFORE INSERT ON mediation_events "
            "WHEN NEW.kind = 'escalation_dispatched' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
            dispatches.finalize_dispatch(store, row, handoff, status="dispatched", now=6)
        assert dispatches.dispatch_for_handoff(store, handoff.id).status == "sending"
        store.conn.execute("DROP TRIGGER fail_audit")
        assert dispatches.finalize_dispatch(store, row, handoff, status="dispatched", now=7)
        assert not dispatches.finalize_dispatch(store, row, handoff, status="dispatched", now=8)
        assert dispatches.dispatch_for_handoff(store, handoff.id).finished_at == 7
    (failed,) = seed.audit("escalation_dispatch_parse_failed")
    assert failed["payload"]["detail"] == detail
    (audit,) = seed.audit("escalation_dispatched")
    assert (
        audit["payload"]["dispatch_id"] == dispatch_id
        and audit["payload"]["target_solver"] == "aa,bb"
    )


def test_dispatch_lookup_raises_on_a_missing_table(db_path):
    store = open_db(db_path, migrate=False)
    try:
        migrations.apply(store, migrations.MIGRATIONS[:2])
        with pytest.raises(dispatches.DbError, match="no such table"):
            dispatches.dispatch_for_handoff(store, 1)
        with pytest.raises(dispatches.DbError):
            dispatches.fresh_handoffs(store)
    finally:
        store.close()


def test_scan_pages_visit_each_candidate_once_in_id_order(seed, db_path):
    dispute = seed.dispute()
    with open_db(db_path) as store:
        assert (
            dispatches.fresh_handoffs(store) == []
            and list(dispatches.iter_fresh_pages(store)) == []
        )
        ids = []
        for index in range(9):
            ids.append(seed.handoff(dispute, trigger=f"t{index}"))
            with store.immediate() as conn:
                conn.execute(
                    "INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('note', '{}', 1)"
                )
        rows = {i: HandoffRow(i, None, *BUNDLE, 1) for i in ids}
        for handoff_id, status in (
            (ids[1], "dispatched"),
            (ids[4], "send_failed"),
            (ids[6], "sending"),
        ):
            dispatch_id, _ = dispatches.claim_handoff(
                store,
                rows[handoff_id],
                dispute_id=dispute,
                route="broadcast",
                recipients=["aa"],
                fallback_broadcast=False,
                now=1,
            )
            if status != "sending":
                dispatches.finalize_dispatch(
                    store,
                    dispatches.dispatch_for_handoff(store, handoff_id),
                    rows[handoff_id],
                    status=status,
                    now=2,
                )
        dispatches.record_parse_failed(
            store, rows[ids[2]], dispute_id=dispute, reason="deserialize_failed", detail="x", now=3
        )
        dispatches.record_superseded(
            store, rows[ids[3]], dispute_id=dispute, now=3
        )  # not resolved: no row
        expected = [ids[0], ids[3], ids[5], ids[7], ids[8]]
        for size in (1, 2, 500):
            visited = [
                h.id for page in dispatches.iter_fresh_pages(store, page_size=size) for h in page
            ]
            assert visited == expected, size
        assert [d.handoff_event_id for d, _ in dispatches.sending_dispatches(store)] == [ids[6]]


def edit_config(path, mutate) -> None:
    doc = tomlkit.parse(path.read_text())
    mutate(doc)
    path.write_text(tomlkit.dumps(doc))


def test_escalation_config_defaults_values_and_errors(make_config, esc_config, db_path, solvers):
    cfg = make_config(name="absent.toml")
    edit_config(cfg, lambda doc: doc.pop("escalation"))
    escalation = load_config(cfg).escalation
    assert (
        escalation.enabled,
        escalation.dispatch_interval_seconds,
        escalation.fallback_to_all_solvers,
        escalation.max_dispatches_per_run,
        escalation.run_budget_seconds,
        escalation.connect_timeout_seconds,
        escalation.sending_stale_seconds,
    ) == (False, 30, False, 50, 20, 5, 120)
    proc = invoke(cfg, "dispatch-once")
    assert proc.returncode == 0 and not db_path.exists()
    explicit = esc_config(
        escalation={
            "dispatch_interval_seconds": 7,
            "fallback_to_all_solvers": True,
            "max_dispatches_per_run": 3,
            "run_budget_seconds": 9,
            "connect_timeout_seconds": 2,
            "sending_stale_seconds": 60,
        },
        name="x.toml",
    )
    escalation = load_config(explicit).escalation
    assert (
        escalation.enabled,
        escalation.dispatch_interval_seconds,
        escalation.fallback_to_all_solvers,
        escalation.max_dispatches_per_run,
        escalation.run_budget_seconds,
        escalation.connect_timeout_seconds,
        escalation.sending_stale_seconds,
    ) == (True, 7, True, 3, 9, 2, 60)
    off_curve = next(key for key in (f"{i:064x}" for i in range(1, 100)) if not is_valid_xonly(key))
    bad_configs = {
        "interval-zero": make_config(
            sections={"escalation": {"enabled": False, "dispatch_interval_seconds": 0}},
            name="b1.toml",
        ),
        "interval-float": make_config(
            sections={"escalation": {"dispatch_interval_seconds": 1.5}}, name="b2.toml"
        ),
        "unknown-key": make_config(sections={"escalation": {"max_retries": 3}}, name="b3.toml"),
        "invalid-key": make_config(solver_list=[("not-a-key", "write")], name="b4.toml"),
        "off-curve": make_config(solver_list=[(off_curve, "write")], name="b5.toml"),
        "duplicate": make_config(
            solver_list=[(solvers[1].pubkey, "write"), (solvers[1].pubkey.upper(), "read")],
            name="b6.toml",
        ),
    }
    for name, path in bad_configs.items():
        for args in (("dispatch-once",), ("dispatch-once", "--dry-run")):
            proc = invoke(path, *args)
            assert proc.returncode == 2, (name, proc.stderr)
            assert "Traceback" not in proc.stderr
    assert "max_retries" in invoke(bad_configs["unknown-key"], "dispatch-once").stderr
    assert not db_path.exists()
