"""dispatch-once on the command line: the dry run, --json for every exit code, the rich output and the
disabled switch."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from serbero_cli.runlock import RunLock
from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.relay import start_relay
from serbero_cli.store import dispatches
from serbero_cli.store.db import open_db
from serbero_cli.store.dispatches import HandoffRow
from tests.dispatch_once.conftest import BUNDLE, handoff_dms
from tests.helpers import db_checksum, run_json, run_serbero, run_serbero_tty

DEAD = "ws://127.0.0.1:1"


def relay_event_count(url: str) -> int:
    client = SimClient(url)

    async def go():
        events = await client.fetch([{"kinds": [1059, 13, 14, 1]}, {"since": 0}])
        await client.close()
        return len(events)

    return aio.run(go())


def claim(
    db_path: Path,
    handoff_id: int,
    dispute: str,
    *,
    route: str,
    recipients: list[str],
    age: int,
    attempts: int = 1,
) -> None:
    with open_db(db_path) as store:
        dispatch_id, _ = dispatches.claim_handoff(
            store,
            HandoffRow(handoff_id, None, *BUNDLE, 0),
            dispute_id=dispute,
            route=route,
            recipients=recipients,
            fallback_broadcast=route == "fallback",
            now=int(time.time()) - age,
        )
        for seen in range(1, attempts):
            dispatches.reclaim_dispatch(
                store, dispatch_id, seen_attempts=seen, now=int(time.time()) - age
            )


def test_dispatch_dry_run_names_every_decision_and_touches_nothing(
    esc_config, make_config, seed, solvers, serbero_pub, relay, db_path
):
    reader, writer = solvers
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    offline = f"ws://127.0.0.1:{listener.getsockname()[1]}"
    targeted = seed.dispute("[bold]t[/bold]", assigned=writer.pubkey)
    seed.handoff(targeted)
    seed.handoff(seed.dispute())  # broadcast
    stale = seed.dispute()
    claim(
        db_path,
        seed.handoff(stale),
        stale,
        route="fallback",
        recipients=[reader.pubkey],
        age=10_000,
    )
    resolved = seed.dispute(state="resolved")
    seed.handoff(resolved)
    on_file = seed.handoff(resolved)
    with open_db(db_path) as store:
        dispatches.record_superseded(
            store, HandoffRow(on_file, None, *BUNDLE, 0), dispute_id=resolved, now=1
        )
    seed.handoff(payload="{not json")
    seed.handoff("no-such-dispute")
    young = seed.dispute()
    claim(db_path, seed.handoff(young), young, route="broadcast", recipients=[writer.pubkey], age=0)
    spent = seed.dispute()
    claim(
        db_path,
        seed.handoff(spent),
        spent,
        route="broadcast",
        recipients=[writer.pubkey],
        age=10_000,
        attempts=3,
    )
    lock_file = Path(f"{db_path}.dispatch.lock")
    before, events_before = db_checksum(db_path), relay_event_count(relay.url)

    writers_cfg = esc_config(relays=[offline], name="dry-writers.toml")
    code, doc, stderr = run_json(writers_cfg, "dispatch-once", "--dry-run")
    assert doc["dry_run"] is True and doc["enabled"] is True and code == doc["exit_code"] == 4, (
        stderr
    )
    plan = {(h["decision"], h["action"]) for h in doc["handoffs"]}
    assert plan == {
        ("targeted", "send"),
        ("broadcast", "send"),
        ("fallback", "resend"),
        ("superseded", "record_audit"),
        ("superseded", "none"),
        ("parse-failed", "record_audit"),
        ("broadcast", "skip_in_flight"),
        ("broadcast", "give_up"),
    }
    assert [h["attempt"] for h in doc["handoffs"] if h["action"] == "resend"] == [2]
    assert all("body" in h for h in doc["handoffs"] if h["action"] in ("send", "resend"))
    assert not any("body" in h for h in doc["handoffs"] if h["action"] not in ("send", "resend"))
    assert not lock_file.exists()
    readers_cfg = esc_config(
        relays=[offline], solver_list=[(reader.pubkey, "read")], name="dry-readers.toml"
    )
    code, readers_doc, _ = run_json(readers_cfg, "dispatch-once", "--dry-run")
    assert {h["decision"] for h in readers_doc["handoffs"]} >= {
        "unroutable",
        "fallback",
    } and code == 4
    fallback_cfg = esc_config(
        relays=[offline],
        solver_list=[(reader.pubkey, "read")],
        escalation={"fallback_to_all_solvers": True},
        name="dry-fallback.toml",
    )
    fallback_doc = run_json(fallback_cfg, "dispatch-once", "--dry-run")[1]
    assert [h["recipients"] for h in fallback_doc["handoffs"] if h["action"] == "send"] == [
        [reader.pubkey]
    ] * 2
    disabled = make_config(relays=[offline], name="dry-disabled.toml")
    with RunLock(db_path, "dispatch", "test"):
        code, off_doc, stderr = run_json(disabled, "dispatch-once", "--dry-run")
        assert (
            code == 4 and off_doc["enabled"] is False and off_doc["handoffs"] == doc["handoffs"]
        ), stderr
        _, text, _ = run_serbero_tty(
            disabled, "dispatch-once", "--dry-run"
        )  # tables are for terminals
        assert "DISABLED" in text and "Pending handoffs" in text
        assert "Dispute: [bold]t[/bold]" in text and "recipient (hex)" in text
        assert writer.pubkey in text
    try:
        listener.accept()
        raise AssertionError("a dry run contacted a relay")
    except BlockingIOError:
        listener.close()
    assert db_checksum(db_path) == before
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    assert relay_event_count(relay.url) == events_before

    code, real, stderr = run_json(esc_config(name="real.toml"), "dispatch-once")
    assert code == 4, stderr  # the spent claim gives up
    bodies = sorted(h["body"] for h in doc["handoffs"] if "body" in h)
    delivered = sorted(
        dm.content for dm in handoff_dms(writer, serbero_pub) + handoff_dms(reader, serbero_pub)
    )
    assert bodies == delivered and len(bodies) == 3
    assert [(h["decision"], h["action"]) for h in real["handoffs"]] == [
        (h["decision"], h["action"]) for h in doc["handoffs"]
    ]


def test_dry_run_on_a_missing_or_unmigrated_database_exits_1(esc_config, db_path):
    cfg = esc_config()
    code, doc, stderr = run_json(cfg, "dispatch-once", "--dry-run")
    assert code == 1 and doc["exit_code"] == 1 and "database not found" in doc["error"], stderr
    assert not db_path.exists()
    store = open_db(db_path, migrate=False)
    store.conn.execute("CREATE TABLE unrelated (x)")
    store.close()
    proc = run_serbero(cfg, "dispatch-once", "--dry-run")
    assert proc.returncode == 1 and "not migrated" in proc.stderr and "Traceback" not in proc.stderr


def test_dispatch_json_is_one_document_for_every_exit_code(
    esc_config, make_config, seed, db_path, relay
):
    def one_document(code_expected: int, config, *args: str) -> dict:
        proc = run_serbero(config, "dispatch-once", "--json", *args)
        assert proc.returncode == code_expected, proc.stderr
        assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1
        doc = json.loads(proc.stdout)
        assert doc["report"] == "dispatch_once/v1" and doc["exit_code"] == code_expected
        assert set(doc) == {
            "report",
            "dry_run",
            "enabled",
            "exit_code",
            "error",
            "counts",
            "handoffs",
        }
        assert " INFO " not in proc.stdout and " ERROR " not in proc.stdout
        return doc

    good = esc_config(name="good.toml")
    assert one_document(0, good)["error"] is None
    bad = make_config(sections={"escalation": {"enabled": True, "surprise": 1}}, name="bad.toml")
    doc = one_document(2, bad)
    assert "surprise" in doc["error"] and doc["handoffs"] == [] and doc["enabled"] is None
    assert one_document(2, good, "--limit", "zero")["error"].startswith("--limit")
    seed.handoff(seed.dispute())
    dead = esc_config(relays=[DEAD], escalation={"connect_timeout_seconds": 1}, name="dead.toml")
    assert one_document(3, dead)["counts"]["deferred"] == 1
    with RunLock(db_path, "dispatch", "test"):
        doc = one_document(75, good)
        assert "lock held" in doc["error"] and doc["handoffs"] == [] and doc["enabled"] is True
    pow_relay = start_relay(min_pow=30)
    try:
        doc = one_document(4, esc_config(relays=[pow_relay.url], name="pow.toml"))
        assert doc["counts"]["send_failed"] == 1 and doc["error"] is None
    finally:
        pow_relay.shutdown()


def test_rich_output_and_disabled_real_run(esc_config, make_config, seed, solvers, db_path):
    disabled = make_config(name="off.toml")
    code, stdout, _ = run_serbero_tty(disabled, "dispatch-once")
    assert code == 0 and "([escalation] enabled = false)" in stdout and not db_path.exists()
    proc = run_serbero(disabled, "--log-level", "debug", "dispatch-once")
    assert proc.stdout == "" and "escalation is disabled" in proc.stderr
    seed.handoff(seed.dispute())
    code, stdout, stderr = run_serbero_tty(esc_config(), "dispatch-once")
    assert code == 0, stderr
    assert "dispatch-once" in stdout and "dispatched 1" in stdout and "broadcast" in stdout
    (row,) = seed.rows(
        "SELECT key, value FROM sync_state WHERE key LIKE 'dispatch_once_%' AND key != "
        "'dispatch_once_run_record'"
    )
    assert (
        row["key"] == "dispatch_once_last_run"
        and json.loads(row["value"])["counts"]["dispatched"] == 1
    )
