"""Text that came from outside is data: one set of rules for every place it lands.

External text (party messages, model output, relay reasons, Mostro tag values, config values
echoed back) must never become a header line, a control sequence, terminal markup or a
spreadsheet formula. Each sink has one function here; callers pick the one for where the text
goes. All functions are pure and total: any `str` in, a `str` out, never an exception.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"

# C0 controls, DEL and C1 controls.
_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)))
# Bidi embeddings/overrides (U+202A–U+202E) and isolates (U+2066–U+2069).
_BIDI = "".join(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Line and paragraph separators some readers split on.
_SEPARATORS = "\u2028\u2029\u0085"

_CONTROL_OR_BIDI = re.compile(f"[{re.escape(_CONTROLS + _BIDI)}]")
_CONTROL_BUT_NEWLINE = re.compile(f"[{re.escape(_CONTROLS.replace(chr(10), '') + _BIDI)}]")
_LINE_BREAKS = re.compile("[\r\n\t\u2028\u2029\u0085]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_LOG_UNSAFE = re.compile(f"[{re.escape(_CONTROLS + _BIDI + _SEPARATORS)}]")
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def valid_unicode(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD, so it always encodes as UTF-8."""
    return _SURROGATE.sub(REPLACEMENT, text)


def has_control(text: str) -> bool:
    """True if `text` holds a C0/C1 control, DEL or a bidi control (tag values must not)."""
    return _CONTROL_OR_BIDI.search(text) is not None


def body_text(text: str) -> str:
    """Free text for a DM body or party chat: newlines kept, other controls and bidi → U+FFFD."""
    return _CONTROL_BUT_NEWLINE.sub(REPLACEMENT, valid_unicode(text))


def header_value(text: str) -> str:
    """A value for a one-line header (`Key: value`, a DM subject): line breaks and tabs become one
    space, other controls and bidi become U+FFFD."""
    flat = _LINE_BREAKS.sub(" ", valid_unicode(text))
    return _CONTROL_OR_BIDI.sub(REPLACEMENT, flat).strip()


def for_log(value: object) -> str:
    """A value for a log line: controls, bidi and line separators escaped `repr`-style, so one
    record stays one line and a terminal never sees an escape sequence."""
    text = valid_unicode(str(value))
    return _LOG_UNSAFE.sub(lambda m: ascii(m.group())[1:-1], text)


def for_terminal(value: object) -> str:
    """A value for rich output (pass it as `rich.text.Text`, never as markup): controls → U+FFFD."""
    return _CONTROL_BUT_NEWLINE.sub(REPLACEMENT, valid_unicode(str(value)))


def csv_cell(text: str) -> str:
    """A CSV cell (OWASP): a leading formula character is neutralised with `'`; controls other than
    newline become U+FFFD, so a multi-line text stays one quoted cell."""
    safe = text
    if safe.startswith(CSV_FORMULA_START):
        safe = "'" + safe
    return _CONTROL_BUT_NEWLINE.sub(REPLACEMENT, valid_unicode(safe))


def short(value: object, n: int = 8) -> str:
    """The first `n` characters of an id or key, for logs and tables ("-" for none); anything odd in
    it (a hint read from a broken payload) is escaped as for a log line."""
    if value is None or value == "":
        return "-"
    return for_log(str(value)[:n])
