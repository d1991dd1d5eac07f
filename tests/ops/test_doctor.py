"""`serbero doctor` on the real path: a loopback relay, a simulated Mostro, real files, a real HTTP provider."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import nostr_sdk as ns

from serbero_cli.runlock import RunLock
from serbero_cli.simulate.llm import LLMServer
from serbero_cli.simulate.mostro import build_dispute_event
from serbero_cli.store.db import open_db
from serbero_cli.store.migrations import MIGRATIONS
from tests.helpers import db_checksum, run_json, run_serbero, write_config
from tests.ops.conftest import build_info_event

FAST = {"listen": {"fetch_timeout_seconds": 3}}


def doctor_json(cli, config, *, env=None):
    result = cli("--config", str(config), "doctor", "--json", env=env)
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == result.exit_code
    return result, doc


def rows(doc, name):
    return [c for c in doc["checks"] if c["name"] == name]


def row(doc, name):
    found = rows(doc, name)
    assert len(found) == 1, (name, doc["checks"])
    return found[0]


def test_doctor_passes_on_a_healthy_setup_and_reports_what_mostro_publishes(
    cli, make_config, mostro, relay
):
    dispute = mostro.open_dispute()
    mostro.publish(
        build_info_event(
            mostro.keys, {"protocol_version": "2", "pow": "3", "mostro_version": "0.18.5"}
        )
    )
    config = make_config(sections=FAST)
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 0, doc
    assert doc["counts"]["fail"] == 0
    assert row(doc, f"relay {relay.url}")["detail"].startswith("connected in ")
    assert dispute[:12] in row(doc, "mostro disputes")["detail"]
    assert "status initiated" in row(doc, "mostro disputes")["detail"]
    info = row(doc, "mostro info")
    assert info["status"] == "ok"
    assert (
        "protocol_version=2, pow=3, pow_first_contact=absent, mostro_version=0.18.5"
        in info["detail"]
    )
    transport = row(doc, "mostro transport")
    assert (
        "configured auto, resolves to nip44 (from info_event), pow 3 bit(s) for takes"
        in transport["detail"]
    )
    assert (
        transport["status"] == "warn" and "pow_first_contact" in transport["hint"]
    )  # an early v2 node
    assert row(doc, "solvers")["detail"] == "2 valid key(s): 1 read, 1 write"
    assert row(doc, "clock")["status"] == "ok"
    assert row(doc, "reasoning")["status"] == "ok"
    assert row(doc, "prompt bundle")["status"] == "ok"
    assert {r["detail"] for r in doc["checks"] if r["name"].startswith("lock ")} == {"free"}


def test_doctor_prints_the_registration_string(cli, make_config, serbero_keys):
    result = cli("--config", str(make_config(sections=FAST)), "doctor")
    expected = f"register on Mostro as: {serbero_keys.public_key().to_bech32()}:read"
    assert expected in result.stdout.splitlines()


def test_doctor_marks_an_unreachable_relay_failed_and_exits_4(make_config, relay):
    config = make_config(relays=[relay.url, "ws://127.0.0.1:1"], sections=FAST)
    proc = run_serbero(config, "doctor")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "relay ws://127.0.0.1:1 " in line)
    assert "✗" in line
    assert "1 failed; exit 4" in proc.stdout
    code, doc, _ = run_json(config, "doctor")
    assert code == 4
    assert row(doc, "relay ws://127.0.0.1:1")["status"] == "fail"
    assert row(doc, f"relay {relay.url}")["status"] == "ok"
    assert doc["error"].startswith("relay ws://127.0.0.1:1: cannot connect")


def test_doctor_with_no_relay_reachable_skips_the_mostro_checks(cli, make_config):
    result, doc = doctor_json(cli, make_config(relays=["ws://127.0.0.1:1"], sections=FAST))
    assert result.exit_code == 4
    assert row(doc, "mostro")["detail"] == "not checked: no relay reachable"


def test_doctor_lists_every_config_error_with_its_line_and_exits_2(make_config):
    config = make_config(sections=FAST)
    text = config.read_text()
    text = text.replace("renotification_seconds = 300", "renotification_seconds = -1")
    text = text.replace('permission = "read"', 'permission = "admin"', 1)
    config.write_text(text)
    proc = run_serbero(config, "doctor")
    assert proc.returncode == 2
    code, doc, stderr = run_json(config, "doctor")
    assert code == 2
    details = [c["detail"] for c in doc["checks"]]
    assert all(c["status"] == "fail" and c["name"] == "config" for c in doc["checks"])
    assert len(details) == 2
    assert any(
        f"{config}:" in d and "[timeouts] renotification_seconds: must be >= 1" in d
        for d in details
    )
    assert any("[[solvers]] permission" in d for d in details)


def test_doctor_names_the_line_of_an_invalid_solver_key(cli, make_config, solvers):
    config = make_config(
        solver_list=[(solvers[0].pubkey, "read"), ("f" * 64, "write")], sections=FAST
    )
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "f" * 64 in text)
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 2
    assert (
        row(doc, "config")["detail"]
        == f"{config}:{line}: [[solvers]] pubkey: not a valid public key "
        f"(not a point on the secp256k1 curve)"
    )


def test_doctor_never_prints_a_secret(cli, make_config, serbero_keys):
    server = LLMServer().start()
    try:
        config = make_config(
            sections={
                **FAST,
                "reasoning": {
                    "enabled": True,
                    "api_base": server.openai_base,
                    "provider": "openai-compatible",
                },
            }
        )
        api_key = "sk-test-" + "9" * 32
        env = {"SERBERO_REASONING_API_KEY": api_key}
        text = cli("--config", str(config), "doctor", env=env)
        as_json = cli("--config", str(config), "doctor", "--json", env=env)
    finally:
        server.stop()
    everything = text.stdout + text.stderr + as_json.stdout + as_json.stderr
    for secret in (
        serbero_keys.secret_key().to_hex(),
        serbero_keys.secret_key().to_bech32(),
        api_key,
    ):
        assert secret not in everything
    assert text.exit_code == 0, text.stdout


def test_doctor_calls_the_reasoning_provider_for_real(cli, make_config):
    server = LLMServer().start()
    try:
        config = make_config(
            sections={
                **FAST,
                "reasoning": {
                    "enabled": True,
                    "api_base": server.openai_base,
                    "provider": "openai-compatible",
                    "model": "m1",
                },
            }
        )
        result, doc = doctor_json(cli, config, env={"SERBERO_REASONING_API_KEY": "k"})
        assert len(server.health_requests()) == 1
    finally:
        server.stop()
    assert result.exit_code == 0
    assert row(doc, "reasoning key")["status"] == "ok"
    assert "answered the health check" in row(doc, "reasoning provider")["detail"]


def test_doctor_reports_a_refused_provider_key_as_a_failed_check(cli, make_config):
    server = LLMServer(health_status=401).start()
    try:
        config = make_config(
            sections={
                **FAST,
                "reasoning": {
                    "enabled": True,
                    "api_base": server.openai_base,
                    "provider": "openai-compatible",
                },
            }
        )
        result, doc = doctor_json(cli, config, env={"SERBERO_REASONING_API_KEY": "wrong"})
    finally:
        server.stop()
    assert result.exit_code == 4
    check = row(doc, "reasoning provider")
    assert (
        check["status"] == "fail" and "unreachable" in check["detail"] and "401" in check["detail"]
    )


def test_doctor_treats_a_missing_api_key_as_a_config_error(cli, make_config):
    config = make_config(sections={**FAST, "reasoning": {"enabled": True}})
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 2
    check = row(doc, "reasoning key")
    assert check["status"] == "fail" and "SERBERO_REASONING_API_KEY" in check["detail"]
    assert not rows(doc, "reasoning provider")


def test_doctor_treats_a_missing_prompt_file_as_a_config_error_when_reasoning_is_on(
    cli, make_config, tmp_path
):
    missing = tmp_path / "nope" / "system.md"
    server = LLMServer().start()
    try:
        on = make_config(
            sections={
                **FAST,
                "reasoning": {"enabled": True, "api_base": server.openai_base},
                "prompts": {"system_instructions_path": str(missing)},
            }
        )
        result, doc = doctor_json(cli, on, env={"SERBERO_REASONING_API_KEY": "k"})
    finally:
        server.stop()
    assert result.exit_code == 2
    check = row(doc, "prompt bundle")
    assert check["status"] == "fail" and str(missing) in check["detail"]
    off = make_config(
        sections={**FAST, "prompts": {"system_instructions_path": str(missing)}}, name="off.toml"
    )
    result, doc = doctor_json(cli, off)
    assert result.exit_code == 0
    assert row(doc, "prompt bundle")["status"] == "warn"


def test_doctor_does_not_create_or_change_the_database(cli, make_config, db_path):
    config = make_config(sections=FAST)
    _, doc = doctor_json(cli, config)
    assert not db_path.exists()
    assert "does not exist yet" in row(doc, "database")["detail"]
    open_db(db_path).close()
    before = db_checksum(db_path)
    _, doc = doctor_json(cli, config)
    assert row(doc, "database")["detail"].endswith(f"schema version {len(MIGRATIONS)} (current)")
    assert (
        row(doc, "last runs")["detail"] == "listen never, mediate-once never, dispatch-once never"
    )
    assert db_checksum(db_path) == before


def test_doctor_fails_on_a_database_newer_than_the_code(cli, make_config, db_path):
    open_db(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 5,))
    conn.commit()
    conn.close()
    result, doc = doctor_json(cli, make_config(sections=FAST))
    assert result.exit_code == 4
    assert (
        row(doc, "database")["status"] == "fail"
        and "upgrade serbero" in row(doc, "database")["detail"]
    )


def test_doctor_shows_a_held_lock_as_information(cli, make_config, db_path):
    config = make_config(sections=FAST)
    with RunLock(db_path, "dispatch", "dispatch-once"):
        result, doc = doctor_json(cli, config)
    assert result.exit_code == 0
    assert row(doc, "lock dispatch-once") == {
        "name": "lock dispatch-once",
        "status": "ok",
        "hint": "",
        "detail": f"held by pid {os.getpid()}: a dispatch-once run is in progress",
    }
    assert row(doc, "lock listen")["detail"] == "free"


def test_doctor_warns_when_the_config_with_a_key_is_readable_by_others(cli, make_config):
    config = make_config(sections=FAST)
    config.chmod(0o644)
    result, doc = doctor_json(cli, config)
    assert result.exit_code == 0
    check = row(doc, "config file mode")
    assert check["status"] == "warn" and check["hint"] == f"chmod 600 {config}"
    assert not any("readable by group/others" in c["detail"] for c in rows(doc, "config"))


def test_doctor_warns_about_a_clock_behind_the_relay(cli, make_config, mostro):
    mostro.publish(
        build_dispute_event(
            mostro.keys, "future-dispute", "initiated", created_at=int(time.time()) + 600
        )
    )
    result, doc = doctor_json(cli, make_config(sections=FAST))
    check = row(doc, "clock")
    assert check["status"] == "warn" and "NTP" in check["hint"]
    assert result.exit_code == 0  # a warning is not a failure


def test_doctor_warns_when_escalation_has_nowhere_to_go(cli, make_config, solvers):
    config = make_config(
        solver_list=[(solvers[0].pubkey, "read")],
        sections={**FAST, "escalation": {"enabled": True}},
    )
    _, doc = doctor_json(cli, config)
    assert any(
        c["status"] == "warn" and "no solver has permission" in c["detail"]
        for c in rows(doc, "solvers")
    )


def test_doctor_shows_the_cached_transport_row(cli, make_config, db_path):
    store = open_db(db_path)
    value = {
        "transport": "nip44",
        "protocol_version": "2",
        "pow": 0,
        "pow_first_contact": 12,
        "event_id": "e" * 64,
        "event_created_at": 1,
    }
    store.conn.execute(
        "INSERT INTO sync_state (key, value, updated_at) VALUES ('mostro_transport', ?, ?)",
        (json.dumps(value), int(time.time()) - 7200),
    )
    store.close()
    _, doc = doctor_json(cli, make_config(sections=FAST))
    check = row(doc, "mostro transport")
    assert "resolves to nip44 (from cache), pow 12 bit(s)" in check["detail"]
    assert (
        "cached nip44 (protocol_version 2, pow 0, pow_first_contact 12) stored 2h ago"
        in check["detail"]
    )
    assert (
        check["status"] == "warn" and "cached transport" in check["hint"]
    )  # its event is older than 24 h


def test_doctor_json_is_one_document_even_on_config_errors(tmp_path):
    config = write_config(
        tmp_path / "c.toml", private_key="zz", mostro_pubkey="zz", relays=[], solvers=[]
    )
    code, doc, _ = run_json(config, "doctor")
    assert (
        code == 2
        and doc["report"] == "doctor/v1"
        and doc["counts"]["fail"] == len(doc["checks"]) == 3
    )


def test_doctor_counts_an_info_event_missing_as_a_warning(cli, make_config):
    _, doc = doctor_json(cli, make_config(sections=FAST))
    assert row(doc, "mostro info")["status"] == "warn"
    assert row(doc, "mostro disputes")["status"] == "warn"
    transport = row(doc, "mostro transport")
    assert (
        "resolves to giftwrap (from fallback)" in transport["detail"]
        and transport["status"] == "warn"
    )


def test_doctor_fails_an_unsupported_node_protocol_only_when_mediation_is_on(
    cli, make_config, mostro
):
    mostro.publish(build_info_event(mostro.keys, {"protocol_version": "3", "pow": "0"}))
    _, doc = doctor_json(cli, make_config(sections=FAST))
    assert row(doc, "mostro transport")["status"] == "warn"
    server = LLMServer().start()
    try:
        on = make_config(
            name="on.toml",
            sections={
                **FAST,
                "mediation": {"enabled": True},
                "reasoning": {"enabled": True, "api_base": server.openai_base},
            },
        )
        result, doc = doctor_json(cli, on, env={"SERBERO_REASONING_API_KEY": "k"})
    finally:
        server.stop()
    check = row(doc, "mostro transport")
    assert (
        check["status"] == "fail"
        and "resolves to none" in check["detail"]
        and "'3'" in check["detail"]
    )
    assert result.exit_code == 4


def test_doctor_picks_the_newest_info_event(cli, make_config, mostro):
    now = int(time.time())
    mostro.publish(
        build_info_event(mostro.keys, {"protocol_version": "1", "pow": "0"}, created_at=now - 50)
    )
    other = ns.Keys.generate()  # someone else's 38385 must be ignored
    mostro.publish(build_info_event(other, {"protocol_version": "9"}, created_at=now))
    _, doc = doctor_json(cli, make_config(sections=FAST))
    assert "protocol_version=1, pow=0" in row(doc, "mostro info")["detail"]
