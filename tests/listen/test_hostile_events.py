"""Hostile dispute events through the real path: published on a loopback relay by a simulated
Mostro key, read by `serbero listen` running as a subprocess."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import pytest
import tomlkit

from serbero_cli.simulate.mostro import SimMostro, build_dispute_event
from tests.helpers import db_rows, invoke_json
from tests.stub_relay import start_stub_relay


def cursor_of(db_path, mostro_pubkey: str) -> int | None:
    rows = db_rows(
        db_path, "SELECT value FROM sync_state WHERE key=?", (f"disputes_cursor:{mostro_pubkey}",)
    )
    return int(rows[0]["value"]) if rows else None


def dispute_ids(db_path) -> set[str]:
    return {r["dispute_id"] for r in db_rows(db_path, "SELECT dispute_id FROM disputes")}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("²", id="superscript-two"),
        pytest.param("١٢٣", id="arabic-indic-digits"),
        pytest.param("1700000000 ", id="trailing-space"),
        pytest.param(str(2**40 + 1), id="beyond-2^40"),
    ],
)
def test_malformed_integer_tag_is_rejected_and_every_run_still_succeeds(
    make_config, mostro, solvers, db_path, value
):
    # Before: `"²".isdigit()` is True and `int("²")` raises, so every listen exited 1 for good.
    cfg = make_config()
    now = int(time.time())
    mostro.publish(
        build_dispute_event(
            mostro.keys,
            str(uuid.uuid4()),
            "initiated",
            created_at=now - 20,
            extra_tags=[["created_at", value]],
        )
    )
    good = mostro.open_dispute(created_at=now - 10)
    for _ in range(2):
        code, doc, err = invoke_json(cfg, "listen")
        assert code == 0, err
        assert doc["events"]["rejected"] == 1
        assert "created_at tag" in err and "Traceback" not in err
    assert dispute_ids(db_path) == {good}
    assert all(len(s.inbox()) == 1 for s in solvers)


def test_future_event_is_rejected_and_never_moves_the_cursor(make_config, mostro, solvers, db_path):
    # Before: one event 50 minutes ahead moved the cursor past now, and every dispute opened in
    # those 50 minutes was never seen.
    cfg = make_config()
    now = int(time.time())
    ahead = str(uuid.uuid4())
    mostro.publish(build_dispute_event(mostro.keys, ahead, "initiated", created_at=now + 3000))
    first = mostro.open_dispute(created_at=now - 5)
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0 and doc["events"] == {"fetched": 2, "applied": 1, "rejected": 1}
    assert "from the future" in err
    assert cursor_of(db_path, mostro.pubkey) <= int(time.time())
    later = mostro.open_dispute(created_at=int(time.time()))
    code, doc, _ = invoke_json(cfg, "listen")
    assert code == 0
    assert dispute_ids(db_path) == {first, later}
    assert all(len(s.inbox()) == 2 for s in solvers)


def test_a_cursor_an_older_version_left_in_the_future_is_read_from_when_it_was_written(
    make_config, mostro, db_path
):
    cfg = make_config(solver_list=[])
    assert invoke_json(cfg, "listen")[0] == 0  # creates the database; no events, so no cursor yet
    now = int(time.time())
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES ('disputes_cursor', ?, ?)",
        (str(now + 3000), now - 600),
    )
    conn.commit()
    conn.close()
    missed = mostro.open_dispute(created_at=now - 100)  # after the bad write, before now
    code, doc, _ = invoke_json(cfg, "listen")
    assert code == 0 and doc["disputes"]["new"] == 1
    assert dispute_ids(db_path) == {missed}
    assert cursor_of(db_path, mostro.pubkey) <= int(time.time())


@pytest.mark.parametrize(
    "tags,reason",
    [
        pytest.param(
            [["initiator", "buyer\x1b[2J"]], "initiator tag holds a control", id="escape-sequence"
        ),
        pytest.param(
            [["initiator", "\u202eyub"]], "initiator tag holds a control", id="bidi-override"
        ),
        pytest.param(
            [["initiator", "buyer\u0085"]], "initiator tag holds a control", id="c1-control"
        ),
    ],
)
def test_control_characters_in_a_stored_tag_reject_the_event(
    make_config, mostro, db_path, tags, reason
):
    cfg = make_config(solver_list=[])
    mostro.publish(
        build_dispute_event(
            mostro.keys,
            str(uuid.uuid4()),
            "settled",
            initiator=None,
            created_at=int(time.time()),
            extra_tags=tags,
        )
    )
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0 and doc["events"]["rejected"] == 1 and doc["events"]["applied"] == 0
    assert reason in err
    assert "\x1b" not in err and "\u202e" not in err
    assert dispute_ids(db_path) == set()


def test_dispute_id_must_be_a_uuid_and_is_stored_lowercased(make_config, mostro, db_path):
    cfg = make_config(solver_list=[])
    now = int(time.time())
    upper = str(uuid.uuid4()).upper()
    mostro.publish(build_dispute_event(mostro.keys, upper, "initiated", created_at=now - 2))
    mostro.publish(build_dispute_event(mostro.keys, "dispute-1", "initiated", created_at=now - 1))
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0 and doc["events"] == {"fetched": 2, "applied": 1, "rejected": 1}
    assert "d tag is not a UUID" in err
    assert dispute_ids(db_path) == {upper.lower()}


def test_event_whose_json_is_over_64_kib_is_rejected(make_config, mostro, db_path):
    # LocalRelay refuses such events itself, so a stub relay serves them as a hostile relay would.
    now = int(time.time())
    big = build_dispute_event(
        mostro.keys,
        str(uuid.uuid4()),
        "initiated",
        created_at=now - 2,
        extra_tags=[["x", "a" * 250]] * 265,
    )
    good_id = str(uuid.uuid4())
    good = build_dispute_event(mostro.keys, good_id, "initiated", created_at=now - 1)
    assert len(big.as_json()) > 64 * 1024
    stub = start_stub_relay(events=[json.loads(big.as_json()), json.loads(good.as_json())])
    try:
        cfg = make_config(relays=[stub.url], solver_list=[])
        code, doc, err = invoke_json(cfg, "listen")
    finally:
        stub.shutdown()
    assert code == 0 and doc["events"] == {"fetched": 2, "applied": 1, "rejected": 1}, err
    assert "larger than 65536 bytes" in err
    assert dispute_ids(db_path) == {good_id}


def test_two_nodes_on_one_database_never_hide_each_others_disputes(
    make_config, mostro, relay, db_path
):
    # Before: one shared cursor. Node A's fresh event moved it to now, and node B's dispute from
    # 20 minutes ago fell before cursor − 300 s on B's next run.
    other = SimMostro(relay.url)
    try:
        now = int(time.time())
        cfg_a = make_config(solver_list=[], sections={"listen": {"initial_lookback_seconds": 3600}})
        cfg_b = make_config(
            solver_list=[], name="b.toml", sections={"listen": {"initial_lookback_seconds": 3600}}
        )
        doc = tomlkit.parse(cfg_b.read_text())
        doc["mostro"]["pubkey"] = other.pubkey
        cfg_b.write_text(tomlkit.dumps(doc))
        a_id = mostro.open_dispute(created_at=now - 5)
        assert invoke_json(cfg_a, "listen")[0] == 0
        b_id = other.open_dispute(created_at=now - 1200)
        code, doc_b, _ = invoke_json(cfg_b, "listen")
        assert code == 0 and doc_b["disputes"]["new"] == 1
        assert dispute_ids(db_path) == {a_id, b_id}
        assert cursor_of(db_path, mostro.pubkey) == now - 5
        assert cursor_of(db_path, other.pubkey) == now - 1200
    finally:
        other.close()


def test_the_old_shared_cursor_is_read_as_the_configured_nodes_own(make_config, mostro, db_path):
    # An existing database keeps its place: it must not re-read a week of disputes after the upgrade.
    cfg = make_config(solver_list=[])
    assert invoke_json(cfg, "listen")[0] == 0
    now = int(time.time())
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES ('disputes_cursor', ?, ?)",
        (str(now - 100), now - 100),
    )
    conn.commit()
    conn.close()
    mostro.open_dispute(
        created_at=now - 1000
    )  # before cursor − 300 s: already seen by the old version
    inside = mostro.open_dispute(created_at=now - 50)
    code, doc, _ = invoke_json(cfg, "listen")
    assert code == 0 and doc["events"]["fetched"] == 1
    assert dispute_ids(db_path) == {inside}
    assert cursor_of(db_path, mostro.pubkey) == now - 50
