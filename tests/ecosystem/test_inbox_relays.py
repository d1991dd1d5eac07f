"""NIP-17 inbox relays (kind 10050): a recipient's announced DM relays get its nip17 messages too,
best effort; only the configured relays decide whether a message was delivered."""

from __future__ import annotations

import json

import nostr_sdk as ns

from serbero_cli.nostr.relays import RelayPool
from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient
from serbero_cli.simulate.relay import start_relay
from tests.helpers import db_rows, invoke, invoke_json, wait_for


def announce_inbox(relay_url: str, keys: ns.Keys, relays: list[str]) -> None:
    event = (
        ns.EventBuilder(ns.Kind(10050), "")
        .tags([ns.Tag.parse(["relay", r]) for r in relays])
        .finalize(keys)
    )
    client = SimClient(relay_url)
    try:
        aio.run(client.publish(event))
    finally:
        aio.run(client.close())


def test_an_inbox_relay_gets_the_event_but_only_configured_relays_count(relay):
    inbox = start_relay()
    try:

        async def scenario():
            pool = RelayPool([relay.url])
            try:
                await pool.connect(3)
                await pool.add_extra_relays([inbox.url])
                for _ in range(100):  # the inbox relay connects in the background
                    if (await pool.client.relays()) and len(await pool.statuses()) == 1:
                        states = {
                            str(u): r.status() for u, r in (await pool.client.relays()).items()
                        }
                        if all(s == ns.RelayStatus.CONNECTED for s in states.values()):
                            break
                    await __import__("asyncio").sleep(0.05)
                event = ns.EventBuilder(ns.Kind(1), "to an inbox").finalize(ns.Keys.generate())
                outcome = await pool.publish(
                    event, 3, extra_relays=[inbox.url, "wss://inbox.invalid"]
                )
                return event.id().to_hex(), outcome, await pool.statuses()
            finally:
                await pool.close()

        event_id, outcome, statuses = aio.run(scenario())
        assert outcome.ok and [u.rstrip("/") for u in outcome.accepted] == [relay.url.rstrip("/")]
        assert list(statuses) == [
            relay.url.rstrip("/")
        ]  # inbox relays are never reported as the run's relays
        reader = SimClient(inbox.url)
        try:
            found = wait_for(lambda: aio.run(reader.fetch([{"ids": [event_id]}])))
        finally:
            aio.run(reader.close())
        assert found[0].id().to_hex() == event_id
    finally:
        inbox.shutdown()


def test_listen_reads_and_caches_a_solvers_inbox_relays_and_still_delivers(
    make_config, relay, mostro, solvers, db_path
):
    reader, _ = solvers
    announce_inbox(
        relay.url,
        reader.keys,
        ["wss://inbox.invalid", "ws://plain.example", "wss://127.0.0.1:1", "wss://[::1]:7000"],
    )
    cfg = make_config(envelopes=["nip17"])
    mostro.open_dispute(initiator="buyer")
    code, doc, err = invoke_json(cfg, "listen")
    assert code == 0 and doc["notifications"]["failed"] == 0, (
        err
    )  # an unreachable inbox relay fails nothing
    (row,) = db_rows(
        db_path, "SELECT value FROM sync_state WHERE key=?", (f"inbox_relays:{reader.pubkey}",)
    )
    assert json.loads(row["value"]) == [
        "wss://inbox.invalid"
    ]  # plain text and local addresses are ignored
    assert len(reader.inbox()) == 1


def test_doctor_lists_each_solvers_inbox_relays(make_config, relay, solvers):
    reader, writer = solvers
    announce_inbox(relay.url, reader.keys, ["wss://inbox.example.com", "ws://ignored.example"])
    proc = invoke(make_config(envelopes=["mostro", "nip17"]), "doctor", "--json")
    doc = json.loads(proc.stdout)
    (row,) = [c for c in doc["checks"] if c["name"] == "inbox relays"]
    assert f"{reader.pubkey[:8]}: wss://inbox.example.com" in row["detail"]
    assert f"{writer.pubkey[:8]}: none announced" in row["detail"]


def test_doctor_send_test_dm_reaches_each_solver_in_each_envelope(
    make_config, solvers, serbero_keys
):
    reader, writer = solvers
    cfg = make_config(
        envelopes=["mostro", "nip17"],
        solver_list=[(reader.pubkey, "read"), (writer.pubkey, "write", ["mostro"])],
    )
    proc = invoke(cfg, "doctor", "--send-test-dm", "--json")
    rows = {
        c["name"]: c
        for c in json.loads(proc.stdout)["checks"]
        if c["name"].startswith("test message")
    }
    assert rows, proc.stdout + proc.stderr
    assert rows[f"test message {reader.pubkey[:8]}"]["status"] == "ok"
    assert "mostro: ws://" in rows[f"test message {reader.pubkey[:8]}"]["detail"]
    assert "nip17: ws://" in rows[f"test message {reader.pubkey[:8]}"]["detail"]
    assert "nip17" not in rows[f"test message {writer.pubkey[:8]}"]["detail"]
    serbero = serbero_keys.public_key().to_hex()
    (seen,) = reader.mostrix(serbero)
    assert seen.subject == "test message from serbero doctor"
    (dm,) = reader.inbox(sender=serbero)
    assert dm.content.split("\n")[0].endswith(" \u00b7 test message from serbero doctor")
    assert [m.subject for m in writer.mostrix(serbero)] == ["test message from serbero doctor"]
    assert writer.inbox(sender=serbero) == []


def test_doctor_without_the_flag_publishes_nothing(make_config, solvers, serbero_keys):
    assert invoke(make_config(envelopes=["mostro", "nip17"]), "doctor").returncode in (0, 4)
    serbero = serbero_keys.public_key().to_hex()
    assert all(s.mostrix(serbero) == [] and s.inbox(sender=serbero) == [] for s in solvers)
