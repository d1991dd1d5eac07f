"""mediate-once prints what the node announced as data: a hostile kind-38385 tag value stays literal."""

from __future__ import annotations

import re

from tests.helpers import run_serbero, run_serbero_tty
from tests.mediate_once.conftest import API_ENV

CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_a_markup_protocol_version_is_reported_not_interpreted(harness):
    h = harness()
    h.node.info_overrides["protocol_version"] = "[bold]9[/x]"
    h.node.publish_info()
    code, stdout, stderr = run_serbero_tty(
        h.config_path, "mediate-once", env={**API_ENV, "COLUMNS": "250"}
    )
    assert code == 4, stdout + stderr
    assert "Traceback" not in stderr and "MarkupError" not in stderr
    assert "error: the node speaks unsupported protocol_version='[bold]9[/x]'" in stdout.replace(
        "\n", ""
    )


def test_an_info_event_with_a_bidi_control_is_rejected_before_anything_shows_it(harness):
    h = harness()
    h.node.info_overrides["protocol_version"] = "2\u202e"
    h.node.publish_info()
    proc = run_serbero(h.config_path, "mediate-once", env={**API_ENV, "COLUMNS": "250"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rejected: protocol_version tag is not a short printable value" in proc.stderr
    assert CONTROLS.search(proc.stdout.replace("\n", "") + proc.stderr.replace("\n", "")) is None
