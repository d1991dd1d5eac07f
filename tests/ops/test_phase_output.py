"""What the phases print for cron, journald and people: one summary line off a terminal, tables on
one, nothing with --quiet on success, and log lines shaped for the journal or a log file."""

from __future__ import annotations

import re
import shlex
import time

from serbero_cli.simulate.relay import start_relay
from tests.helpers import run_serbero, run_serbero_tty
from tests.listen.test_listen import mined_dispute_event, publish_to

API_ENV = {"SERBERO_REASONING_API_KEY": "sk-test-output-0123456789"}
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")
JOURNAL = re.compile(r"^<([2-7])>[\w.]+: ")


def summary(stdout: str, phase: str) -> dict[str, str]:
    """The one `phase: key=value …` line of stdout, as a dict (fails unless stdout is exactly that line)."""
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    head, _, rest = lines[0].partition(": ")
    assert head == phase, lines[0]
    return dict(word.split("=", 1) for word in shlex.split(rest))


def mediation_on(llm_base: str = "http://127.0.0.1:9/v1") -> dict:
    return {
        "mediation": {"enabled": True},
        "reasoning": {"enabled": True, "provider": "openai-compatible", "api_base": llm_base},
    }


def test_listen_prints_one_summary_line_into_a_pipe(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen")
    assert proc.returncode == 0, proc.stderr
    fields = summary(proc.stdout, "listen")
    assert {k: fields[k] for k in ("events", "new", "sent", "failed", "exit")} == {
        "events": "1",
        "new": "1",
        "sent": "2",
        "failed": "0",
        "exit": "0",
    }


def test_listen_draws_its_table_on_a_terminal(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    code, stdout, stderr = run_serbero_tty(cfg, "listen")
    assert code == 0, stderr
    assert "listen: " not in stdout and len(stdout.splitlines()) >= 6
    assert "notifications" in stdout and "sent 2" in stdout


def test_listen_quiet_prints_nothing_on_success_on_a_pipe_or_a_terminal(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen", "-q")
    assert (proc.returncode, proc.stdout) == (0, "")
    code, stdout, _ = run_serbero_tty(cfg, "listen", "--quiet")
    assert (code, stdout) == (0, "")


def test_listen_quiet_prints_the_summary_line_when_a_send_fails(make_config, mostro):
    pow_relay = start_relay(min_pow=16)  # stores the mined dispute event, refuses the unmined DMs
    try:
        publish_to(
            pow_relay.url,
            mined_dispute_event(
                mostro.keys, "8c1b0f5e-0d5e-4a0e-9a43-0f0c4f3a9b11", 16, int(time.time())
            ),
        )
        proc = run_serbero(make_config(relays=[pow_relay.url]), "listen", "-q")
    finally:
        pow_relay.shutdown()
    assert proc.returncode == 4
    fields = summary(proc.stdout, "listen")
    assert (fields["failed"], fields["sent"], fields["exit"]) == ("2", "0", "4")


def test_listen_dry_run_line_says_so_and_has_no_send_counts(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen", "--dry-run")
    fields = summary(proc.stdout, "listen")
    assert fields["dry_run"] == "yes" and fields["queued"] == "2" and "sent" not in fields


def test_disabled_mediation_prints_nothing_off_a_terminal_and_logs_at_debug(make_config, db_path):
    cfg = make_config()
    proc = run_serbero(cfg, "mediate-once")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    proc = run_serbero(cfg, "--log-level", "debug", "mediate-once")
    assert proc.stdout == "" and re.search(
        r" DEBUG serbero_cli\.mediation\.run: mediation disabled", proc.stderr
    )
    code, stdout, _ = run_serbero_tty(cfg, "mediate-once")
    assert code == 0 and stdout.strip() == "mediation disabled"
    assert not db_path.exists()


def test_mediate_once_prints_one_summary_line_into_a_pipe_and_a_table_on_a_terminal(make_config):
    cfg = make_config(sections=mediation_on())
    proc = run_serbero(cfg, "mediate-once", env=API_ENV)
    assert proc.returncode == 0, proc.stderr
    fields = summary(proc.stdout, "mediate-once")
    assert (fields["sessions"], fields["opened"], fields["exit"]) == ("0", "0", "0")
    code, stdout, stderr = run_serbero_tty(cfg, "mediate-once", env=API_ENV)
    assert code == 0, stderr
    assert (
        "mediate-once: " not in stdout
        and "sessions_opened" in stdout
        and len(stdout.splitlines()) > 5
    )
    assert run_serbero(cfg, "mediate-once", "-q", env=API_ENV).stdout == ""


def test_mediate_once_dry_run_line_counts_the_due_work(make_config):
    cfg = make_config(sections=mediation_on())
    proc = run_serbero(cfg, "mediate-once", "--dry-run", env=API_ENV)
    fields = summary(proc.stdout, "mediate-once")
    assert fields["dry_run"] == "yes" and fields["exit"] == "0"


def test_disabled_escalation_prints_nothing_off_a_terminal(make_config):
    proc = run_serbero(make_config(), "dispatch-once")
    assert (proc.returncode, proc.stdout) == (0, "")
    assert "escalation is disabled" not in proc.stderr  # a debug line only


def test_dispatch_once_prints_one_summary_line_into_a_pipe_and_its_counts_on_a_terminal(
    make_config,
):
    cfg = make_config(sections={"escalation": {"enabled": True}})
    proc = run_serbero(cfg, "dispatch-once")
    assert proc.returncode == 0, proc.stderr
    fields = summary(proc.stdout, "dispatch-once")
    assert (fields["handoffs"], fields["dispatched"], fields["exit"]) == ("0", "0", "0")
    code, stdout, _ = run_serbero_tty(cfg, "dispatch-once")
    assert code == 0 and "dispatched 0" in stdout and "dispatch-once: " not in stdout
    assert run_serbero(cfg, "dispatch-once", "--quiet").stdout == ""
    assert (
        summary(run_serbero(cfg, "dispatch-once", "--dry-run").stdout, "dispatch-once")["dry_run"]
        == "yes"
    )


def test_json_output_is_unchanged_by_quiet_and_a_pipe(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen", "--json", "-q")
    assert proc.stdout.startswith('{"report": "listen/v1"') and len(proc.stdout.splitlines()) == 1


def test_journal_stream_gives_priority_prefixed_lines_without_timestamps(
    make_config, mostro, relay
):
    # The second relay is unreachable: a warning line (and a short fetch timeout keeps the wait short).
    cfg = make_config(
        relays=[relay.url, "ws://127.0.0.1:9"], sections={"listen": {"fetch_timeout_seconds": 2}}
    )
    mostro.open_dispute()
    proc = run_serbero(
        cfg, "--log-level", "debug", "listen", "-q", env={"JOURNAL_STREAM": "8:12345"}
    )
    lines = proc.stderr.splitlines()
    assert lines and all(JOURNAL.match(line) for line in lines), proc.stderr
    priorities = {JOURNAL.match(line).group(1) for line in lines}
    assert {"4", "6", "7"} <= priorities
    assert any(line.startswith("<6>serbero_cli.listen.run: events fetched=1 ") for line in lines)
    assert any(line.startswith("<4>") and "unreachable" in line for line in lines)
    assert not any(re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", line) for line in lines)


def test_journal_stream_being_set_is_enough(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen", "-q", env={"JOURNAL_STREAM": ""})
    assert proc.stderr and all(JOURNAL.match(line) for line in proc.stderr.splitlines())


def test_log_file_lines_carry_a_utc_timestamp_and_steps_log_at_info(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "listen", "-q")
    lines = proc.stderr.splitlines()
    assert lines and all(TIMESTAMPED.match(line) for line in lines), proc.stderr
    steps = [
        line.split(": ", 1)[1].split()[0] for line in lines if " serbero_cli.listen.run: " in line
    ]
    assert steps == ["events", "outbox"]


def test_an_idle_listen_run_logs_nothing_at_info(make_config, mostro):
    cfg = make_config()
    assert run_serbero(cfg, "listen").returncode == 0
    proc = run_serbero(cfg, "listen", "-q")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_a_log_record_stays_one_line_when_its_values_hold_controls(tmp_path, make_config):
    odd = tmp_path / "odd\nname\x1b[31m"
    odd.mkdir()
    cfg = make_config(name="config.toml", sections={"chat": {"inbound_fetch_interval_seconds": 5}})
    moved = odd / "config.toml"
    moved.write_text(cfg.read_text())
    moved.chmod(0o600)
    proc = run_serbero(moved, "dispatch-once", "--dry-run")
    warnings = [
        line for line in proc.stderr.splitlines() if "inbound_fetch_interval_seconds" in line
    ]
    assert len(warnings) == 1 and TIMESTAMPED.match(warnings[0])
    assert "odd\\nname\\x1b[31m" in warnings[0] and "\x1b" not in proc.stderr


def test_nostr_sdk_debug_log_goes_to_stderr_colourless_and_json_stays_clean(make_config, mostro):
    cfg = make_config()
    mostro.open_dispute()
    proc = run_serbero(cfg, "--log-level", "debug", "listen", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 and proc.stdout.startswith('{"report": "listen/v1"')
    sdk = [line for line in proc.stderr.splitlines() if " nostr_sdk." in line]
    assert sdk and all(TIMESTAMPED.match(line) for line in sdk)
    assert "\x1b[" not in proc.stderr
    code, stdout, stderr = run_serbero_tty(cfg, "--log-level", "debug", "listen")
    assert (
        code == 0 and "nostr_sdk" not in stdout and "nostr_sdk" in stderr
    )  # a terminal's table stays clean
