"""The table of configuration keys: where each lives, its type, default and help text.

`config.py` validates against it; `render_sample()` turns it into `config.toml.sample` (a test
keeps the committed sample equal), and the README and man page references are rendered from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serbero_cli.domain.notifications import (
    ENVELOPES,  # how a message to a solver or observer travels
)

REQUIRED = object()
ARRAY_SECTIONS = ("relays", "solvers", "observers")
PROVIDERS = ("openai", "openai-compatible", "anthropic")
TRANSPORTS = ("auto", "giftwrap", "nip44")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: where it lives, its type, default and the help line of the sample."""

    section: str
    name: str
    kind: str  # str | int | seconds (int or float) | bool | pubkey | secret | choice | url | path | envelopes
    default: Any
    help: str
    minimum: int | None = None
    choices: tuple[str, ...] = ()
    env: str | None = None


KEYS: tuple[KeySpec, ...] = (
    KeySpec(
        "serbero",
        "private_key",
        "secret",
        REQUIRED,
        "Serbero's Nostr secret key, 64 hex or nsec1…. SERBERO_PRIVATE_KEY, the file named by "
        "SERBERO_PRIVATE_KEY_FILE, or the systemd credential serbero-private-key override it (in that order).",
        env="SERBERO_PRIVATE_KEY",
    ),
    KeySpec(
        "serbero",
        "db_path",
        "path",
        "serbero.db",
        "SQLite file shared by every subcommand; relative to this file's folder.",
        env="SERBERO_DB_PATH",
    ),
    KeySpec(
        "serbero",
        "log_level",
        "choice",
        "info",
        "debug, info, warning or error. Env SERBERO_LOG; --log-level beats both.",
        choices=LOG_LEVELS,
        env="SERBERO_LOG",
    ),
    KeySpec(
        "serbero",
        "busy_timeout_seconds",
        "seconds",
        5,
        "How long a run waits for another one's write lock on the database before giving up.",
        minimum=0,
    ),
    KeySpec(
        "mostro",
        "pubkey",
        "pubkey",
        REQUIRED,
        "The Mostro node's public key: hex, npub1… or nostr:npub1….",
    ),
    KeySpec(
        "mostro",
        "transport",
        "choice",
        "auto",
        "How take requests travel: auto (read the node's kind-38385 event), giftwrap (alias gift-wrap) or nip44.",
        choices=TRANSPORTS,
    ),
    KeySpec(
        "relays",
        "url",
        "url",
        REQUIRED,
        "A relay, ws:// or wss://. Repeat [[relays]] for each one.",
    ),
    KeySpec(
        "solvers",
        "pubkey",
        "pubkey",
        REQUIRED,
        "A human solver to notify: hex, npub1… or nostr:npub1…. Repeat [[solvers]] for each one.",
    ),
    KeySpec(
        "solvers",
        "permission",
        "choice",
        "read",
        "read or write; write solvers receive escalation handoffs first.",
        choices=("read", "write"),
    ),
    KeySpec(
        "solvers",
        "envelopes",
        "envelopes",
        None,
        "Envelopes for this solver only; unset uses [delivery] envelopes.",
        choices=ENVELOPES,
    ),
    KeySpec(
        "observers",
        "pubkey",
        "pubkey",
        REQUIRED,
        "Someone who follows headlines only (a mostro-watchdog bot, a person): mediating, mediation "
        "could not start, handed off. Repeat [[observers]] for each one.",
    ),
    KeySpec(
        "observers",
        "envelopes",
        "envelopes",
        ("mostro",),
        "Envelopes for this observer.",
        choices=ENVELOPES,
    ),
    KeySpec(
        "timeouts",
        "renotification_seconds",
        "int",
        300,
        "Remind solvers when a notified dispute is still untaken after this long.",
        minimum=1,
    ),
    KeySpec(
        "timeouts",
        "renotification_max_interval_seconds",
        "int",
        21600,
        "Reminders back off (5, 10, 20, 40 min, …) up to this interval between two reminders.",
        minimum=1,
    ),
    KeySpec(
        "timeouts",
        "renotification_check_interval_seconds",
        "int",
        60,
        "How often `listen --follow` runs the reminder sweep and retries.",
        minimum=1,
    ),
    KeySpec(
        "listen",
        "initial_lookback_seconds",
        "int",
        604800,
        "How far back the first run (empty database) reads dispute events.",
        minimum=0,
    ),
    KeySpec("listen", "fetch_timeout_seconds", "int", 10, "Per relay round trip.", minimum=1),
    KeySpec(
        "delivery", "max_attempts", "int", 5, "Attempts per solver message, across runs.", minimum=1
    ),
    KeySpec(
        "delivery",
        "send_timeout_seconds",
        "int",
        5,
        "How long to wait for a relay's OK to a published event.",
        minimum=1,
    ),
    KeySpec(
        "delivery",
        "envelopes",
        "envelopes",
        ENVELOPES,
        "How messages reach solvers: mostro (the send-dm that Mostrix and mostro-watchdog read) and "
        "nip17 (general Nostr DM apps). Each value once; not empty.",
        choices=ENVELOPES,
    ),
    KeySpec(
        "mediation",
        "enabled",
        "bool",
        False,
        "Run AI-guided mediation (needs [reasoning].enabled too).",
    ),
    KeySpec(
        "mediation",
        "max_rounds",
        "int",
        2,
        "Escalate with round_limit once both parties answered this many rounds.",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "party_response_timeout_seconds",
        "int",
        1800,
        "Escalate party_unresponsive after this much silence; 0 disables it.",
        minimum=0,
    ),
    KeySpec(
        "mediation",
        "session_timeout_seconds",
        "int",
        86400,
        "Escalate mediation_timeout when a session is older than this; 0 disables it.",
        minimum=0,
    ),
    KeySpec(
        "mediation",
        "max_starts_per_run",
        "int",
        5,
        "Most new sessions one run starts (--max-starts overrides it).",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "take_reply_wait_seconds",
        "int",
        15,
        "One shared wait for Mostro's answers to this run's take requests.",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "start_retry_interval_seconds",
        "int",
        300,
        "Minimum gap between two start attempts for one dispute.",
        minimum=0,
    ),
    KeySpec(
        "mediation",
        "solver_auth_retry_initial_seconds",
        "int",
        60,
        "First back-off after Mostro refuses Serbero as a solver.",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "solver_auth_retry_max_interval_seconds",
        "int",
        3600,
        "Longest back-off between authorization probes.",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "solver_auth_retry_max_total_seconds",
        "int",
        86400,
        "Give up probing after this long since the first refusal.",
        minimum=1,
    ),
    KeySpec(
        "mediation",
        "solver_auth_retry_max_attempts",
        "int",
        24,
        "Give up probing after this many refusals.",
        minimum=1,
    ),
    KeySpec("reasoning", "enabled", "bool", False, "Allow calls to the reasoning provider."),
    KeySpec(
        "reasoning",
        "provider",
        "choice",
        "openai",
        "openai, openai-compatible (self-hosted, PPQ.ai, …) or anthropic.",
        choices=PROVIDERS,
    ),
    KeySpec("reasoning", "model", "str", "gpt-4o-mini", "Model name sent to the provider."),
    KeySpec(
        "reasoning",
        "api_base",
        "str",
        "https://api.openai.com/v1",
        "Base URL; a trailing / is trimmed. Anthropic: https://api.anthropic.com.",
    ),
    KeySpec(
        "reasoning",
        "api_key_env",
        "str",
        "SERBERO_REASONING_API_KEY",
        "Name of the environment variable that holds the API key (never put the key here); "
        "<name>_FILE or the systemd credential serbero-reasoning-api-key work too.",
    ),
    KeySpec(
        "reasoning",
        "request_timeout_seconds",
        "int",
        30,
        "Per HTTP attempt; 0 acts as 1.",
        minimum=0,
    ),
    KeySpec(
        "reasoning",
        "followup_retry_count",
        "int",
        1,
        "Extra attempts after the first, for timeouts, 408, 429 and 5xx only.",
        minimum=0,
    ),
    KeySpec(
        "prompts", "bundle_id", "str", "serbero-default", "Name recorded with every mediation row."
    ),
    KeySpec(
        "prompts",
        "system_instructions_path",
        "path",
        None,
        "Override for system.md (relative to this file's folder); unset uses the packaged file.",
    ),
    KeySpec(
        "prompts", "classification_policy_path", "path", None, "Override for classification.md."
    ),
    KeySpec(
        "prompts", "escalation_policy_path", "path", None, "Override for escalation-policy.md."
    ),
    KeySpec("prompts", "mediation_style_path", "path", None, "Override for mediation-style.md."),
    KeySpec(
        "prompts", "message_templates_path", "path", None, "Override for message-templates.md."
    ),
    KeySpec(
        "chat",
        "fetch_timeout_seconds",
        "int",
        5,
        "Timeout of the chat and take-reply fetches.",
        minimum=1,
    ),
    KeySpec(
        "chat",
        "lookback_seconds",
        "int",
        604800,
        "The since window of every gift-wrap fetch.",
        minimum=1,
    ),
    KeySpec(
        "chat", "transcript_max_messages", "int", 40, "Most messages shown to the model.", minimum=1
    ),
    KeySpec(
        "chat",
        "legacy_giftwrap_copy",
        "choice",
        "auto",
        "Also send each question as a kind-1059 copy: auto (until the party answers in kind 14), always, never.",
        choices=("auto", "always", "never"),
    ),
    KeySpec(
        "escalation", "enabled", "bool", False, "Let dispatch-once deliver escalation handoffs."
    ),
    KeySpec(
        "escalation",
        "dispatch_interval_seconds",
        "int",
        30,
        "The cadence your timer runs dispatch-once at; audit flags slower deliveries.",
        minimum=1,
    ),
    KeySpec(
        "escalation",
        "fallback_to_all_solvers",
        "bool",
        False,
        "With no write solver, send handoffs to every solver.",
    ),
    KeySpec(
        "escalation",
        "max_dispatches_per_run",
        "int",
        50,
        "Most handoff claims per run (--limit overrides it).",
        minimum=1,
    ),
    KeySpec(
        "escalation",
        "run_budget_seconds",
        "int",
        20,
        "No new claim starts after this much time.",
        minimum=1,
    ),
    KeySpec("escalation", "connect_timeout_seconds", "int", 5, "Relay connect timeout.", minimum=1),
    KeySpec(
        "escalation",
        "sending_stale_seconds",
        "int",
        120,
        "Age at which an unfinished send is taken as abandoned.",
        minimum=1,
    ),
)

