"""`AuditResult`: what one audit view found, rendered as a table, one JSON document or CSV.

One object feeds all three renderings, so `--json`, `--csv` and the table never disagree
(docs/architecture.md#rules). Results import no rich and never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from serbero_cli.errors import ExitCode

REPORT_PREFIX = "audit"


@dataclass
class AuditResult:
    """The answer of one view.

    `view` names it (`disputes`, `dispute`, …); `now` is the unix time the ages are measured
    from; `document` holds the view-level JSON keys (filters, the dispute header, dashboard
    sections); `rows` are the listed items (full values, stable keys) and `columns` their CSV
    header; `limit` is the row cap asked for (0 = all) and `truncated` says more rows exist;
    `problems` are findings of a check view (`authority`, `dispatches --check`), which exit 4.
    """

    view: str
    now: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    document: dict[str, Any] = field(default_factory=dict)
    limit: int = 0
    truncated: bool = False
    problems: list[dict[str, Any]] = field(default_factory=list)
    is_check: bool = False

    @property
    def exit_code(self) -> int:
        return int(ExitCode.PARTIAL) if self.problems else int(ExitCode.OK)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document: common keys first, then the view's own, then `rows`."""
        doc: dict[str, Any] = {
            "report": f"{REPORT_PREFIX}.{self.view}/v1",
            "exit_code": self.exit_code,
            "error": None,
            "generated_at": self.now,
            "limit": self.limit,
            "truncated": self.truncated,
        }
        doc.update(self.document)
        if self.is_check:
            doc["ok"] = not self.problems
            doc["problems"] = self.problems
        doc["rows"] = self.rows
        return doc


def error_report(view: str, exit_code: int, error: str) -> dict[str, Any]:
    """The JSON document printed when a view ends early (exit 2, 1): `exit_code` and `error` set."""
    return {
        "report": f"{REPORT_PREFIX}.{view}/v1",
        "exit_code": exit_code,
        "error": error,
        "rows": [],
    }


def cut(rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Keep the first `limit` rows (0 = all) of a query that fetched `limit + 1`; say if any were cut."""
    if limit and len(rows) > limit:
        return rows[:limit], True
    return rows, False


def sql_limit(limit: int) -> int:
    """The LIMIT to ask SQLite for: one more row than shown, to know whether more exist; -1 = none."""
    return limit + 1 if limit > 0 else -1
