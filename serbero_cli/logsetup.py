"""One place that configures logging: stderr only, key=value lines, quiet for cron.

Three shapes of line, picked from where stderr goes:

* a terminal: `LEVEL   logger: message`, for a person watching;
* journald (systemd sets `JOURNAL_STREAM` for a service whose stderr it reads): `<N>logger: message`,
  where `<N>` is the syslog priority journald turns into the entry's level, and no timestamp
  because the journal stamps every entry itself;
* anything else (a cron log file, a pipe): `2024-05-01T12:00:00Z LEVEL logger: message`, in UTC.

Every record is exactly one line whatever its arguments hold: the formatter escapes control
characters, bidi controls and line separators in the formatted message and in exception text,
so no caller (and no relay reason or party text in a log argument) can forge or split a line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from serbero_cli.errors import UsageError
from serbero_cli.safetext import for_log

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# syslog priorities (sd-daemon(3)): journald reads a leading `<N>` as the entry's priority.
_SYSLOG_PRIORITY = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


def syslog_priority(levelno: int) -> int:
    """The syslog priority for a logging level: 3 error, 4 warning, 6 info, 7 debug (2 critical)."""
    for threshold, priority in _SYSLOG_PRIORITY:
        if levelno >= threshold:
            return priority
    return _DEBUG_PRIORITY


class OneLineFormatter(logging.Formatter):
    """A formatter whose every record is one line: message and traceback escaped with `for_log`."""

    def __init__(self, fmt: str, *, journal: bool = False):
        super().__init__(fmt)
        self.journal = journal

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging API
        raw = record.message
        record.message = for_log(raw)
        try:
            line = super().formatMessage(record)
        finally:
            record.message = raw
        return f"<{syslog_priority(record.levelno)}>{line}" if self.journal else line

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging API
        return for_log(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging API
        return for_log(stack_info)

    def format(self, record: logging.LogRecord) -> str:
        # logging.Formatter joins message and traceback with "\n": keep the record on one line.
        text = super().format(record)
        return text.replace("\n", "\\n")


def to_journal(env: dict[str, str] | None = None) -> bool:
    """True when systemd's journal reads stderr: `JOURNAL_STREAM` is set (its value is not checked)."""
    return "JOURNAL_STREAM" in (os.environ if env is None else env)


def make_formatter(*, journal: bool, tty: bool) -> OneLineFormatter:
    """The formatter for stderr: journal prefix, terminal layout, or timestamped lines for files."""
    if journal:
        return OneLineFormatter("%(name)s: %(message)s", journal=True)
    if tty:
        return OneLineFormatter("%(levelname)-7s %(name)s: %(message)s")
    return OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def resolve_level(cli_level: str | None, config_level: str | None) -> str:
    """`--log-level` > `SERBERO_LOG` > `[serbero].log_level` > info.

    Raise UsageError (exit 2) naming the source when `--log-level` or `SERBERO_LOG` holds anything
    but debug, info, warning or error: a typo there must not quietly log at another level.
    """
    for source, candidate in (
        ("--log-level", cli_level),
        ("SERBERO_LOG", os.environ.get("SERBERO_LOG")),
    ):
        if candidate is None or (source == "SERBERO_LOG" and not candidate.strip()):
            continue
        if candidate.strip().lower() not in LEVELS:
            raise UsageError(f"{source} {candidate!r}: must be one of {', '.join(LEVELS)}")
        return candidate.strip().lower()
    if config_level and config_level.strip().lower() in LEVELS:
        return config_level.strip().lower()
    return "info"


def configure_logging(level: str) -> None:
    """Send every log line to stderr at `level`, shaped for the journal, a terminal or a file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(journal=to_journal(), tty=sys.stderr.isatty()))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