# Keys of the reference program that we no longer read: warn, ignore.
DROPPED_KEYS: dict[tuple[str, str], str] = {
    ("chat", "inbound_fetch_interval_seconds"): "the timer cadence replaces it; remove the key",
    (
        "reasoning",
        "api_key",
    ): "secrets never come from the file; put the key in the variable named by api_key_env",
}

SECTIONS = tuple(dict.fromkeys(k.section for k in KEYS))
OPTIONAL_ARRAY_SECTIONS = ("observers",)


def render_sample() -> str:
    """The commented `config.toml.sample`, generated from KEYS."""
    out = [
        "# Serbero configuration. Every key is listed with its default.",
        "# Generated from serbero_cli/config_keys.py (KEYS); edit there, then run scripts/gen-sample.",
        "# Keys marked (required) must be set. Mediation and escalation are off by default.",
        "",
    ]
    examples = {
        ("serbero", "private_key"): '"<64 hex characters or nsec1…>"',
        ("mostro", "pubkey"): '"<Mostro node pubkey: hex or npub1…>"',
        ("relays", "url"): '"wss://relay.mostro.network"',
        ("solvers", "pubkey"): '"<solver pubkey: hex or npub1…>"',
        ("observers", "pubkey"): '"<observer pubkey: hex or npub1…>"',
    }
    for section in SECTIONS:
        specs = [k for k in KEYS if k.section == section]
        # An observer is optional: its table is shown commented out, ready to copy.
        lead = "# " if section in OPTIONAL_ARRAY_SECTIONS else ""
        out.append(lead + (f"[[{section}]]" if section in ARRAY_SECTIONS else f"[{section}]"))
        for spec in specs:
            out.append(f"# {spec.help}")
            if spec.default is REQUIRED:
                out.append(f"{lead}{spec.name} = {examples[(section, spec.name)]}   # (required)")
            elif spec.default is None and spec.kind == "envelopes":
                out.append(f"# {spec.name} = {_toml_value(ENVELOPES)}")
            elif spec.default is None:
                out.append(f'# {spec.name} = "prompts/{spec.name.removesuffix("_path")}.md"')
            else:
                out.append(f"{lead}{spec.name} = {_toml_value(spec.default)}")
        out.append("")
    return "\n".join(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
