"""README.md: the two first commands, the config table from KEYS, and examples that match the real CLI."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main

from devtools.reference import README_END, README_START, markdown_table
from serbero_cli.cli.app import app
from serbero_cli.errors import ExitCode
from tests.helpers import ROOT
from tests.ops.conftest import parse_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL_END = ("|", ">", ">>", "2>&1", ";", "&&", "||")


def code_blocks(languages: tuple[str, ...] = ("", "sh")) -> list[str]:
    """The README's fenced blocks in `languages` (default: shell and unmarked)."""
    return [body for lang, body in FENCE.findall(README) if lang in languages]


def example_commands() -> list[list[str]]:
    """Every `serbero …` command of the README's shell blocks, joined across `\\` continuations
    and cut at the first pipe, redirection or comment; `$(…)` counts as one word."""
    commands = []
    for block in code_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\$\([^)]*\)", "SUBST", line)
            words = shlex.split(line, comments=True)
            ends = [i for i, w in enumerate(words) if w in SHELL_END or w.startswith((">", "2>"))]
            words = words[: ends[0]] if ends else words
            # `VAR=value serbero …`, `sudo -u serbero /opt/serbero/.venv/bin/serbero …`
            for i, word in enumerate(words):
                env_prefix = all(re.match(r"^[A-Z_]+=", w) for w in words[:i])
                if (word == "serbero" and env_prefix) or word.endswith("/bin/serbero"):
                    commands.append(words[i + 1 :])
                    break
    return commands


def test_first_section_is_exactly_the_two_newcomer_commands():
    first = code_blocks()[0]
    assert first.split() == ["./scripts/demo", "./scripts/test"]
    assert README.index("./scripts/demo") < README.index("## What Serbero does")


def test_config_table_matches_the_loader_keys():
    start = README.index(README_START) + len(README_START)
    assert README[start : README.index(README_END)] == "\n" + markdown_table(), (
        "run scripts/gen-readme-config"
    )


def test_every_subcommand_is_described_with_an_example():
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="serbero")
    examples = {argv[0] for argv in example_commands() if argv}
    for name in root.list_commands(ctx):
        assert f"`serbero {name}`" in README or f"serbero {name}" in README, name
        assert name in examples, f"no example of serbero {name} in README.md"


def test_exit_code_table_lists_every_code():
    table = README[README.index("## Exit codes") : README.index("## Troubleshooting")]
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", table, re.M), code


@pytest.mark.parametrize("argv", example_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_readme_examples_use_real_commands_and_options(argv):
    parse_cli(argv)


def test_readme_names_the_registration_string_and_why_read():
    assert "npub1…:read" in README
    section = " ".join(
        README[README.index("## Registering Serbero") : README.index("## Configuration")].split()
    )
    assert (
        "only a dispute held by a read solver can be taken over by a human write solver" in section
    )
    assert 'serbero_pubkey = "npub1…"' in section and "mostrod 0.19.2 or newer" in section
    assert "admin-add-solver" in section and "cannot be changed by registering it again" in section


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    return " ".join(README[start : end if end != -1 else None].split())


def test_install_copies_no_venv_and_creates_the_log_folder():
    install = section("## Install for production")
    assert (
        "git clone" in install and "rsync -a --exclude .venv" in install and "cp -r" not in install
    )
    assert "install -d -o serbero -g serbero -m 0750 /var/log/serbero" in install
    assert "MANPATH" in install and ".venv/share/man" in install


def test_secrets_document_every_source_in_order():
    install = section("## Install for production")
    order = [
        install.index(word)
        for word in (
            "SERBERO_PRIVATE_KEY`,",
            "_FILE",
            "CREDENTIALS_DIRECTORY",
            "the config file, for the private key only",
        )
    ]
    assert order == sorted(order)
    assert "serbero-private-key" in install and "serbero-reasoning-api-key" in install


@pytest.mark.parametrize(
    "title, phrases",
    [
        pytest.param(
            "### Backups", ("serbero backup", "0600", "quick_check", "--force"), id="backups"
        ),
        pytest.param(
            "### Pruning", ("--resolved-before", "--dry-run", "7d", "500", "75"), id="pruning"
        ),
        pytest.param(
            "### Upgrading", ("first write", "backup", "pip install /opt/serbero"), id="upgrading"
        ),
        pytest.param(
            "### Rotating Serbero's key",
            ("derived from Serbero's own key", "times out", "escalates"),
            id="key-rotation",
        ),
        pytest.param(
            "## Output and logs",
            ("--quiet", "key=value", "JOURNAL_STREAM", "<3>", "<7>"),
            id="output",
        ),
    ],
)
def test_upkeep_and_output_sections_cover_what_operators_need(title, phrases):
    text = section(title)
    assert all(phrase in text for phrase in phrases), [p for p in phrases if p not in text]


def test_developer_material_lives_in_docs():
    assert "## Speed" not in README and "## Decisions" not in README
    for name in ("benchmarks.md", "decisions.md"):
        assert f"docs/{name}" in README and (ROOT / "docs" / name).is_file()
