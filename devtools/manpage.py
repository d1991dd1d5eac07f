"""Man pages generated from the Typer app (docs/operations.md#man-pages): `serbero.1` and one page per subcommand.

The command tree is walked as click sees it (`typer.main.get_command`), so every registered
command gets a page with its real help and options, and a command added later only needs
`scripts/gen-man`. Output is deterministic (a fixed date, sorted commands) so a test can compare
the committed pages byte for byte. Non-ASCII characters become `\\[uXXXX]` escapes, which groff and
mandoc both render, and every `-` is `\\-` so options copy and paste as ASCII.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serbero_cli import __version__
from serbero_cli.errors import PRECEDENCE_TEXT, ExitCode

SECTION = "1"
MANUAL = "Serbero manual"
# The .TH date (ISO, which mandoc parses): the day this version's pages were written. It is fixed,
# not today's date, so the output does not change from one day to the next; bump it with __version__.
DATE = "2026-12-02"

EXIT_CODES = tuple((str(int(code)), code.meaning) for code in ExitCode)
EXIT_PRECEDENCE = PRECEDENCE_TEXT

FILES = (
    (
        "./config.toml",
        "The configuration (or --config, or $SERBERO_CONFIG). Keep it mode 0600 when it holds "
        "private_key; serbero init creates it that way.",
    ),
    (
        "serbero.db",
        "The SQLite database every subcommand shares ([serbero] db_path, relative to the config "
        "file's folder), with its -wal and -shm files.",
    ),
    (
        "serbero.db.listen.lock, serbero.db.mediate.lock, serbero.db.dispatch.lock",
        "Run locks beside the database; each holds the PID of the run that owns it. Never delete them.",
    ),
)

ENVIRONMENT = (
    ("SERBERO_CONFIG", "Config file path when --config is not given."),
    (
        "SERBERO_PRIVATE_KEY",
        "Serbero's secret key (hex or nsec1...); overrides [serbero] private_key. "
        "Use it with a systemd EnvironmentFile to keep the key out of the config.",
    ),
    (
        "SERBERO_PRIVATE_KEY_FILE",
        "A file whose content (trimmed) is the secret key, used when "
        "SERBERO_PRIVATE_KEY is unset. Each secret variable has such a _FILE twin, "
        "the API key's too (SERBERO_REASONING_API_KEY_FILE by default).",
    ),
    (
        "CREDENTIALS_DIRECTORY",
        "Set by systemd for units with LoadCredential=: the credentials "
        "serbero-private-key and serbero-reasoning-api-key there come after the variable "
        "and its _FILE twin, and before the config file.",
    ),
    ("SERBERO_DB_PATH", "Overrides [serbero] db_path (relative to the config file's folder)."),
    (
        "SERBERO_LOG",
        "Log level (debug, info, warning, error); --log-level beats it, it beats the config.",
    ),
    (
        "SERBERO_REASONING_API_KEY",
        "The reasoning provider's API key; the variable's name is set by "
        "[reasoning] api_key_env, and the key is never read from the file.",
    ),
    ("NO_COLOR", "Disables colour in tables."),
    (
        "JOURNAL_STREAM",
        "Set by systemd when the journal reads stderr: every log line then starts with its "
        "syslog priority (<3> error, <4> warning, <6> info, <7> debug) and carries no timestamp.",
    ),
)

# Per command: extra exit status notes and examples. Commands without an entry get generic text.
COMMAND_NOTES: dict[str, dict[str, Any]] = {
    "listen": {
        "exit": "4 when some notification could not be delivered (it stays in the outbox and is retried).",
        "examples": [
            "serbero listen",
            "serbero listen --follow",
            "serbero listen --dry-run --json",
        ],
    },
    "mediate-once": {
        "exit": "2 also when a prompt file cannot be read; 4 when some mediation work failed.",
        "examples": ["serbero mediate-once", "serbero mediate-once --dry-run"],
    },
    "dispatch-once": {
        "exit": "4 when some handoff could not be delivered; 75 when another dispatch-once holds the lock.",
        "examples": ["serbero dispatch-once", "serbero dispatch-once --dry-run"],
    },
    "audit": {
        "exit": "4 from the check views (audit authority, audit dispatches --check) when they find a problem.",
        "examples": [
            "serbero audit",
            "serbero audit disputes --since 2h",
            "serbero audit authority",
            "serbero audit dispute 4f2a --utc",
            "serbero audit metrics --output /var/lib/node_exporter/textfile/serbero.prom",
        ],
    },
    "status": {
        "exit": "0 when nothing needs attention, 4 when something does (the line says what), 2 when the "
        "database cannot be read.",
        "examples": ["serbero status", "serbero --config /etc/serbero/config.toml status --json"],
    },
    "init": {
        "exit": "2 when the file exists (without --force), an option is invalid, or the path cannot be written.",
        "examples": [
            "serbero init",
            "serbero init --path /etc/serbero/config.toml --key-to-env",
            "serbero init --mostro-pubkey npub1... --relay wss://relay.mostro.network --solver npub1...:write",
        ],
    },
    "keys": {
        "exit": "2 for input that is not a key, or a config without a valid private key.",
        "examples": [
            "serbero keys generate",
            "serbero keys show",
            "serbero keys convert npub1...",
            "serbero keys convert --as public 0123...cdef",
        ],
    },
    "doctor": {
        "exit": "0 when no check failed, 2 when the config has errors (all listed), 4 when another check failed.",
        "examples": ["serbero doctor", "serbero --config /etc/serbero/config.toml doctor --json"],
    },
    "demo": {
        "exit": "4 unless every expected message was really received.",
        "examples": ["serbero demo", "serbero demo --scenario escalation"],
    },
    "backup": {
        "exit": "2 when PATH exists (without --force), its folder is missing, or there is no database; "
        "4 when the copy fails PRAGMA quick_check (the copy is kept).",
        "examples": [
            "serbero backup /var/backups/serbero/serbero-2024-05-01.db",
            "serbero backup --force /var/backups/serbero/latest.db",
        ],
    },
    "prune": {
        "exit": "2 for a duration under 7 days or no database; 75 when mediate-once or dispatch-once keeps "
        "its lock longer than --wait.",
        "examples": [
            "serbero prune --resolved-before 180d --dry-run",
            "serbero prune --resolved-before 180d --json",
        ],
    },
}


def render_pages(app: Any = None) -> dict[str, str]:
    """Every page as {file name: roff text}, from `app` (default: the real Serbero app)."""
    import typer.main

    if app is None:
        from serbero_cli.cli.app import app
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="serbero")
    commands = [(name, root.get_command(ctx, name)) for name in sorted(root.list_commands(ctx))]
    commands = [(name, cmd) for name, cmd in commands if cmd is not None and not cmd.hidden]
    pages = {"serbero.1": _main_page(root, ctx, commands)}
    for name, cmd in commands:
        pages[f"serbero-{name}.1"] = _command_page(name, cmd, ctx, [n for n, _ in commands])
    return pages


def write_pages(folder: Path, app: Any = None) -> list[Path]:
    """Write every page into `folder` and delete stale `serbero*.1` pages. Return the written paths."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = render_pages(app)
    for stale in folder.glob("serbero*.1"):
        if stale.name not in pages:
            stale.unlink()
    written = []
    for name, text in pages.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def roff(text: str) -> str:
    """Escape running text for roff: backslash, minus, non-ASCII, and a leading control character."""
    out = []
    for ch in text.replace("\\", "\\e"):
        if ch == "-":
            out.append("\\-")
        elif ord(ch) > 126:
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    escaped = "".join(out)
    return "\n".join(
        "\\&" + line if line[:1] in (".", "'") else line for line in escaped.split("\n")
    )


