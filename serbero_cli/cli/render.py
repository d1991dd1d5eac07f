"""Small rendering helpers shared by the command modules (rich only when called)."""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich progress bar shown only on a TTY and when more than 50 items are being sent."""

    def __init__(self, description: str, enabled: bool):
        self.description = description
        self.enabled = enabled
        self._progress = None
        self._task = None

    def start(self, total: int) -> None:
        if not self.enabled or total <= 50:
            return
        from rich.progress import Progress

        self._progress = Progress(transient=True)
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def kv_table(title: str, rows: list[tuple[str, Any]]):
    """A two-column key/value table; values are data, never markup."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(plain(key), plain(value))
    return table


def plain(value: Any):
    """`value` as a rich Text that is never parsed as markup, controls shown as U+FFFD."""
    from rich.text import Text

    from serbero_cli.safetext import for_terminal

    return Text(for_terminal("" if value is None else value))
