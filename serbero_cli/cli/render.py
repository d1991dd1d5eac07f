"""Small rendering helpers shared by the command modules (rich only when called)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
    from rich.table import Table
    from rich.text import Text


class ProgressBar:
    """A rich progress bar shown only on a TTY and when more than 50 items are being sent."""

    def __init__(self, description: str, enabled: bool):
        self.description = description
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        if not self.enabled or total <= 50:
            return
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def kv_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    """A two-column key/value table; values are data, never markup."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(plain(key), plain(value))
    return table


def plain(value: Any) -> Text:
    """`value` as a rich Text that is never parsed as markup, controls shown as U+FFFD."""
    from rich.text import Text

    from serbero_cli.safetext import for_terminal

    return Text(for_terminal("" if value is None else value))


def summary_line(phase: str, fields: Mapping[str, Any]) -> str:
    """`phase: key=value …`: what a phase prints when stdout is not a terminal (cron, journald, a pipe)."""
    return f"{phase}: " + " ".join(f"{key}={_value(value)}" for key, value in fields.items())


def _value(value: Any) -> str:
    # A value with a space, quote or `=` is quoted so the line still splits into key=value pairs.
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if text and not any(ch.isspace() or ch in "\"'=" for ch in text):
        return text
    import json

    return json.dumps(text, ensure_ascii=True)


def show_result(
    *, exit_code: int, quiet: bool, table: Callable[[], None], line: Callable[[], str | None]
) -> None:
    """Print a phase's result the way its reader needs it (not for --json, which prints its document).

    A terminal gets the tables. Anything else gets the one summary line from `line()` (None: print
    nothing, as for a disabled phase). `quiet` prints nothing when the run succeeded, and the summary
    line when it did not, so cron mails only runs that need a look.
    """
    if quiet and exit_code == 0:
        return
    if sys.stdout.isatty() and not quiet:
        table()
        return
    text = line()
    if text is not None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