def paragraphs(help_text: str | None) -> list[str]:
    """Help text split into paragraphs (blank lines), each joined into one line."""
    blocks, current = [], []
    for line in (help_text or "").splitlines():
        if line.strip():
            current.append(line.strip())
        elif current:
            blocks.append(" ".join(current))
            current = []
    if current:
        blocks.append(" ".join(current))
    return [b.replace("\b", "").strip() for b in blocks if b.replace("\b", "").strip()]


def _main_page(root: Any, ctx: Any, commands: list[tuple[str, Any]]) -> str:
    from devtools.reference import reference_rows

    out = _header(
        "serbero", "dispute coordinator for the Mostro peer-to-peer Bitcoin exchange, over Nostr"
    )
    out += [
        ".SH SYNOPSIS",
        r"\fBserbero\fR [\fIGLOBAL OPTIONS\fR] \fICOMMAND\fR [\fIARGS\fR]",
        ".SH DESCRIPTION",
    ]
    out += _text_blocks(paragraphs(root.help))
    out += [
        ".PP",
        roff(
            "Each phase is a one-shot subcommand that shares one SQLite file, so cron or a systemd "
            "timer sets the pace. Every subcommand has its own page:"
        ),
    ]
    for name, cmd in commands:
        out += [
            ".TP",
            rf"\fB{roff(name)}\fR",
            roff(_summary(cmd.help)) + rf" See \fBserbero\-{roff(name)}\fR(1).",
        ]
    out += [
        ".SH OPTIONS",
        roff("Global options go before the subcommand and apply to all of them."),
    ]
    out += _options(root, ctx)
    out += [
        ".SH CONFIGURATION",
        roff(
            "The config file is TOML. Unknown keys are errors that name their line. "
            "Every key, with its default:"
        ),
    ]
    section = None
    for row in reference_rows():
        if row.section != section:
            section = row.section
            out += [f".SS {roff(section)}"]
        env = f" Environment: {row.env}." if row.env else ""
        out += [
            ".TP",
            rf"\fB{roff(row.key)}\fR ({roff(row.type)}; default {roff(row.default)})",
            roff(row.help + env),
        ]
    out += _common_sections(None)
    out += _examples(["serbero init", "serbero doctor", "serbero listen", "serbero audit"])
    out += _see_also([f"serbero-{name}" for name, _ in commands])
    return _finish(out)


