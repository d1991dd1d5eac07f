"""Stopping cleanly on SIGTERM/SIGINT (what systemd sends on stop, and Ctrl-C).

Once a run has opened the database, a signal only sets a flag: the run claims nothing new, gives
sends in flight a short grace, records their outcomes and exits 0 with a warning. Whatever was
still on the way stays `sending` with its signed event and the next run republishes it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequested:
    """A flag a signal handler sets; long loops check it before starting new work."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def set(self, signum: int = signal.SIGTERM) -> None:
        self.signal = signum

    def is_set(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


@contextlib.contextmanager
def stop_on_signals(stop: StopRequested) -> Iterator[StopRequested]:
    """Route SIGTERM and SIGINT to `stop` for the duration of the block (main thread only)."""
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        stop.set(signum)

    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (tests calling run_* from a worker): no handlers
        previous.clear()
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
