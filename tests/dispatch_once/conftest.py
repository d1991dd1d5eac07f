"""Fixtures for dispatch-once: seeded rows (through store helpers), solver inboxes, configs with escalation on."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from serbero_cli.config import load_config
from serbero_cli.dispatch.run import run_dispatch_once
from serbero_cli.simulate.solver import SimSolver
from serbero_cli.store import disputes as disputes_store
from serbero_cli.store import mediation as mediation_store
from serbero_cli.store.db import open_db
from tests.helpers import db_rows

BUNDLE = ("bundle-a", "ab12" * 16)


def package_json(
    dispute_id: str,
    *,
    session_id: str | None = None,
    trigger: str = "conflicting_claims",
    evidence_refs: list[str] | None = None,
    rationale_refs: list[str] | None = None,
    assembled_at: int = 1_760_000_000,
    extra: dict[str, Any] | None = None,
) -> str:
    """A handoff package as mediate-once writes it: field order, compact, raw UTF-8, no session key if None."""
    doc: dict[str, Any] = {"dispute_id": dispute_id}
    if session_id is not None:
        doc["session_id"] = session_id
    doc.update(
        trigger=trigger,
        evidence_refs=evidence_refs or [],
        prompt_bundle_id=BUNDLE[0],
        policy_hash=BUNDLE[1],
        rationale_refs=rationale_refs if rationale_refs is not None else ["c0ffee"],
        assembled_at=assembled_at,
    )
    doc.update(extra or {})
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class Seeder:
    """Writes disputes, sessions and handoff rows into the test database through the store helpers."""

    def __init__(self, db_path: Path):
        self.db_path = db_path

    def dispute(
        self, dispute_id: str | None = None, *, state: str = "notified", assigned: str | None = None
    ) -> str:
        dispute_id = dispute_id or str(uuid.uuid4())
        now = int(time.time())
        with open_db(self.db_path) as store, store.immediate() as conn:
            disputes_store.insert_dispute(
                conn,
                dispute_id=dispute_id,
                event_id="e" * 64,
                mostro_pubkey="f" * 64,
                initiator_role="buyer",
                dispute_status="initiated" if state != "resolved" else "settled",
                event_timestamp=now - 600,
                now=now,
                lifecycle_state=state,
                assigned_solver=assigned,
            )
        return dispute_id

    def session(self, dispute_id: str) -> str:
        session_id = str(uuid.uuid4())
        now = int(time.time())
        with open_db(self.db_path) as store, store.immediate() as conn:
            conn.execute(
                "INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, "
                "started_at, last_transition_at) VALUES (?,?,?,?,?,?,?)",
                (session_id, dispute_id, "escalation_recommended", BUNDLE[0], BUNDLE[1], now, now),
            )
        return session_id

    def handoff(
        self,
        dispute_id: str | None = None,
        *,
        session_id: str | None = None,
        payload: str | None = None,
        **package: Any,
    ) -> int:
        text = (
            payload
            if payload is not None
            else package_json(dispute_id, session_id=session_id, **package)
        )
        with open_db(self.db_path) as store, store.immediate() as conn:
            return mediation_store.insert_event(
                conn,
                "handoff_prepared",
                text,
                now=int(time.time()),
                session_id=session_id,
                bundle=BUNDLE,
            )

    def set_state(self, dispute_id: str, state: str) -> None:
        with open_db(self.db_path) as store, store.immediate() as conn:
            disputes_store.update_dispute(conn, dispute_id, lifecycle_state=state)

    def age_sending(self, seconds: int = 10_000) -> None:
        """Make every `sending` claim look abandoned (as if the stale window had passed)."""
        with open_db(self.db_path) as store, store.immediate() as conn:
            conn.execute(
                "UPDATE escalation_dispatches SET dispatched_at = dispatched_at - ? WHERE status='sending'",
                (seconds,),
            )

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        return db_rows(self.db_path, sql, params)

    def execute(self, sql: str, params: tuple = ()) -> None:
        with open_db(self.db_path) as store, store.immediate() as conn:
            conn.execute(sql, params)

    def audit(self, kind: str) -> list[dict[str, Any]]:
        rows = self.rows(
            "SELECT id, session_id, payload_json, prompt_bundle_id, policy_hash, rationale_id "
            "FROM mediation_events WHERE kind=? ORDER BY id",
            (kind,),
        )
        for row in rows:
            row["payload"] = json.loads(row["payload_json"])
        return rows

    def dispatches(self) -> list[dict[str, Any]]:
        return self.rows("SELECT * FROM escalation_dispatches ORDER BY handoff_event_id")


@pytest.fixture
def seed(db_path) -> Seeder:
    return Seeder(db_path)


@pytest.fixture
def esc_config(make_config):
    """make_config with [escalation] enabled; `escalation=` adds keys, other kwargs go to make_config."""

    def build(
        *,
        escalation: dict[str, Any] | None = None,
        sections: dict[str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Path:
        all_sections = dict(sections or {})
        all_sections["escalation"] = {"enabled": True, **(escalation or {})}
        return make_config(sections=all_sections, **kwargs)

    return build


@pytest.fixture
def run_once():
    """Run dispatch-once in this process (fast path): run_once(config_path, dry_run=False, limit=None, clock=…)."""

    def go(config_path: Path, *, dry_run: bool = False, limit: int | None = None, clock=None):
        config = load_config(config_path)
        kwargs = {"clock": clock} if clock is not None else {}
        return run_dispatch_once(config, dry_run=dry_run, limit=limit, **kwargs)

    return go


@pytest.fixture
def make_solver(relay):
    made: list[SimSolver] = []

    def build(permission: str = "write", name: str = "solver") -> SimSolver:
        solver = SimSolver(relay.url, permission=permission, name=name)
        made.append(solver)
        return solver

    yield build
    for solver in made:
        solver.close()


def handoff_dms(solver: SimSolver, serbero_pubkey: str) -> list:
    """The solver's DMs from Serbero (deduped by wrap id): each must be a kind-14 rumor."""
    dms = [dm for dm in solver.inbox() if dm.sender == serbero_pubkey]
    assert all(dm.rumor_kind == 14 for dm in dms)
    assert len({dm.wrap_id for dm in dms}) == len(dms)
    return dms