def _command_page(name: str, cmd: Any, root_ctx: Any, all_commands: list[str]) -> str:
    ctx = cmd.context_class(cmd, info_name=name, parent=root_ctx)
    out = _header(f"serbero-{name}", _summary(cmd.help))
    out += [".SH SYNOPSIS"]
    subcommands = _subcommands(cmd, ctx)
    shared: set[tuple[str, ...]] = set()
    if subcommands:
        # A group's own options (audit --json, --limit, ...) go before its subcommand.
        group_options = _options(cmd, ctx)
        if group_options or getattr(cmd, "invoke_without_command", False):
            out += [".PP", _synopsis(name, cmd, ctx)]
        shared = {tuple(p.opts) for p in _params(cmd, ctx)}
        for sub_name, sub, sub_ctx in subcommands:
            prefix = f"{name} [options] {sub_name}" if group_options else f"{name} {sub_name}"
            out += [".PP", _synopsis(prefix, sub, sub_ctx, skip=shared)]
    else:
        out += [_synopsis(name, cmd, ctx)]
    out += [".SH DESCRIPTION"] + _text_blocks(paragraphs(cmd.help))
    out += [".SH OPTIONS"]
    if subcommands:
        out += _options(cmd, ctx)
        if shared:
            out += [".PP", roff(f"These options are also accepted after the {name} subcommand.")]
        for sub_name, sub, sub_ctx in subcommands:
            out += [f".SS {roff(f'{name} {sub_name}')}"] + _text_blocks(paragraphs(sub.help))
            out += _options(sub, sub_ctx, skip=shared)
    else:
        out += _options(cmd, ctx) or [".PP", "No options."]
    out += [
        ".PP",
        roff("The global options --config and --log-level are described in ")
        + r"\fBserbero\fR(1).",
    ]
    out += _common_sections(name)
    notes = COMMAND_NOTES.get(name, {})
    out += _examples(notes.get("examples") or [f"serbero {name} --help"])
    out += _see_also(["serbero"] + [f"serbero-{n}" for n in all_commands if n != name])
    return _finish(out)


def _subcommands(cmd: Any, ctx: Any) -> list[tuple[str, Any, Any]]:
    if not hasattr(cmd, "list_commands"):
        return []
    subs = []
    for sub_name in sorted(cmd.list_commands(ctx)):
        sub = cmd.get_command(ctx, sub_name)
        if sub is not None and not sub.hidden:
            subs.append((sub_name, sub, sub.context_class(sub, info_name=sub_name, parent=ctx)))
    return subs


def _synopsis(path: str, cmd: Any, ctx: Any, skip: set[tuple[str, ...]] = frozenset()) -> str:
    parts = [r"\fBserbero\fR [\fIGLOBAL OPTIONS\fR]", rf"\fB{roff(path)}\fR"]
    for param in _params(cmd, ctx, skip):
        if param.param_type_name == "argument":
            parts.append(rf"\fI{roff(_argument_name(param))}\fR")
            continue
        decl = _option_decl(param, ctx).split(", ")[-1]
        repeat = "..." if getattr(param, "multiple", False) else ""
        parts.append(f"[{_bold_decl(decl)}]{repeat}")
    return " ".join(parts)


