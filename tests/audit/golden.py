"""The `--json` contract of every audit view: key order and value types, not values.

A type is `int`, `str`, `bool`, `float`, `dict`, `list` or `null`; `?` means "or null"; `|`
joins alternatives. A nested dict of types checks a nested object.
"""

from __future__ import annotations

from typing import Any

TYPES = {
    "int": int,
    "str": str,
    "bool": bool,
    "float": (float, int),
    "dict": dict,
    "list": list,
    "null": type(None),
}

COMMON = {
    "report": "str",
    "exit_code": "int",
    "error": "null",
    "generated_at": "int",
    "limit": "int",
    "truncated": "bool",
}

DISPUTE = {
    "dispute_id": "str",
    "event_id": "str",
    "mostro_pubkey": "str",
    "initiator_role": "str?",
    "dispute_status": "str",
    "event_timestamp": "int",
    "detected_at": "int",
    "lifecycle_state": "str",
    "assigned_solver": "str?",
    "last_notified_at": "int?",
    "last_state_change": "int?",
}
NOTIFICATION = {
    "id": "int",
    "dispute_id": "str",
    "solver_pubkey": "str",
    "notif_type": "str",
    "envelope": "str",
    "status": "str",
    "attempts": "int",
    "claimed_at": "int?",
    "created_at": "int",
    "sent_at": "int?",
    "error_message": "str?",
    "relays_accepted": "list|str?",
    "body": "str",
}
SESSION = {
    "session_id": "str",
    "dispute_id": "str",
    "state": "str",
    "round_count": "int",
    "prompt_bundle_id": "str",
    "policy_hash": "str",
    "instructions_version": "str?",
    "assigned_solver": "str?",
    "current_classification": "str?",
    "current_confidence": "float?",
    "buyer_shared_pubkey": "str?",
    "seller_shared_pubkey": "str?",
    "buyer_last_seen_inner_ts": "int?",
    "seller_last_seen_inner_ts": "int?",
    "started_at": "int",
    "last_transition_at": "int",
    "round_count_last_evaluated": "int",
    "consecutive_eval_failures": "int",
    "buyer_trade_pubkey": "str?",
    "seller_trade_pubkey": "str?",
    "buyer_chat_conv_pubkey": "str?",
    "buyer_chat_sign_pubkey": "str?",
    "seller_chat_conv_pubkey": "str?",
    "seller_chat_sign_pubkey": "str?",
    "take_transport": "str?",
    "take_revision_created_at": "int?",
}
MESSAGE = {
    "id": "int",
    "session_id": "str",
    "direction": "str",
    "party": "str",
    "shared_pubkey": "str",
    "inner_event_id": "str",
    "inner_event_created_at": "int",
    "outer_event_id": "str?",
    "content": "str",
    "prompt_bundle_id": "str?",
    "policy_hash": "str?",
    "persisted_at": "int",
    "stale": "int",
    "published_at": "int?",
    "publish_attempts": "int",
    "envelope": "str?",
    "kind14_event_id": "str?",
    "legacy_required": "int",
}
EVENT = {
    "id": "int",
    "occurred_at": "int",
    "kind": "str",
    "session_id": "str?",
    "dispute_id": "str?",
    "rationale_id": "str?",
    "prompt_bundle_id": "str?",
    "policy_hash": "str?",
    "payload_json": "str",
    "payload": "dict?",
}
DISPATCH = {
    "dispatch_id": "str",
    "dispute_id": "str",
    "session_id": "str?",
    "handoff_event_id": "int",
    "target_solver": "str",
    "dispatched_at": "int",
    "created_at": "int",
    "status": "str",
    "fallback_broadcast": "int",
    "route": "str?",
    "attempts": "int",
    "finished_at": "int?",
    "duration_s": "int?",
    "latency_s": "int?",
    "slow": "bool",
}
HANDOFF = {
    "handoff_event_id": "int",
    "occurred_at": "int",
    "dispute_id": "str?",
    "session_id": "str?",
    "trigger": "str|int?",
    "state": "str",
    "stuck": "bool",
    "dispatch_id": "str?",
    "route": "str?",
    "target_solver": "str?",
    "attempts": "int?",
    "claimed_at": "int?",
    "finished_at": "int?",
    "latency_s": "int?",
    "slow": "bool",
    "prompt_bundle_id": "str?",
    "policy_hash": "str?",
    "payload_json": "str",
    "payload": "dict?",
}
PROBLEM = {"check": "str", "detail": "str", "ref": "str?"}
LAST_RUN = {
    "exit_code": "int?",
    "started_at": "int?",
    "finished_at": "int",
    "error": "str?",
    "summary": "dict?",
    "summary_at": "int?",
}
ATTENTION = {
    "kind": "str",
    "message": "str",
    "hint": "str",
    "count": "int?",
    "phase": "str?",
    "since": "int?",
}

