"""`serbero demo`: the whole system on loopback, narrated (docs/operations.md#demo).

A LocalRelay, a Mostro node speaking protocol v2, buyer and seller clients on kind-14 chat, two
solvers running a Mostrix-like client (one read, one write), a mostro-watchdog-like observer and
a scripted reasoning endpoint; a throw-away config and database; then the real `listen`,
`mediate-once`, `dispatch-once` and `audit` code, in order. What each participant received is
read back from the relay and decrypted by that participant, never taken from Serbero's tables.
The runner reports through `narrate(kind, text)` and returns the list of expectations with
whether each was met; it prints nothing itself.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nostr_sdk as ns

from serbero_cli.simulate.llm import LLMServer, Reply, classification_json, summary_text
from serbero_cli.simulate.mostro_node import MostroNodeSim
from serbero_cli.simulate.relay import start_relay
from serbero_cli.simulate.solver import SimSolver
from serbero_cli.simulate.watchdog import WatchdogObserver

if TYPE_CHECKING:
    from serbero_cli.config import Config


Narrate = Callable[[str, str], None]
SCENARIOS = ("cooperative", "escalation")
API_KEY_ENV = "SERBERO_DEMO_API_KEY"

COOPERATIVE_ANSWERS = {
    "buyer": "I sent 100 EUR by SEPA on Monday, reference MOSTRO-4411. I have the bank receipt.",
    "seller": "Sorry, I checked again: the 100 EUR with reference MOSTRO-4411 arrived this morning.",
}
ESCALATION_ANSWERS = {
    "buyer": "I paid in cash at the agreed place and the seller took the money.",
    "seller": "We never met. I did not receive any cash from this buyer.",
}


@dataclass
class Expectation:
    who: str
    what: str
    met: bool


@dataclass
class DemoReport:
    directory: Path
    expectations: list[Expectation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.expectations) and all(e.met for e in self.expectations)


class DemoModel:
    """The scripted reasoning endpoint: answers by reading the dispute id and call type from the request."""

    def __init__(self) -> None:
        self.plans: dict[str, str] = {}  # dispute id -> scenario

    def __call__(self, path: str, body: Any) -> Reply | None:
        text = json.dumps(body, ensure_ascii=False)
        match = re.search(r"dispute_id: ([0-9a-f-]{36})", text)
        scenario = self.plans.get(match.group(1)) if match else None
        if match is None or scenario is None:
            return Reply(status=400, body={"error": "unknown dispute"})
        if (
            isinstance(body, dict) and "response_format" not in body
        ):  # OpenAI JSON mode marks classify calls
            return Reply(
                content=summary_text(
                    "The buyer paid by SEPA with reference MOSTRO-4411 and the seller now confirms it arrived; "
                    "the delay was on the banking side.",
                    "Confirm with the seller that the payment is final, then close the trade as usual on Mostro.",
                    "Both parties now agree on amount, reference and arrival.",
                )
            )
        found = re.search(r"followup_number: (\d+)", text)
        followup = int(found.group(1)) if found else 0  # every classify request states it
        if followup == 0:
            return Reply(
                content=classification_json(
                    "coordination_failure_resolvable" if scenario == "cooperative" else "unclear",
                    0.7,
                    "ask_clarification",
                    buyer="Did you send the payment? Please give the amount and the reference.",
                    seller="Has the payment reached your account? Please check for the amount and reference.",
                    rationale=f"demo opening rationale for {match.group(1)}",
                )
            )
        if scenario == "cooperative":
            return Reply(
                content=classification_json(
                    "coordination_failure_resolvable",
                    0.92,
                    "summarize",
                    rationale=f"demo: both sides agree ({match.group(1)})",
                )
            )
        return Reply(
            content=classification_json(
                "conflicting_claims",
                0.85,
                "escalate",
                flags=["conflicting_claims"],
                rationale=f"demo: the accounts contradict ({match.group(1)})",
            )
        )


def run_demo(
    scenarios: tuple[str, ...], *, directory: Path | None = None, narrate: Narrate
) -> DemoReport:
    """Run the scenarios end to end and return which expected messages were really received."""
    from serbero_cli.config import load_config

    work = Path(directory or tempfile.mkdtemp(prefix="serbero-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    report = DemoReport(work)
    relay = start_relay()
    model = DemoModel()
    llm = LLMServer(responder=model).start()
    serbero = ns.Keys.generate()
    node = MostroNodeSim(relay.url, protocol=2, solvers={serbero.public_key().to_hex(): "read"})
    reader = SimSolver(relay.url, permission="read", name="solver-read")
    writer = SimSolver(relay.url, permission="write", name="solver-write")
    watchdog = WatchdogObserver(relay.url, serbero=serbero.public_key().to_hex())
    try:
        node.start()
        config_path = _write_config(
            work,
            relay.url,
            serbero,
            node.pubkey,
            [reader, writer],
            llm.openai_base,
            observer=watchdog.pubkey,
        )
        narrate(
            "setup",
            f"relay {relay.url}, Mostro {node.pubkey[:12]}…, Serbero {serbero.public_key().to_hex()[:12]}…, "
            f"reasoning at {llm.base_url}, files in {work}",
        )
        env = {**os.environ, API_KEY_ENV: "demo-key-not-secret"}
        config = load_config(config_path, env=env)
        disputes = {}
        for scenario in scenarios:
            dispute_id = node.open_dispute(initiator="buyer")
            model.plans[dispute_id] = scenario
            disputes[scenario] = dispute_id
            narrate(
                "mostro",
                f"{scenario}: Mostro publishes dispute {dispute_id} (initiated by the buyer)",
            )
        _step(narrate, "listen", lambda: _listen(config))
        for scenario, dispute_id in disputes.items():
            for solver in (reader, writer):
                got = _shows(solver, serbero, dispute_id, "new")
                report.expectations.append(
                    Expectation(solver.name, f"new-dispute message for {scenario}", got)
                )
                narrate(solver.name, f"Mostrix shows dispute {dispute_id[:8]} as new: {_yes(got)}")
        _step(narrate, "mediate-once", lambda: _mediate(config, env))
        parties = {
            (s, role): node.party(d, role)
            for s, d in disputes.items()
            for role in ("buyer", "seller")
        }
        for (scenario, role), party in parties.items():
            questions = party.messages()
            report.expectations.append(
                Expectation(f"{scenario} {role}", "Serbero's question", bool(questions))
            )
            for q in questions:
                narrate(
                    f"{scenario} {role}", f"decrypted from the relay: {q.content.splitlines()[0]!r}"
                )
            answers = COOPERATIVE_ANSWERS if scenario == "cooperative" else ESCALATION_ANSWERS
            party.reply(answers[role], created_at=int(time.time()) - 1)
            narrate(f"{scenario} {role}", f"answers: {answers[role]!r}")
        _step(narrate, "mediate-once", lambda: _mediate(config, env))
        if "cooperative" in disputes:
            for solver in (reader, writer):
                got = _shows(solver, serbero, disputes["cooperative"], "handed off: facts_gathered")
                report.expectations.append(Expectation(solver.name, "mediation summary", got))
                narrate(
                    solver.name,
                    f"received the mediation summary (handed off: facts_gathered): {_yes(got)}",
                )
        if "escalation" in disputes:
            _step(narrate, "dispatch-once", lambda: _dispatch(config))
            got = _shows(writer, serbero, disputes["escalation"], "handed off: conflicting_claims")
            report.expectations.append(Expectation(writer.name, "escalation handoff", got))
            narrate(writer.name, f"received the escalation handoff: {_yes(got)}")
            leaked = _shows(reader, serbero, disputes["escalation"], "handed off")
            report.expectations.append(
                Expectation(reader.name, "no handoff (read solvers cannot take over)", not leaked)
            )
        for dispute_id in disputes.values():
            for line in _mostrix_view(writer, serbero, dispute_id):
                narrate(f"{writer.name} Mostrix", line)
        headlines = watchdog.poll()
        report.expectations.append(
            Expectation(
                "watchdog",
                "one headline per mediation step",
                bool(headlines) and all(h.one_line for h in headlines),
            )
        )
        for headline in headlines:
            reason = f" ({headline.reason})" if headline.reason else ""
            flag = " · NEEDS A SOLVER" if headline.needs_a_solver else ""
            narrate(
                "watchdog",
                f"Telegram: dispute {headline.dispute_id[:8]} {headline.kind}{reason}{flag}",
            )
        narrate("audit", str(config_path))
        return report
    finally:
        for closer in (
            node.stop,
            reader.close,
            writer.close,
            watchdog.close,
            llm.stop,
            relay.shutdown,
        ):
            try:
                closer()
            except Exception:  # noqa: BLE001 - teardown must not hide the report
                pass


def _write_config(
    work: Path,
    relay_url: str,
    serbero: ns.Keys,
    mostro: str,
    solvers: list[SimSolver],
    api_base: str,
    observer: str,
) -> Path:
    import tomlkit

    from serbero_cli.config import render_sample

    doc = tomlkit.parse(render_sample())
    doc["serbero"]["private_key"] = serbero.secret_key().to_hex()
    doc["serbero"]["db_path"] = "serbero.db"
    doc["mostro"]["pubkey"] = mostro
    doc["relays"][0]["url"] = relay_url
    solver_tables = tomlkit.aot()
    for solver in solvers:
        table = tomlkit.table()
        table["pubkey"], table["permission"] = solver.pubkey, solver.permission
        solver_tables.append(table)
    doc["solvers"] = solver_tables
    observers = tomlkit.aot()
    table = tomlkit.table()
    table["pubkey"] = observer
    observers.append(table)
    doc["observers"] = observers
    doc["mediation"]["enabled"] = True
    doc["mediation"]["take_reply_wait_seconds"] = 5
    doc["reasoning"].update(
        {
            "enabled": True,
            "provider": "openai-compatible",
            "api_base": api_base,
            "model": "demo-model",
            "api_key_env": API_KEY_ENV,
        }
    )
    doc["escalation"]["enabled"] = True
    path = work / "config.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomlkit.dumps(doc))
    return path


def _step(narrate: Narrate, name: str, action: Callable[[], str]) -> None:
    narrate("serbero", f"running `serbero {name}` …")
    narrate("serbero", action())


def _listen(config: Config) -> str:
    from serbero_cli.listen.run import run_listen
    from serbero_cli.mediation.resolution import make_resolution_hook

    d = run_listen(config, on_resolved=make_resolution_hook(config)).to_dict()
    return (
        f"listen: {d['disputes']['new']} new disputes, {d['notifications']['sent']} solver DMs sent, "
        f"exit {d['exit_code']}"
    )


def _mediate(config: Config, env: Mapping[str, str]) -> str:
    from serbero_cli.mediation.run import run_mediate_once

    r = run_mediate_once(config, env=env, retry_pause=0)
    return (
        f"mediate-once: {r.sessions_opened} sessions opened, {r.replies_fresh} replies, "
        f"{r.summaries_generated} summaries, escalations {r.escalations or '{}'}, exit {r.exit_code}"
    )


def _dispatch(config: Config) -> str:
    from serbero_cli.dispatch.run import run_dispatch_once

    r = run_dispatch_once(config, dry_run=False, limit=None)
    d = r.to_dict()
    return f"dispatch-once: {d['counts']['dispatched']} handoffs dispatched, exit {d['exit_code']}"


def _shows(solver: SimSolver, serbero: ns.Keys, dispute_id: str, subject: str) -> bool:
    """Whether the solver's Mostrix lists a message of the dispute whose subject starts so."""
    return any(
        m.dispute_id == dispute_id and m.subject.startswith(subject)
        for m in solver.mostrix(serbero.public_key().to_hex())
    )


def _mostrix_view(solver: SimSolver, serbero: ns.Keys, dispute_id: str) -> list[str]:
    """The dispute's SERBERO tab as Mostrix lists it: one subject per message, oldest first."""
    lines = [f"dispute {dispute_id[:8]}, SERBERO tab:"]
    for message in solver.mostrix(serbero.public_key().to_hex()):
        if message.dispute_id == dispute_id:
            banner = "   <- Serbero handed off · Ctrl+T to take over" if message.banner else ""
            lines.append(f"  {message.subject}{banner}")
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"
