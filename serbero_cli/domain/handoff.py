"""The handoff package (`handoff_prepared` payload) parsed strictly (docs/wire-formats.md#handoff-package).

mediate-once writes the package, but the row may have been edited, truncated or written by a
bug; dispatch-once puts three of its fields into DM header lines. So every deviation from the
documented package is a `HandoffParseError`, never another exception: the run records a
`deserialize_failed` audit row and moves on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_DETAIL_CHARS = 500
UNKNOWN_DISPUTE = "unknown"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# The canonical field order; the DM's JSON line keeps it.
FIELD_ORDER = (
    "dispute_id",
    "session_id",
    "trigger",
    "evidence_refs",
    "prompt_bundle_id",
    "policy_hash",
    "rationale_refs",
    "assembled_at",
)
_REQUIRED = tuple(k for k in FIELD_ORDER if k != "session_id")
_HEADER_FIELDS = ("dispute_id", "session_id", "trigger")
# Header fields must stay on one line: C0 controls, DEL and the two Unicode line separators.
_HEADER_FORBIDDEN = re.compile("[\x00-\x1f\x7f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class HandoffParseError(ValueError):
    """The payload is no valid package. `detail` is the audit text (≤ 500 chars); `dispute_hint` the
    dispute id a lenient decode found, else `unknown`."""

    def __init__(self, detail: str, dispute_hint: str = UNKNOWN_DISPUTE):
        self.detail = _clip(detail)
        self.dispute_hint = dispute_hint
        super().__init__(self.detail)


@dataclass(frozen=True)
class HandoffPackage:
    """A valid package; `session_id` None means dispute-scoped. Unknown keys are already dropped."""

    dispute_id: str
    session_id: str | None
    trigger: str
    evidence_refs: tuple[str, ...]
    prompt_bundle_id: str
    policy_hash: str
    rationale_refs: tuple[str, ...]
    assembled_at: int

    def canonical(self) -> dict[str, Any]:
        """The fields in canonical order, `session_id` left out when None (never written as null)."""
        out: dict[str, Any] = {"dispute_id": self.dispute_id}
        if self.session_id is not None:
            out["session_id"] = self.session_id
        out.update(
            trigger=self.trigger,
            evidence_refs=list(self.evidence_refs),
            prompt_bundle_id=self.prompt_bundle_id,
            policy_hash=self.policy_hash,
            rationale_refs=list(self.rationale_refs),
            assembled_at=self.assembled_at,
        )
        return out

    def to_json(self) -> str:
        """The handoff DM's last line: canonical order, compact, raw non-ASCII."""
        return json.dumps(self.canonical(), separators=(",", ":"), ensure_ascii=False)


def parse_handoff(payload: object) -> HandoffPackage:
    """Parse a `payload_json` value as read from SQLite (str, or bytes for a BLOB, or a number).

    Return the HandoffPackage; raise HandoffParseError (and nothing else) for any violation.
    """
    try:
        return _parse(payload)
    except HandoffParseError as exc:
        raise HandoffParseError(exc.detail, dispute_id_hint(payload)) from None


def dispute_id_hint(payload: object) -> str:
    """The audit row's dispute: `dispute_id` from a lenient decode if it is a storable string, else `unknown`."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        if not isinstance(text, str):
            return UNKNOWN_DISPUTE
        value = json.loads(text)
        hint = value.get("dispute_id") if isinstance(value, dict) else None
        if isinstance(hint, str) and not _SURROGATE.search(hint):
            return hint
    except Exception:  # noqa: BLE001 - lenient: any failure only means "no hint"
        pass
    return UNKNOWN_DISPUTE


def _parse(payload: object) -> HandoffPackage:
    if isinstance(payload, bytes | bytearray | memoryview):
        raise HandoffParseError("payload_json is a BLOB, not TEXT")
    if isinstance(payload, bool) or not isinstance(payload, str):
        raise HandoffParseError(f"payload_json is {_kind(payload)}, not TEXT")
    # Invalid UTF-8 read from SQLite arrives as surrogate escapes; count the original bytes.
    # surrogatepass: a lone surrogate outside the escape range (e.g. "\ud800") must be measured,
    # not raise here; it is rejected below as a lone surrogate.
    if (
        len(payload) > MAX_PAYLOAD_BYTES
        or len(payload.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES
    ):
        raise HandoffParseError(f"payload_json exceeds {MAX_PAYLOAD_BYTES} bytes")
    try:
        value = json.loads(payload, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except HandoffParseError:
        raise
    except RecursionError:
        raise HandoffParseError("invalid JSON: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a parse failure
        raise HandoffParseError(f"invalid JSON: {_describe(exc)}") from None
    if not isinstance(value, dict):
        raise HandoffParseError(f"payload is {_kind(value)}, not a JSON object")
    if _contains_surrogate(value):
        raise HandoffParseError("a string contains a lone surrogate")
    missing = [k for k in _REQUIRED if k not in value]
    if missing:
        raise HandoffParseError("missing required key(s): " + ", ".join(missing))
    for key in ("dispute_id", "trigger", "prompt_bundle_id", "policy_hash"):
        _expect_str(value, key)
    session_id = value.get("session_id")
    if session_id is not None:
        _expect_str(value, "session_id")
    for key in _HEADER_FIELDS:
        if isinstance(value.get(key), str) and _HEADER_FORBIDDEN.search(value[key]):
            raise HandoffParseError(f"{key}: contains a control or line-separator character")
    refs = {key: _expect_str_list(value, key) for key in ("evidence_refs", "rationale_refs")}
    assembled_at = value["assembled_at"]
    if isinstance(assembled_at, bool) or not isinstance(assembled_at, int):
        raise HandoffParseError(f"assembled_at: expected an integer, got {_kind(assembled_at)}")
    if not INT64_MIN <= assembled_at <= INT64_MAX:
        raise HandoffParseError("assembled_at: outside the signed 64-bit range")
    return HandoffPackage(
        value["dispute_id"],
        session_id,
        value["trigger"],
        refs["evidence_refs"],
        value["prompt_bundle_id"],
        value["policy_hash"],
        refs["rationale_refs"],
        assembled_at,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise HandoffParseError(f"duplicate key {_show(key)}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise HandoffParseError(f"invalid JSON: {name} is not allowed")


def _expect_str(value: dict[str, Any], key: str) -> None:
    if not isinstance(value[key], str):
        raise HandoffParseError(f"{key}: expected a string, got {_kind(value[key])}")


def _expect_str_list(value: dict[str, Any], key: str) -> tuple[str, ...]:
    items = value[key]
    if not isinstance(items, list):
        raise HandoffParseError(f"{key}: expected an array of strings, got {_kind(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise HandoffParseError(f"{key}[{index}]: expected a string, got {_kind(item)}")
    return tuple(items)


def _contains_surrogate(value: Any) -> bool:
    """Walk the decoded document without recursion (depth is bounded only by the decoder)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "an object",
        bytes: "a BLOB",
    }.get(type(value), type(value).__name__)


def _show(text: str) -> str:
    return repr(text[:60])


def _describe(exc: Exception) -> str:
    return str(exc) or exc.__class__.__name__


def _clip(text: str) -> str:
    # The detail is stored and logged: no lone surrogates (SQLite cannot store them), ≤ 500 chars.
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe[:MAX_DETAIL_CHARS]