VIEWS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "dashboard": (
        {
            **COMMON,
            "db_path": "str",
            "schema_version": "int",
            "schema_expected": "int",
            "attention": "list",
            "features": {"mediation": "bool?", "escalation": "bool?"},
            "thresholds": {
                "max_attempts": "int",
                "dispatch_interval_seconds": "int",
                "sending_stale_seconds": "int",
                "renotification_seconds": "int",
                "from_config": "bool",
            },
            "untaken": {"total": "int", "overdue": "int", "oldest_overdue_at": "int?"},
            "disputes": {
                s: "int" for s in ("new", "notified", "taken", "waiting", "escalated", "resolved")
            },
            "disputes_total": "int",
            "notifications": {
                s: "int" for s in ("pending", "sending", "sent", "failed_retrying", "failed_final")
            },
            "sessions": {
                s: "int"
                for s in (
                    "awaiting_response",
                    "classified",
                    "summary_pending",
                    "summary_delivered",
                    "closed",
                    "escalation_recommended",
                    "superseded_by_human",
                )
            },
            "sessions_live": "int",
            "handoffs": {
                s: "int"
                for s in (
                    "pending",
                    "sending",
                    "dispatched",
                    "send_failed",
                    "superseded",
                    "unroutable",
                    "parse_failed",
                )
            },
            "handoffs_oldest_pending_at": "int?",
            "handoffs_overdue": "int",
            "last_runs": {"listen": LAST_RUN, "mediate-once": LAST_RUN, "dispatch-once": LAST_RUN},
            "solver_auth": "dict?",
            "rows": "list",
        },
        {"section": "str", "name": "str", "value": "int?"},
    ),
    "disputes": (
        {**COMMON, "filters": {"state": "str?", "since": "int?"}, "rows": "list"},
        DISPUTE,
    ),
    "dispute": (
        {
            **COMMON,
            "dispute": DISPUTE,
            "counts": {
                s: "int"
                for s in (
                    "transition",
                    "session",
                    "event",
                    "message",
                    "summary",
                    "notification",
                    "dispatch",
                )
            },
            "rows": "list",
        },
        {
            "at": "int",
            "source": "str",
            "kind": "str",
            "ref": "int|str",
            "text": "str",
            "data": "dict",
        },
    ),
    "notifications": (
        {
            **COMMON,
            "filters": {"status": "str?", "type": "str?", "dispute_id": "str?", "since": "int?"},
            "max_attempts": "int",
            "rows": "list",
        },
        {**NOTIFICATION, "outcome": "str"},
    ),
    "sessions": (
        {**COMMON, "filters": {"state": "str?", "since": "int?"}, "rows": "list"},
        SESSION,
    ),
    "transcript": ({**COMMON, "session": SESSION, "rows": "list"}, MESSAGE),
    "events": (
        {
            **COMMON,
            "filters": {"kind": "str?", "session_id": "str?", "dispute_id": "str?"},
            "rows": "list",
        },
        EVENT,
    ),
    "handoffs": (
        {
            **COMMON,
            "filters": {"state": "str?", "stuck": "bool"},
            "dispatch_interval_seconds": "int",
            "rows": "list",
        },
        HANDOFF,
    ),
    "dispatches": (
        {
            **COMMON,
            "filters": {"status": "str?", "dispute_id": "str?", "since": "int?"},
            "rows": "list",
        },
        DISPATCH,
    ),
    "dispatch": ({**COMMON, "dispatch": DISPATCH, "rows": "list"}, NOTIFICATION),
    "dispatch-check": (
        {
            **COMMON,
            "p95_latency_s": "int?",
            "p95_sample": "int",
            "p95_limit_s": "int",
            "sending_stale_seconds": "int",
            "ok": "bool",
            "problems": "list",
            "rows": "list",
        },
        PROBLEM,
    ),
    "authority": (
        {
            **COMMON,
            "counts": {
                "outbound_message": "int",
                "notification_body": "int",
                "notification_type": "int",
            },
            "phrases": "list",
            "ok": "bool",
            "problems": "list",
            "rows": "list",
        },
        {
            "source": "str",
            "id": "int",
            "dispute_id": "str?",
            "phrases": "list",
            "snippet": "str",
            "session_id": "str?",
            "party": "str?",
            "notif_type": "str?",
            "solver_pubkey": "str?",
        },
    ),
    "rationale": (
        {**COMMON, "warning": "str", "rows": "list"},
        {
            "rationale_id": "str",
            "session_id": "str?",
            "dispute_id": "str?",
            "provider": "str",
            "model": "str",
            "prompt_bundle_id": "str",
            "policy_hash": "str",
            "generated_at": "int",
            "rationale_text": "str",
        },
    ),
}


def mismatches(value: Any, spec: Any, where: str = "$") -> list[str]:
    """Every place where `value` does not follow `spec` (empty when it does)."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        problems = []
        if list(value) != list(spec):
            problems.append(f"{where}: keys {list(value)} != {list(spec)}")
        for key in spec:
            if key in value:
                problems += mismatches(value[key], spec[key], f"{where}.{key}")
        return problems
    optional = spec.endswith("?")
    names = spec.rstrip("?").split("|")
    if value is None and optional:
        return []
    allowed = tuple(
        t for n in names for t in (TYPES[n] if isinstance(TYPES[n], tuple) else (TYPES[n],))
    )
    if isinstance(value, bool) and bool not in allowed:
        return [f"{where}: bool where {spec} expected"]
    return (
        []
        if isinstance(value, allowed)
        else [f"{where}: {type(value).__name__} where {spec} expected"]
    )


def check(view: str, doc: dict[str, Any]) -> list[str]:
    """Mismatches of a whole document, each row checked against the view's row shape."""
    top, row = VIEWS[view]
    problems = mismatches(doc, top)
    if doc.get("report") != f"audit.{view}/v1":
        problems.append(f"report is {doc.get('report')!r}")
    for i, item in enumerate(doc.get("rows", [])):
        if row is not None:
            problems += mismatches(item, row, f"$.rows[{i}]")
    for i, item in enumerate(doc.get("attention", []) if view == "dashboard" else []):
        problems += mismatches(item, ATTENTION, f"$.attention[{i}]")
    return problems
