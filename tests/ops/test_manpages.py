"""Man pages: the committed files equal the generator's output, cover every command, and render cleanly."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import typer.main

from devtools.manpage import COMMAND_NOTES, render_pages, roff
from serbero_cli.cli.app import app
from tests.helpers import ROOT
from tests.ops.conftest import parse_cli

MAN = ROOT / "man"
SECTIONS = (
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "EXIT STATUS",
    "FILES",
    "ENVIRONMENT",
    "EXAMPLES",
)
PAGES = render_pages()


def test_committed_pages_equal_the_generator_output():
    committed = {p.name: p.read_text(encoding="utf-8") for p in MAN.glob("serbero*.1")}
    stale = sorted(set(committed) - set(PAGES))
    missing = sorted(set(PAGES) - set(committed))
    changed = sorted(name for name in set(PAGES) & set(committed) if PAGES[name] != committed[name])
    assert (missing, stale, changed) == ([], [], []), (
        "man pages are out of date: run scripts/gen-man"
    )


def test_every_registered_command_has_a_page():
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="serbero")
    expected = {"serbero.1"} | {f"serbero-{name}.1" for name in root.list_commands(ctx)}
    assert set(PAGES) == expected
    assert {"serbero-init.1", "serbero-keys.1", "serbero-doctor.1", "serbero-listen.1"} <= set(
        PAGES
    )


@pytest.mark.parametrize("name", sorted(PAGES))
def test_each_page_has_every_section_and_a_fixed_iso_date(name):
    text = PAGES[name]
    headers = [line[4:].strip('"') for line in text.splitlines() if line.startswith(".SH ")]
    assert [h for h in SECTIONS if h in headers] == list(SECTIONS)
    th = next(line for line in text.splitlines() if line.startswith(".TH "))
    # A fixed ISO date (mandoc parses it; today's date would make regeneration change every day).
    assert re.search(r'^\.TH "[A-Z-]+" "1" "\d{4}-\d{2}-\d{2}" "serbero ', th)
    assert all(ord(ch) < 128 for ch in text)


def test_subcommand_pages_list_their_real_options():
    assert r"\fB\-\-key\-to\-env\fR" in PAGES["serbero-init.1"]
    assert r"\fB\-\-secret\-from\-env\fR" in PAGES["serbero-keys.1"]
    assert r"\fB\-\-json\fR" in PAGES["serbero-doctor.1"]
    assert "SERBERO_PRIVATE_KEY" in PAGES["serbero-doctor.1"]
    assert r"\fB75\fR" in PAGES["serbero-listen.1"]


@pytest.mark.parametrize(
    "example", [e for notes in COMMAND_NOTES.values() for e in notes["examples"]]
)
def test_man_page_examples_use_real_commands_and_options(example):
    parse_cli(example.split()[1:])


def test_roff_escapes_what_roff_would_misread():
    assert roff(".starts with a dot") == r"\&.starts with a dot"
    assert roff("'quote") == r"\&'quote"
    assert roff("a\\b") == r"a\eb"
    assert roff("--x") == r"\-\-x"
    assert roff("npub1…") == r"npub1\[u2026]"


def test_generation_is_deterministic():
    assert render_pages() == PAGES


@pytest.mark.skipif(
    shutil.which("groff") is None,
    reason="groff is not installed (scripts/test installs groff-base)",
)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_groff_renders_each_page_without_warnings(name, tmp_path):
    page = tmp_path / name
    page.write_text(PAGES[name], encoding="utf-8")
    proc = subprocess.run(
        ["groff", "-ww", "-man", "-Tutf8", "-z", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed")
@pytest.mark.parametrize("name", sorted(PAGES))
def test_mandoc_lint_finds_nothing(name, tmp_path):
    page = tmp_path / name
    page.write_text(PAGES[name], encoding="utf-8")
    proc = subprocess.run(
        ["mandoc", "-T", "lint", "-W", "warning", str(page)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.stdout + proc.stderr == ""
