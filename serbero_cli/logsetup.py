"""One place that configures logging (STYLE.md §9): stderr only, key=value lines, quiet for cron."""

from __future__ import annotations

import logging
import os
import sys
import time

from serbero_cli.errors import UsageError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging API
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", self.converter(record.created))


def resolve_level(cli_level: str | None, config_level: str | None) -> str:
    """`--log-level` > `SERBERO_LOG` > `[serbero].log_level` > info.

    Raise UsageError (exit 2) naming the source when `--log-level` or `SERBERO_LOG` holds anything
    but debug, info, warning or error: a typo there must not quietly log at another level.
    """
    for source, candidate in (("--log-level", cli_level), ("SERBERO_LOG", os.environ.get("SERBERO_LOG"))):
        if candidate is None or (source == "SERBERO_LOG" and not candidate.strip()):
            continue
        if candidate.strip().lower() not in LEVELS:
            raise UsageError(f"{source} {candidate!r}: must be one of {', '.join(LEVELS)}")
        return candidate.strip().lower()
    if config_level and config_level.strip().lower() in LEVELS:
        return config_level.strip().lower()
    return "info"


def configure_logging(level: str) -> None:
    """Send every log line to stderr at `level`; a UTC timestamp when stderr is not a TTY."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        fmt = "%(levelname)-7s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(_UtcFormatter(fmt))
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level, logging.INFO))
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
