"""Phase and doctor output prints outside text as data: rich markup stays literal (no MarkupError)
and terminal escapes or bidi controls show as U+FFFD. Real `serbero` subprocesses, loopback relay."""

from __future__ import annotations

import re
import time

from serbero_cli.store import notifications as outbox
from serbero_cli.store.db import open_db
from tests.helpers import run_json, run_serbero, run_serbero_tty
from tests.ops.conftest import build_info_event

MARKUP = "[bold]loud[/x][/]"
ESCAPE = "\x1b[2J\x1b]8;;http://evil.example\x07"
BIDI = "\u202e"
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_listen_dry_run_lists_a_hostile_outbox_row_literally(make_config, mostro, db_path):
    cfg = make_config()
    dispute_id = mostro.open_dispute()
    assert run_json(cfg, "listen")[0] == 0
    with open_db(db_path) as store, store.immediate() as conn:
        outbox.queue(
            conn,
            dispute_id,
            f"note{MARKUP}{ESCAPE}{BIDI}",
            [outbox.Delivery("ab" * 32, "nip17", "body")],
            int(time.time()),
        )
    # The dry run's plan is a table, which is drawn on a terminal only.
    code, stdout, stderr = run_serbero_tty(cfg, "listen", "--dry-run", env={"COLUMNS": "200"})
    assert code == 0, stderr
    assert "Traceback" not in stderr and "MarkupError" not in stderr
    flat = stdout.replace("\n", "")
    assert f"note{MARKUP}\ufffd[2J\ufffd]8;;http://evil.example" in flat
    assert CONTROLS.search(flat) is None


def test_doctor_prints_markup_in_an_info_tag_literally(make_config, mostro):
    mostro.publish(
        build_info_event(
            mostro.keys, {"protocol_version": "2", "pow": "0", "mostro_version": f"0.19{MARKUP}"}
        )
    )
    proc = run_serbero(
        make_config(sections={"listen": {"fetch_timeout_seconds": 3}}),
        "doctor",
        env={"COLUMNS": "250"},
    )
    assert proc.returncode in (0, 4), proc.stderr
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert f"mostro_version=0.19{MARKUP}" in proc.stdout


def test_doctor_never_shows_an_info_event_with_control_characters(make_config, mostro):
    mostro.publish(
        build_info_event(
            mostro.keys,
            {"protocol_version": "2", "pow": "0", "mostro_version": f"0.19{ESCAPE}{BIDI}"},
        )
    )
    proc = run_serbero(
        make_config(sections={"listen": {"fetch_timeout_seconds": 3}}),
        "doctor",
        env={"COLUMNS": "250"},
    )
    assert proc.returncode in (0, 4), proc.stderr
    assert "mostro_version=0.19" not in proc.stdout and "rejected" in proc.stderr
    assert CONTROLS.search(proc.stdout.replace("\n", "")) is None
    assert CONTROLS.search(proc.stderr.replace("\n", "")) is None