@pytest.fixture
def serbero_pub(serbero_keys) -> str:
    return serbero_keys.public_key().to_hex()


@pytest.fixture
def policy_relay(monkeypatch):
    """A LocalRelay that answers OK=false to gift wraps addressed (`p` tag) to chosen pubkeys.

    nostr_sdk runs a Python WritePolicy from a Rust thread that has no asyncio loop; uniffi then
    asks `_uniffi_get_event_loop()` for one, so for this test the simulators' background loop
    serves those callbacks (calls made from a thread with a running loop are unaffected).
    """
    import asyncio

    import nostr_sdk as ns
    import nostr_sdk.nostr_sdk as ffi

    from serbero_cli.simulate import aio
    from serbero_cli.simulate.relay import RelayHandle

    def loop_for_callbacks():
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return aio.background_loop()

    monkeypatch.setattr(ffi, "_uniffi_get_event_loop", loop_for_callbacks)

    class RejectRecipients(ns.WritePolicy):
        def __init__(self, rejected: set[str]):
            self.rejected = rejected

        async def admit_event(self, event, socket_addr):
            try:
                tagged = {
                    t.to_vec()[1]
                    for t in event.tags()
                    if len(t.to_vec()) > 1 and t.to_vec()[0] == "p"
                }
                if tagged & self.rejected:
                    return ns.WritePolicyResult.REJECT("recipient refused by test policy")
            except Exception:  # noqa: BLE001 - an exception here would abort the whole process
                pass
            return ns.WritePolicyResult.ACCEPT()

    handles = []

    def start(rejected: set[str]) -> RelayHandle:
        async def go():
            relay = (
                ns.LocalRelayBuilder()
                .addr("127.0.0.1")
                .rate_limit(ns.RateLimit(max_reqs=10_000, notes_per_minute=1_000_000))
                .write_policy(RejectRecipients(set(rejected)))
                .build()
            )
            await relay.run()
            return RelayHandle(str(await relay.url()), relay)

        handle = aio.run(go())
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.shutdown()
