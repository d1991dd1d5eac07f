"""The log formatter: one line per record whatever the values hold, journald priorities, and the
parser that turns nostr_sdk's own log lines into Python log records."""

from __future__ import annotations

import logging
import sys

import pytest

from serbero_cli.logsetup import make_formatter, syslog_priority, to_journal
from serbero_cli.nostr.debuglog import parse_sdk_line


def record(level: int, msg: str, *args: object, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("serbero_cli.test", level, __file__, 1, msg, args, exc_info)


@pytest.mark.parametrize(
    "level, priority",
    [
        pytest.param(logging.CRITICAL, 2, id="critical"),
        pytest.param(logging.ERROR, 3, id="error"),
        pytest.param(logging.WARNING, 4, id="warning"),
        pytest.param(logging.INFO, 6, id="info"),
        pytest.param(logging.DEBUG, 7, id="debug"),
    ],
)
def test_syslog_priority_of_each_level(level, priority):
    assert syslog_priority(level) == priority


def test_journal_lines_start_with_the_priority_and_carry_no_timestamp():
    line = make_formatter(journal=True, tty=False).format(
        record(logging.WARNING, "relay=%s unreachable", "x")
    )
    assert line == "<4>serbero_cli.test: relay=x unreachable"


def test_file_lines_start_with_a_utc_timestamp():
    line = make_formatter(journal=False, tty=False).format(record(logging.INFO, "hello"))
    assert (
        line.endswith(" INFO serbero_cli.test: hello")
        and line[:20].endswith("Z")
        and line[10] == "T"
    )


@pytest.mark.parametrize("journal, tty", [(True, False), (False, True), (False, False)])
def test_values_with_controls_never_split_or_colour_a_record(journal, tty):
    hostile = "reason\nFAKE 2024-01-01T00:00:00Z ERROR forged\r\x1b[31mred\u202eevil\u2028"
    line = make_formatter(journal=journal, tty=tty).format(
        record(logging.WARNING, "relay said: %s", hostile)
    )
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u202e" not in line
    assert "reason\\nFAKE" in line and "\\x1b[31mred" in line and "\\u202eevil" in line


def test_a_traceback_is_folded_into_the_same_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        exc_info = sys.exc_info()
    line = make_formatter(journal=True, tty=False).format(
        record(logging.ERROR, "failed", exc_info=exc_info)
    )
    assert "\n" not in line and line.startswith("<3>serbero_cli.test: failed\\nTraceback")
    assert "ValueError: bad\\nvalue" in line


def test_journal_stream_counts_when_set_even_empty():
    assert to_journal({"JOURNAL_STREAM": ""}) and not to_journal({})


@pytest.mark.parametrize(
    "line, expected",
    [
        pytest.param(
            "2026-01-02T03:04:05.123456Z DEBUG nostr_sdk::relay::inner: Connecting to 'ws://x'",
            (logging.DEBUG, "nostr_sdk.relay.inner", "Connecting to 'ws://x'"),
            id="debug",
        ),
        pytest.param(
            "2026-01-02T03:04:05.123456Z  WARN nostr_sdk::relay::inner: Timeout reached",
            (logging.WARNING, "nostr_sdk.relay.inner", "Timeout reached"),
            id="warn",
        ),
        pytest.param(
            "2026-01-02T03:04:05.123456Z  INFO nostr_sdk_ffi::logger: Desktop logger initialized",
            (logging.INFO, "nostr_sdk_ffi.logger", "Desktop logger initialized"),
            id="info",
        ),
        pytest.param(
            "a continuation line",
            (logging.DEBUG, "nostr_sdk", "a continuation line"),
            id="unparsed",
        ),
    ],
)
def test_sdk_lines_become_records_at_their_own_level(line, expected):
    assert parse_sdk_line(line) == expected
