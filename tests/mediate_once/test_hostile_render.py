"""mediate-once prints what the node announced as data: a hostile kind-38385 tag value stays literal."""

from __future__ import annotations

import re

from tests.helpers import run_serbero
from tests.mediate_once.conftest import API_ENV

CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_a_hostile_protocol_version_is_reported_not_interpreted(harness):
    h = harness()
    h.node.info_overrides["protocol_version"] = "[bold]9[/x]\u202e"
    h.node.publish_info()
    proc = run_serbero(h.config_path, "mediate-once", env={**API_ENV, "COLUMNS": "250"})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert "error: the node speaks unsupported protocol_version='[bold]9[/x]\\u202e'" in proc.stdout
    assert CONTROLS.search(proc.stdout.replace("\n", "")) is None
