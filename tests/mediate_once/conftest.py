"""Mediation harness: a Mostro node sim, party sims, a scripted LLM server."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from serbero_cli.config import load_config
from serbero_cli.mediation.run import run_mediate_once
from serbero_cli.simulate.llm import LLMServer, Reply, classification_json, summary_text
from serbero_cli.simulate.mostro_node import MostroNodeSim
from tests.helpers import invoke, run_serbero

API_ENV = {"SERBERO_REASONING_API_KEY": "sk-test-serbero-0123456789"}
# For tests whose node never answers a take: the shortest wait the setting accepts (whole seconds).
TAKE_TIMEOUT = {"take_reply_wait_seconds": 1}


def ask(
    buyer="Did you send the fiat payment? Please share the reference.",
    seller="Did you receive the fiat payment in your account?",
    confidence=0.8,
    **kw,
) -> Reply:
    return Reply(
        content=classification_json(
            "coordination_failure_resolvable",
            confidence,
            "ask_clarification",
            buyer=buyer,
            seller=seller,
            **kw,
        )
    )


def summarize(confidence=0.9, label="coordination_failure_resolvable", **kw) -> Reply:
    return Reply(content=classification_json(label, confidence, "summarize", **kw))


def escalate_flags(*flags, action="ask_clarification", confidence=0.8) -> Reply:
    return Reply(
        content=classification_json(
            "conflicting_claims", confidence, action, buyer="b?", seller="s?", flags=flags
        )
    )


def summary(
    text="Buyer reports paying; seller has not seen the money yet.",
    next_step="Ask both parties for bank statements covering the transfer.",
    rationale="Both accounts agree on the amount; only the arrival is unclear.",
) -> Reply:
    return Reply(content=summary_text(text, next_step, rationale))


@dataclass
class Harness:
    node: MostroNodeSim
    llm: LLMServer
    config_path: Path
    db_path: Path
    solvers: list

    def mediate(self, *args: str, env: dict | None = None, **kw):
        """In-process run (fast): returns the MediationResult."""
        config = load_config(self.config_path, env={})
        return run_mediate_once(config, env={**API_ENV, **(env or {})}, retry_pause=0, **kw)

    def mediate_cli(self, *args: str, env: dict | None = None):
        """`serbero mediate-once --json ARGS` through the CLI code, in this process: (code, doc, stderr)."""
        return self._json(
            invoke(
                self.config_path, "mediate-once", "--json", *args, env={**API_ENV, **(env or {})}
            )
        )

    def mediate_process(self, *args: str, env: dict | None = None):
        """The same as a real `serbero` subprocess, for tests about a fresh process (locks, restarts)."""
        return self._json(
            run_serbero(
                self.config_path, "mediate-once", "--json", *args, env={**API_ENV, **(env or {})}
            )
        )

    @staticmethod
    def _json(proc):
        try:
            doc = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(f"bad stdout {proc.stdout!r}\n{proc.stderr}") from exc
        return proc.returncode, doc, proc.stderr

    def listen(self):
        """`serbero listen --json` through the CLI code, in this process: its JSON document."""
        proc = invoke(self.config_path, "listen", "--json")
        assert proc.returncode in (0, 4), proc.stderr
        return json.loads(proc.stdout)

    def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        conn = sqlite3.connect(self.db_path)
        try:
            cur = conn.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple = ()) -> None:
        conn = sqlite3.connect(self.db_path)
        conn.execute(sql, params)
        conn.commit()
        conn.close()

    def events(self, kind: str | None = None) -> list[dict]:
        rows = self.rows("SELECT * FROM mediation_events ORDER BY id")
        for r in rows:
            try:
                r["payload"] = json.loads(r["payload_json"])
            except (TypeError, ValueError):
                r["payload"] = None
        return [r for r in rows if kind is None or r["kind"] == kind]

    def session(self) -> dict:
        (row,) = self.rows("SELECT * FROM mediation_sessions")
        return row

    def open(self, **kw) -> str:
        """A dispute opened on the node and recorded by listen."""
        dispute_id = self.node.open_dispute(**kw)
        self.listen()
        return dispute_id


@pytest.fixture
def llm():
    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def node(mostro, serbero_keys):
    sim = MostroNodeSim.from_sim(
        mostro, protocol=2, solvers={serbero_keys.public_key().to_hex(): "read"}
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def med_sections(llm):
    def build(**overrides):
        sections = {
            # A node that answers ends the wait as soon as its reply is read, so a long wait costs
            # nothing and keeps a loaded machine from turning a slow answer into a timeout; tests
            # about a node that never answers set TAKE_TIMEOUT.
            "mediation": {
                "enabled": True,
                "take_reply_wait_seconds": 15,
                "start_retry_interval_seconds": 0,
            },
            "reasoning": {
                "enabled": True,
                "provider": "openai-compatible",
                "api_base": llm.openai_base,
                "model": "test-model",
                "followup_retry_count": 0,
                "request_timeout_seconds": 5,
            },
        }
        for section, values in overrides.items():
            sections.setdefault(section, {}).update(values)
        return sections

    return build


@pytest.fixture
def harness(node, llm, make_config, med_sections, db_path, solvers):
    def build(envelopes=None, observers=None, solver_list=None, **overrides) -> Harness:
        config = make_config(
            sections=med_sections(**overrides),
            envelopes=envelopes,
            observers=observers,
            solver_list=solver_list,
        )
        return Harness(node, llm, config, db_path, solvers)

    return build
