"""`serbero audit metrics`: Prometheus text that prometheus_client's own parser reads back, with the
same numbers as the dashboard, every family present, and an atomic `--output` file."""

from __future__ import annotations

import json
import os
import stat
import time

from prometheus_client.parser import text_string_to_metric_families

from serbero_cli import __version__
from tests.audit.conftest import D, plant
from tests.helpers import invoke, invoke_json

FAMILIES = (
    "serbero_disputes",
    "serbero_notifications",
    "serbero_sessions",
    "serbero_handoffs",
    "serbero_oldest_untaken_dispute_age_seconds",
    "serbero_last_run_timestamp_seconds",
    "serbero_last_run_exit_code",
    "serbero_build_info",
)


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """{family: {sorted label items: value}}, checking every family is a documented gauge."""
    families = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation, family.name
        families[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return families


def by(label: str, samples: dict[tuple, float]) -> dict[str, int]:
    return {dict(labels)[label]: int(value) for labels, value in samples.items()}


def test_metrics_match_the_dashboard(audit, audit_db):
    config, _ = audit_db
    dashboard = json.loads(audit("--json").stdout)
    opened = next(
        r for r in json.loads(audit("disputes", "--json").stdout)["rows"] if r["dispute_id"] == D
    )
    before = int(time.time())
    proc = invoke(config, "audit", "metrics")
    after = int(time.time())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("# HELP ") == proc.stdout.count("# TYPE ") == len(FAMILIES)
    m = parse(proc.stdout)
    assert tuple(m) == FAMILIES
    assert by("state", m["serbero_disputes"]) == dashboard["disputes"]
    assert by("state", m["serbero_sessions"]) == dashboard["sessions"]
    assert by("state", m["serbero_handoffs"]) == dashboard["handoffs"]
    notifications = m["serbero_notifications"]
    assert {dict(k)["envelope"] for k in notifications} == {"mostro", "nip17"}
    per_status = {}
    for labels, value in notifications.items():
        per_status[dict(labels)["status"]] = per_status.get(dict(labels)["status"], 0) + int(value)
    assert per_status == dashboard["notifications"]
    (age,) = m["serbero_oldest_untaken_dispute_age_seconds"].values()
    assert before - opened["event_timestamp"] <= age <= after - opened["event_timestamp"]
    runs = dashboard["last_runs"]
    assert by("phase", m["serbero_last_run_timestamp_seconds"]) == {
        p: r["finished_at"] for p, r in runs.items()
    }
    assert by("phase", m["serbero_last_run_exit_code"]) == {
        p: r["exit_code"] for p, r in runs.items()
    }
    assert m["serbero_build_info"] == {(("version", __version__),): 1.0}


def test_every_family_is_present_with_zeros_when_features_are_off(make_config, db_path):
    cfg = make_config()
    assert invoke_json(cfg, "listen")[0] == 0
    proc = invoke(cfg, "audit", "metrics")
    m = parse(proc.stdout)
    assert tuple(m) == FAMILIES
    assert (
        set(by("state", m["serbero_disputes"]).values()) == {0} and len(m["serbero_disputes"]) == 6
    )
    assert (
        set(by("state", m["serbero_sessions"]).values()) == {0} and len(m["serbero_sessions"]) == 7
    )
    assert (
        set(by("state", m["serbero_handoffs"]).values()) == {0} and len(m["serbero_handoffs"]) == 7
    )
    assert set(m["serbero_notifications"].values()) == {0} and len(m["serbero_notifications"]) == 10
    assert list(m["serbero_oldest_untaken_dispute_age_seconds"].values()) == [0]
    stamps = by("phase", m["serbero_last_run_timestamp_seconds"])
    assert stamps["listen"] > 0 and stamps["mediate-once"] == stamps["dispatch-once"] == 0
    assert set(by("phase", m["serbero_last_run_exit_code"]).values()) == {0}


def test_output_is_replaced_atomically_and_readable_by_the_collector(audit_db, tmp_path):
    config, _ = audit_db
    folder = tmp_path / "textfile"
    folder.mkdir()
    target = folder / "serbero.prom"
    target.write_text("old\n")
    old_inode = target.stat().st_ino
    proc = invoke(config, "audit", "metrics", "--output", str(target))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert target.stat().st_ino != old_inode  # a rename, not a rewrite in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(folder) == ["serbero.prom"]  # no temporary file left behind
    assert tuple(parse(target.read_text())) == FAMILIES
    missing = invoke(config, "audit", "metrics", "--output", str(tmp_path / "nowhere" / "x.prom"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_label_values_from_the_database_are_escaped(audit, audit_db):
    config, db = audit_db
    odd = 'odd "state"\\ with\nnewline'
    plant(db, "UPDATE disputes SET lifecycle_state = ? WHERE dispute_id = ?", (odd, D))
    m = parse(invoke(config, "audit", "metrics").stdout)
    assert by("state", m["serbero_disputes"])[odd] == 1
