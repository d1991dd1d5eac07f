"""README.md: the two first commands, the config table from KEYS, and examples that match the real CLI."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main

from serbero_cli.cli.app import app
from serbero_cli.errors import ExitCode
from serbero_cli.reference import README_END, README_START, markdown_table
from tests.helpers import ROOT
from tests.ops.conftest import parse_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"```(?:sh)?\n(.*?)```", re.S)


def code_blocks() -> list[str]:
    return FENCE.findall(README)


def example_commands() -> list[list[str]]:
    """Every `serbero …` line of the README's shell blocks, joined across `\\` continuations."""
    commands = []
    for block in code_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s[|>]|\s+#", line)[0].strip()
            if line.startswith("#"):
                continue
            words = shlex.split(line) if line else []
            # `VAR=value serbero …`, `sudo -u serbero /opt/serbero/.venv/bin/serbero …`
            for i, word in enumerate(words):
                env_prefix = all(re.match(r"^[A-Z_]+=", w) for w in words[:i])
                if (word == "serbero" and env_prefix) or word.endswith("/bin/serbero"):
                    commands.append(words[i + 1:])
                    break
    return commands


def test_first_section_is_exactly_the_two_newcomer_commands():
    first = code_blocks()[0]
    assert first.split() == ["./scripts/demo", "./scripts/test"]
    assert README.index("./scripts/demo") < README.index("## What Serbero does")


def test_config_table_matches_the_loader_keys():
    start = README.index(README_START) + len(README_START)
    assert README[start:README.index(README_END)] == "\n" + markdown_table(), "run scripts/gen-readme-config"


def test_every_subcommand_is_described_with_an_example():
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="serbero")
    examples = {argv[0] for argv in example_commands() if argv}
    for name in root.list_commands(ctx):
        assert f"`serbero {name}`" in README or f"serbero {name}" in README, name
        assert name in examples, f"no example of serbero {name} in README.md"


def test_exit_code_table_lists_every_code():
    table = README[README.index("## Exit codes"):README.index("## Troubleshooting")]
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", table, re.M), code


@pytest.mark.parametrize("argv", example_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_readme_examples_use_real_commands_and_options(argv):
    parse_cli(argv)


def test_readme_names_the_registration_string_and_why_read():
    assert "npub1…:read" in README
    assert "only a dispute held by a read solver can be\n   taken over by a human write solver" in README