def _options(cmd: Any, ctx: Any, skip: set[tuple[str, ...]] = frozenset()) -> list[str]:
    out = []
    for param in _params(cmd, ctx, skip):
        if param.param_type_name == "argument":
            out += [
                ".TP",
                rf"\fI{roff(_argument_name(param))}\fR",
                roff(getattr(param, "help", None) or ""),
            ]
            continue
        record = param.get_help_record(ctx)
        help_text = record[1] if record else ""
        if getattr(param, "multiple", False):
            help_text += " May be repeated."
        out += [
            ".TP",
            ", ".join(_bold_decl(d) for d in _option_decl(param, ctx).split(", ")),
            roff(" ".join(help_text.split())),
        ]
    return out


def _params(cmd: Any, ctx: Any, skip: set[tuple[str, ...]] = frozenset()) -> list[Any]:
    """Visible parameters, without --help and without those in `skip` (a group's shared options)."""
    return [
        p
        for p in cmd.get_params(ctx)
        if p.name != "help" and not getattr(p, "hidden", False) and tuple(p.opts) not in skip
    ]


def _option_decl(param: Any, ctx: Any) -> str:
    record = param.get_help_record(ctx)
    return record[0] if record else ", ".join(param.opts)


def _bold_decl(decl: str) -> str:
    """`--path <path>` -> bold option name, italic value; `--color / --no-color` -> both bold."""
    if " / " in decl:
        return " / ".join(_bold_decl(part) for part in decl.split(" / "))
    name, _, value = decl.partition(" ")
    text = rf"\fB{roff(name)}\fR"
    return text + (rf" \fI{roff(value)}\fR" if value else "")


def _argument_name(param: Any) -> str:
    return (getattr(param, "metavar", None) or param.name or "ARG").upper()


def _summary(help_text: str | None) -> str:
    first = paragraphs(help_text)[:1]
    return first[0] if first else ""


def _header(name: str, summary: str) -> list[str]:
    title = name.upper()
    return [
        '.\\" Generated by scripts/gen-man from the serbero command tree; do not edit.',
        f'.TH "{title}" "{SECTION}" "{DATE}" "serbero {__version__}" "{MANUAL}"',
        ".nh",  # no hyphenation: option names and keys must not break across lines
        ".ad l",
        ".SH NAME",
        rf"{roff(name)} \- {roff(summary.rstrip('.'))}",
    ]


def _text_blocks(blocks: list[str]) -> list[str]:
    out = []
    for block in blocks:
        out += [".PP", roff(block)]
    return out


def _common_sections(name: str | None) -> list[str]:
    out = [".SH EXIT STATUS"]
    for code, meaning in EXIT_CODES:
        out += [".TP", rf"\fB{code}\fR", roff(meaning)]
    out += [".PP", roff(EXIT_PRECEDENCE)]
    note = COMMAND_NOTES.get(name or "", {}).get("exit")
    if note:
        out += [".PP", roff(f"For {name}: {note}")]
    out += [".SH FILES"]
    for path, meaning in FILES:
        out += [".TP", rf"\fI{roff(path)}\fR", roff(meaning)]
    out += [".SH ENVIRONMENT"]
    for var, meaning in ENVIRONMENT:
        out += [".TP", rf"\fB{roff(var)}\fR", roff(meaning)]
    return out


def _examples(lines: list[str]) -> list[str]:
    out = [".SH EXAMPLES"]
    for line in lines:
        out += [".PP", ".nf", rf"\fB{roff(line)}\fR", ".fi"]
    return out


def _see_also(names: list[str]) -> list[str]:
    return [".SH SEE ALSO", ",\n".join(rf"\fB{roff(n)}\fR({SECTION})" for n in names)]


def _finish(lines: list[str]) -> str:
    # A (sub)section heading already starts a paragraph; a .PP right after it is noise mandoc warns about.
    kept = [
        line
        for i, line in enumerate(lines)
        if not (line == ".PP" and i and lines[i - 1].startswith((".SH", ".SS")))
    ]
    return "\n".join(kept) + "\n"
