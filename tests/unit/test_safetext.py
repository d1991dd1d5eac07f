"""The text-safety rules for every sink (hardening: external text is data)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from serbero_cli import safetext

HOSTILE = "a\nb\r\tc\x1b[31mred\x00\x7f\x85\u202eevil\u2066x\u2028y\ud800"


def test_header_value_is_one_line_without_controls():
    value = safetext.header_value(HOSTILE)
    assert "\n" not in value and "\r" not in value and "\t" not in value
    assert (
        "\x1b" not in value
        and "\x00" not in value
        and "\u202e" not in value
        and "\u2028" not in value
    )
    assert value.encode("utf-8")  # no lone surrogate left


def test_body_text_keeps_newlines_only():
    value = safetext.body_text(HOSTILE)
    assert value.count("\n") == 1
    assert not safetext.has_control(value.replace("\n", ""))


def test_for_log_escapes_everything_that_breaks_a_line():
    value = safetext.for_log(HOSTILE)
    assert "\n" not in value and "\x1b" not in value and "\u2028" not in value
    assert "\\n" in value and "\\x1b" in value


def test_csv_cell_neutralises_formulas():
    assert safetext.csv_cell('=HYPERLINK("http://x")').startswith("'=")
    for start in ("+", "-", "@", "\t", "\r"):
        assert safetext.csv_cell(start + "1").startswith("'")
    assert safetext.csv_cell("plain") == "plain"
    assert safetext.csv_cell("two\nlines") == "two\nlines"


@given(st.text())
def test_every_function_is_total(text):
    for fn in (
        safetext.header_value,
        safetext.body_text,
        safetext.for_log,
        safetext.for_terminal,
        safetext.csv_cell,
        safetext.valid_unicode,
    ):
        out = fn(text)
        out.encode("utf-8")
    assert "\n" not in safetext.header_value(text)
    assert "\n" not in safetext.for_log(text)
