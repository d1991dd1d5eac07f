"""Broken handoff rows are recorded once and never block valid ones."""

from __future__ import annotations

import json
import sqlite3
import time

from tests.dispatch_once.conftest import BUNDLE, handoff_dms, package_json
from tests.helpers import db_rows

HANDOFFS_VIEW_SQL = """
SELECT h.id, h.occurred_at,
  CASE WHEN typeof(h.payload_json) = 'text' AND json_valid(h.payload_json)
       THEN json_extract(h.payload_json, '$.dispute_id') END AS dispute_id,
  COALESCE(d.status,
    (SELECT CASE a.kind WHEN 'escalation_dispatch_parse_failed' THEN 'parse_failed'
                        WHEN 'escalation_superseded' THEN 'superseded' ELSE 'unroutable' END
       FROM mediation_events a
      WHERE (CASE WHEN a.kind IN ('escalation_superseded', 'escalation_dispatch_unroutable',
                                  'escalation_dispatch_parse_failed')
                  THEN json_extract(a.payload_json, '$.handoff_event_id') END) = h.id
      ORDER BY a.id DESC LIMIT 1),
    'pending') AS state,
  d.attempts, d.finished_at - h.occurred_at AS latency_s
FROM mediation_events h LEFT JOIN escalation_dispatches d ON d.handoff_event_id = h.id
WHERE h.kind = 'handoff_prepared' ORDER BY h.id DESC
"""


def parse_failed_rows(seed) -> dict[int, dict]:
    rows = seed.audit("escalation_dispatch_parse_failed")
    out = {r["payload"]["handoff_event_id"]: r["payload"] for r in rows}
    assert len(out) == len(rows), "more than one parse-failed row for a handoff"
    return out


def test_missing_keys_with_a_string_dispute_id_use_the_hint(esc_config, seed, run_once):
    cfg = esc_config()
    handoff_id = seed.handoff(
        payload=json.dumps({"dispute_id": "d-hint", "trigger": "round_limit"})
    )
    for _ in range(2):
        assert run_once(cfg).exit_code == 0
    (row,) = seed.audit("escalation_dispatch_parse_failed")
    assert row["payload"]["reason"] == "deserialize_failed" and row["payload"]["detail"]
    assert (
        row["payload"]["dispute_id"] == "d-hint"
        and row["payload"]["handoff_event_id"] == handoff_id
    )
    assert (row["prompt_bundle_id"], row["policy_hash"]) == BUNDLE and row["session_id"] is None


def test_not_json_is_unknown_and_a_missing_dispute_is_an_orphan(esc_config, seed, run_once):
    broken = seed.handoff(payload="this is not json")
    orphan = seed.handoff("no-such-dispute")
    result = run_once(esc_config())
    assert result.exit_code == 0 and result.counts["parse_failed"] == 2
    rows = parse_failed_rows(seed)
    assert (
        rows[broken]["dispute_id"] == "unknown" and rows[broken]["reason"] == "deserialize_failed"
    )
    assert rows[orphan] == {
        "detail": "dispute_id not found",
        "dispute_id": "no-such-dispute",
        "handoff_event_id": orphan,
        "reason": "orphan_dispute_reference",
    }


def test_a_malformed_lower_id_does_not_block_a_valid_one(
    esc_config, seed, solvers, serbero_pub, run_once
):
    cfg = esc_config()
    seed.handoff(payload="{broken")
    good = seed.handoff(seed.dispute())
    assert run_once(cfg).counts["dispatched"] == 1
    before = db_rows(seed.db_path, "SELECT COUNT(*) AS n FROM mediation_events")[0]["n"]
    second = run_once(cfg)
    assert second.handoffs == [] and second.exit_code == 0
    assert db_rows(seed.db_path, "SELECT COUNT(*) AS n FROM mediation_events")[0]["n"] == before
    assert [d["handoff_event_id"] for d in seed.dispatches()] == [good]
    assert len(handoff_dms(solvers[1], serbero_pub)) == 1


