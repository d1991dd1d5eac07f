"""nostr_sdk's own logger (stdout, ANSI): only behind --log-level debug (DESIGN.md)."""

from __future__ import annotations

import nostr_sdk as ns

_done = False


def init_sdk_logger() -> None:
    global _done
    if not _done:
        ns.init_logger(ns.LogLevel.DEBUG)
        _done = True
