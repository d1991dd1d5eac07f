"""nostr_sdk's own logger, behind `--log-level debug` only (it writes to stdout, in colour).

nostr_sdk 0.45's `init_logger(level)` takes nothing but a level: it installs a Rust `tracing`
subscriber that writes to file descriptor 1 (stdout), in colour. Stdout is Serbero's result
channel (`--json`, the summary line), and log lines belong on stderr in Serbero's own shape (a
journald priority, a UTC timestamp, one line per record), so:

* the subscriber honours `NO_COLOR`, read once when it is installed: we always set it;
* before installing it, descriptor 1 becomes the write end of a pipe, and `sys.stdout` a private
  duplicate of the real stdout, so results still reach it;
* a daemon thread reads the pipe and passes each line to Python logging, under a logger named
  after its Rust target (`nostr_sdk.relay.inner`) and at the line's own level, so Serbero's
  handler formats it like any other record.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading

import nostr_sdk as ns

# `2024-05-01T12:00:00.123456Z DEBUG nostr_sdk::relay::inner: Connecting to 'ws://…'` (NO_COLOR layout)
_LINE = re.compile(r"^\S+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR)\s+([\w:]+): ?(.*)$")
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
}
_done = False


def init_sdk_logger() -> None:
    """Install nostr_sdk's debug logger once per process, its lines routed into Python logging."""
    global _done
    if _done:
        return
    os.environ["NO_COLOR"] = "1"
    _capture_fd1()
    ns.init_logger(ns.LogLevel.DEBUG)
    _done = True


def parse_sdk_line(line: str) -> tuple[int, str, str]:
    """(logging level, logger name, message) for one line of the library's log output."""
    match = _LINE.match(line)
    if match is None:
        return logging.DEBUG, "nostr_sdk", line
    level, target, message = match.groups()
    return _LEVELS[level], target.replace("::", "."), message


def _capture_fd1() -> None:
    """Point descriptor 1 at a pipe read by a logging thread; rebind `sys.stdout` to the real stdout.

    Skipped when `sys.stdout` is not descriptor 1 (an in-process test runner captured it).
    """
    try:
        if sys.stdout.fileno() != 1:
            return
    except (AttributeError, OSError, ValueError):
        return
    sys.stdout.flush()
    saved = os.dup(1)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 1)
    os.close(write_fd)
    old = sys.stdout
    sys.stdout = os.fdopen(
        saved,
        "w",
        buffering=1 if old.line_buffering else -1,
        encoding=old.encoding,
        errors=old.errors,
    )
    pump = threading.Thread(target=_pump, args=(read_fd,), name="nostr-sdk-log", daemon=True)
    pump.start()
    atexit.register(_drain, pump)


def _pump(read_fd: int) -> None:
    with os.fdopen(read_fd, "rb") as pipe:
        for raw in pipe:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            if text:
                level, name, message = parse_sdk_line(text)
                logging.getLogger(name).log(level, "%s", message)


def _drain(pump: threading.Thread) -> None:
    # Closing the pipe's only write end (descriptor 1) lets the thread read to the end and stop.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    pump.join(timeout=2)
