"""Rationale storage (docs/mediation.md#rationales) on a real SQLite file."""

from __future__ import annotations

import hashlib
import logging

import pytest

from serbero_cli.errors import UsageError
from serbero_cli.store.db import open_db
from serbero_cli.store.disputes import insert_dispute
from serbero_cli.store.rationales import (
    get_rationale,
    rationale_id,
    rebind_rationale,
    store_rationale,
)

PROVENANCE = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "bundle_id": "serbero-default",
    "policy_hash": "a" * 64,
}
DISPUTE = "6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"


@pytest.fixture
def store(tmp_path):
    s = open_db(tmp_path / "serbero.db")
    insert_dispute(
        s.conn,
        dispute_id=DISPUTE,
        event_id="e" * 64,
        mostro_pubkey="f" * 64,
        initiator_role="buyer",
        dispute_status="initiated",
        event_timestamp=1000,
        now=1000,
        lifecycle_state="notified",
        assigned_solver=None,
    )
    for session in ("sess-1", "sess-2"):
        s.conn.execute(
            "INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, "
            "started_at, last_transition_at) VALUES (?,?,?,?,?,?,?)",
            (session, DISPUTE, "awaiting_response", "serbero-default", "a" * 64, 1000, 1000),
        )
    yield s
    s.close()


def rows(store):
    return store.query("SELECT * FROM reasoning_rationales ORDER BY rationale_id")


def test_rationale_id_is_sha256_hex_of_the_text():
    assert rationale_id("why ✓") == hashlib.sha256("why ✓".encode()).hexdigest()


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_store_rationale_blank_writes_nothing(store, text):
    assert store_rationale(store.conn, text, session_id=None, now=5, **PROVENANCE) is None
    assert rows(store) == []


def test_store_rationale_inserts_one_row_with_provenance(store):
    rid = store_rationale(
        store.conn, "seller has not checked", session_id="sess-1", now=1234, **PROVENANCE
    )
    assert rid == rationale_id("seller has not checked")
    assert rows(store) == [
        {
            "rationale_id": rid,
            "session_id": "sess-1",
            "provider": "openai",
            "model": "gpt-4o-mini",
            "prompt_bundle_id": "serbero-default",
            "policy_hash": "a" * 64,
            "rationale_text": "seller has not checked",
            "generated_at": 1234,
        }
    ]


def test_store_rationale_same_text_same_provenance_is_deduplicated(store):
    first = store_rationale(store.conn, "same", session_id="sess-1", now=1, **PROVENANCE)
    second = store_rationale(store.conn, "same", session_id="sess-1", now=2, **PROVENANCE)
    assert first == second and len(rows(store)) == 1 and rows(store)[0]["generated_at"] == 1


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"session_id": "sess-2"}, id="other-session"),
        pytest.param({"session_id": None}, id="no-session"),
        pytest.param({"provider": "anthropic"}, id="other-provider"),
        pytest.param({"model": "gpt-5"}, id="other-model"),
        pytest.param({"bundle_id": "ops-bundle"}, id="other-bundle"),
        pytest.param({"policy_hash": "b" * 64}, id="other-hash"),
    ],
)
def test_store_rationale_provenance_conflict_warns_and_returns_no_reference(store, caplog, change):
    text = "a rationale that must not be logged"
    store_rationale(store.conn, text, session_id="sess-1", now=1, **PROVENANCE)
    caplog.set_level(logging.WARNING, logger="serbero_cli.store.rationales")
    kwargs = {"session_id": "sess-1", **PROVENANCE, **change}
    assert store_rationale(store.conn, text, now=2, **kwargs) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "provenance conflict" in caplog.text and text not in caplog.text
    assert len(rows(store)) == 1 and rows(store)[0]["session_id"] == "sess-1"


def test_opening_rationale_is_rebound_to_its_session_once(store):
    rid = store_rationale(store.conn, "opening view", session_id=None, now=1, **PROVENANCE)
    assert rebind_rationale(store.conn, rid, "sess-1") is True
    assert rows(store)[0]["session_id"] == "sess-1"
    assert rebind_rationale(store.conn, rid, "sess-2") is False
    assert rows(store)[0]["session_id"] == "sess-1"
    # After the rebind the same rationale in the same session is a plain duplicate.
    assert (
        store_rationale(store.conn, "opening view", session_id="sess-1", now=9, **PROVENANCE) == rid
    )


def test_get_rationale_by_prefix(store):
    ids = [
        store_rationale(store.conn, f"r{i}", session_id=None, now=1, **PROVENANCE)
        for i in range(20)
    ]
    target = ids[0]
    assert get_rationale(store, target)["rationale_text"] == "r0"
    unique = next(n for n in range(1, 65) if sum(i.startswith(target[:n]) for i in ids) == 1)
    assert get_rationale(store, target[:unique].upper())["rationale_id"] == target
    missing = (
        next(c for c in "0123456789abcdef" * 4 if not any(i.startswith(c * 3) for i in ids)) * 3
    )
    assert get_rationale(store, missing) is None


def test_get_rationale_rejects_ambiguous_and_non_hex_prefixes(store):
    ids = [
        store_rationale(store.conn, f"r{i}", session_id=None, now=1, **PROVENANCE)
        for i in range(40)
    ]
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(UsageError):
        get_rationale(store, shared)
    for bad in ("", "xyz", "ab%", "a*"):
        with pytest.raises(UsageError):
            get_rationale(store, bad)
