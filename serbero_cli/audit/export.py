"""`--json` and `--csv` renderings of an `AuditResult` for scripts.

JSON is one document with stable keys and full values (docs/wire-formats.md#json-reports). CSV has one header
line (the view's columns, present even when there are no rows) and one line per row; a nested
value (a list of relays, a payload) is written as compact JSON in its cell. Every text cell goes
through `safetext.csv_cell()`: a spreadsheet never runs a cell that starts like a formula, and
control characters other than newline are shown as U+FFFD. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from serbero_cli.audit.result import AuditResult
from serbero_cli.safetext import csv_cell


def to_json(result: AuditResult) -> str:
    """The result as one JSON document (no trailing newline)."""
    return json.dumps(result.to_dict(), ensure_ascii=False)


def to_csv(result: AuditResult) -> str:
    """The result's rows as CSV text with a header line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([cell(row.get(column)) for column in result.columns])
    return out.getvalue()


def cell(value: Any) -> str:
    """One CSV cell: empty for None, JSON for lists and dicts, `true`/`false` for booleans, numbers
    as written, any other text made safe for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        return csv_cell(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    return csv_cell(str(value))