def corpus(dispute: str) -> dict[str, object]:
    good = json.loads(package_json(dispute))

    def mutate(**changes) -> str:
        doc = dict(good)
        for key, value in changes.items():
            doc.pop(key) if value is ... else doc.__setitem__(key, value)
        return json.dumps(doc, ensure_ascii=False)

    text = package_json(dispute)
    items: dict[str, object] = {
        "empty": "",
        "null": "null",
        "array": "[1,2]",
        "string": '"x"',
        "number": "42",
        "object-empty": "{}",
        "blob": text.encode(),
        "bom": "\ufeff" + text,
        "trailing-garbage": text + " x",
        "nan": text.replace("1760000000", "NaN"),
        "infinity": text.replace("1760000000", "-Infinity"),
        "duplicate-key": text[:-1] + ',"trigger":"again"}',
        "lone-surrogate": text.replace('"c0ffee"', '"\\ud83d"'),
        "invalid-utf8": b"\xff\xfe" + text.encode(),
        "nested": "[" * 100_000,
        "two-mib": mutate(pad="a" * (2 * 1024 * 1024)),
        "trigger-newline": mutate(trigger="a\nb"),
        "trigger-control": mutate(trigger="a\x01b"),
        "dispute-u2028": mutate(dispute_id=dispute + "\u2028"),
        "session-del": mutate(session_id="s\x7f"),
        "numeric-dispute-id": mutate(dispute_id=42),
        "dispute-null": mutate(dispute_id=None),
        "session-number": mutate(session_id=5),
        "trigger-number": mutate(trigger=1),
        "evidence-string": mutate(evidence_refs="x"),
        "evidence-int-item": mutate(evidence_refs=[1]),
        "bundle-number": mutate(prompt_bundle_id=1),
        "policy-null": mutate(policy_hash=None),
        "rationale-object": mutate(rationale_refs={}),
        "rationale-bool-item": mutate(rationale_refs=[True]),
        "assembled-float": mutate(assembled_at=1.5),
        "assembled-string": mutate(assembled_at="1"),
        "assembled-bool": mutate(assembled_at=True),
        "assembled-2^63": mutate(assembled_at=2**63),
        "assembled-low": mutate(assembled_at=-(2**63) - 1),
    }
    for key in (
        "dispute_id",
        "trigger",
        "evidence_refs",
        "prompt_bundle_id",
        "policy_hash",
        "rationale_refs",
        "assembled_at",
    ):
        items[f"missing-{key}"] = mutate(**{key: ...})
    return items


def insert_raw(db_path, payload: object) -> int:
    """A handoff row whose payload the store helper cannot write (a BLOB, or TEXT that is not UTF-8)."""
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    try:
        sql = (
            "INSERT INTO mediation_events (kind, payload_json, prompt_bundle_id, policy_hash, occurred_at) "
            "VALUES ('handoff_prepared', {}, ?, ?, ?)"
        )
        if isinstance(payload, bytes) and payload.startswith(b"\xff"):
            cur = conn.execute(sql.format("CAST(? AS TEXT)"), (payload, *BUNDLE, int(time.time())))
        else:
            cur = conn.execute(sql.format("?"), (payload, *BUNDLE, int(time.time())))
        return cur.lastrowid
    finally:
        conn.close()


def test_corpus_of_broken_payloads_among_valid_ones(
    esc_config, seed, solvers, serbero_pub, run_once
):
    writer = solvers[1]
    dispute = seed.dispute()
    items = corpus(dispute)
    assert len(items) >= 40
    valid, broken = [seed.handoff(dispute)], {}
    for index, (name, payload) in enumerate(items.items()):
        if isinstance(payload, bytes):
            broken[insert_raw(seed.db_path, payload)] = name
        else:
            broken[seed.handoff(payload=payload)] = name
        if index % 15 == 7:
            valid.append(seed.handoff(dispute, trigger=f"valid-{index}"))
    valid.append(seed.handoff(dispute))
    assert (
        db_rows(
            seed.db_path,
            "SELECT typeof(payload_json) AS t FROM mediation_events WHERE id = ?",
            (next(k for k, v in broken.items() if v == "blob"),),
        )[0]["t"]
        == "blob"
    )
    result = run_once(esc_config())
    assert result.exit_code == 0
    assert result.counts["parse_failed"] == len(items) and result.counts["dispatched"] == len(valid)
    rows = parse_failed_rows(seed)
    assert set(rows) == set(broken)
    for handoff_id, payload in rows.items():
        assert payload["reason"] == "deserialize_failed", broken[handoff_id]
        assert 0 < len(payload["detail"]) <= 500
    assert (
        rows[next(k for k, v in broken.items() if v == "numeric-dispute-id")]["dispute_id"]
        == "unknown"
    )
    assert (
        rows[next(k for k, v in broken.items() if v == "missing-trigger")]["dispute_id"] == dispute
    )
    assert [d["handoff_event_id"] for d in seed.dispatches()] == valid
    assert len(handoff_dms(writer, serbero_pub)) == len(valid)
    second = run_once(esc_config())
    assert second.handoffs == [] and len(seed.audit("escalation_dispatch_parse_failed")) == len(
        items
    )
    view = {r["id"]: r["state"] for r in db_rows(seed.db_path, HANDOFFS_VIEW_SQL)}
    assert {view[i] for i in broken} == {"parse_failed"} and {view[i] for i in valid} == {
        "dispatched"
    }
