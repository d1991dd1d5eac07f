"""Doctor report rows as data: `Check` per finding, `DoctorReport` with the exit code rule
(docs/operations.md#exit-codes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from serbero_cli.errors import ExitCode

OK, WARN, FAIL = "ok", "warn", "fail"
SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗"}


@dataclass(frozen=True)
class Check:
    """One row of the report. `hint` says what to do, for a failure or a warning."""

    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    hint: str = ""


@dataclass
class DoctorReport:
    """All rows. `config_error` marks failures that are config errors (exit 2)."""

    checks: list[Check] = field(default_factory=list)
    config_error: bool = False

    @property
    def exit_code(self) -> int:
        if self.config_error:
            return int(ExitCode.USAGE)
        if any(c.status == FAIL for c in self.checks):
            return int(ExitCode.PARTIAL)
        return int(ExitCode.OK)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (OK, WARN, FAIL)}

    def to_dict(self) -> dict[str, Any]:
        failed = [c for c in self.checks if c.status == FAIL]
        return {
            "report": "doctor/v1",
            "exit_code": self.exit_code,
            "error": "; ".join(f"{c.name}: {c.detail}" for c in failed) or None,
            "counts": self.counts(),
            "checks": [asdict(c) for c in self.checks],
        }


def ago(seconds: float) -> str:
    """`42s ago`, `5m ago`, `3h ago`, `2d ago`; `in 30s` for the future."""
    s = int(seconds)
    if s < 0:
        return f"in {_span(-s)}"
    return f"{_span(s)} ago"


def _span(s: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
