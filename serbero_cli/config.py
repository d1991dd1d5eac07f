"""Configuration: one table of keys, one loader for every subcommand (docs/operations.md#configuration).

`load_config(path, env)` reads the TOML (tomllib; tomlkit only to locate a syntax error), applies
environment overrides, validates every key against `KEYS`, and returns immutable records: one
NamedTuple per section (a one-shot run builds ten of them; NamedTuple classes are created in a
tenth of a frozen dataclass's time) inside a frozen `Config` dataclass. Every problem is collected as
(line, key, message) and raised together in one `ConfigError`, rendered as
`config.toml:12: [[solvers]] pubkey: not a valid public key`. A secret value is never echoed.
`config.toml.sample` is generated from `KEYS` (`render_sample()`), and a test keeps them equal.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from serbero_cli.config_schema import (  # noqa: F401 - re-exported: one import site for callers
    ARRAY_SECTIONS,
    DROPPED_KEYS,
    ENVELOPES,
    KEYS,
    LOG_LEVELS,
    PROVIDERS,
    REQUIRED,
    SECTIONS,
    TRANSPORTS,
    KeySpec,
    render_sample,
)
from serbero_cli.domain.notifications import Envelope
from serbero_cli.errors import ConfigError
from serbero_cli.keytext import (
    KeyFormatError,
    Secret,
    SecretKeyGiven,
    parse_public_key,
    parse_secret_key,
    public_key_of,
)
from serbero_cli.secret_sources import (
    API_KEY_CREDENTIAL,
    PRIVATE_KEY_CREDENTIAL,
    SecretSourceError,
    find_secret,
)
from serbero_cli.toml_lines import KeyLines, duplicate_key_problems


class SolverConfig(NamedTuple):
    pubkey: str  # lowercase hex
    permission: str  # "read" | "write"
    envelopes: tuple[Envelope, ...] = ENVELOPES  # resolved: its own list, else [delivery] envelopes


class ObserverConfig(NamedTuple):
    """Someone who gets one-line headlines only (a mostro-watchdog bot, a person)."""

    pubkey: str  # lowercase hex
    envelopes: tuple[Envelope, ...] = (Envelope.MOSTRO,)


class TimeoutsConfig(NamedTuple):
    renotification_seconds: int
    renotification_max_interval_seconds: int
    renotification_check_interval_seconds: int


class ListenConfig(NamedTuple):
    initial_lookback_seconds: int
    fetch_timeout_seconds: int


class DeliveryConfig(NamedTuple):
    max_attempts: int
    send_timeout_seconds: int
    envelopes: tuple[Envelope, ...]


class MediationConfig(NamedTuple):
    enabled: bool
    max_rounds: int
    party_response_timeout_seconds: int  # 0 disables
    session_timeout_seconds: int  # 0 disables
    max_starts_per_run: int
    take_reply_wait_seconds: int
    start_retry_interval_seconds: int
    solver_auth_retry_initial_seconds: int
    solver_auth_retry_max_interval_seconds: int
    solver_auth_retry_max_total_seconds: int
    solver_auth_retry_max_attempts: int


class ReasoningConfig(NamedTuple):
    enabled: bool
    provider: str
    model: str
    api_base: str  # trailing "/" trimmed
    api_key_env: str
    request_timeout_seconds: int  # 0 acts as 1 at use
    followup_retry_count: int


class PromptsConfig(NamedTuple):
    bundle_id: str
    system_instructions_path: Path | None
    classification_policy_path: Path | None
    escalation_policy_path: Path | None
    mediation_style_path: Path | None
    message_templates_path: Path | None


class ChatConfig(NamedTuple):
    fetch_timeout_seconds: int
    lookback_seconds: int
    transcript_max_messages: int
    legacy_giftwrap_copy: str


class EscalationConfig(NamedTuple):
    enabled: bool
    dispatch_interval_seconds: int
    fallback_to_all_solvers: bool
    max_dispatches_per_run: int
    run_budget_seconds: int
    connect_timeout_seconds: int
    sending_stale_seconds: int


@dataclass(frozen=True)
class Config:
    """The whole validated configuration. Keys are lowercase hex; paths are absolute."""

    path: Path
    private_key: Secret
    db_path: Path
    log_level: str
    busy_timeout_seconds: float
    mostro_pubkey: str
    mostro_transport: str
    relays: tuple[str, ...]
    solvers: tuple[SolverConfig, ...]
    observers: tuple[ObserverConfig, ...]
    timeouts: TimeoutsConfig
    listen: ListenConfig
    delivery: DeliveryConfig
    mediation: MediationConfig
    reasoning: ReasoningConfig
    prompts: PromptsConfig
    chat: ChatConfig
    escalation: EscalationConfig
    warnings: tuple[str, ...] = field(default=())

    @functools.cached_property
    def public_key(self) -> str:
        """Serbero's x-only public key (hex), derived from private_key on first use."""
        return public_key_of(self.private_key)

    @property
    def mediation_active(self) -> bool:
        return self.mediation.enabled and self.reasoning.enabled


_SECTION_TYPES: dict[str, Any] = {
    "timeouts": TimeoutsConfig,
    "listen": ListenConfig,
    "delivery": DeliveryConfig,
    "mediation": MediationConfig,
    "reasoning": ReasoningConfig,
    "prompts": PromptsConfig,
    "chat": ChatConfig,
    "escalation": EscalationConfig,
}


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """`$SERBERO_CONFIG` if set and not blank, else ./config.toml."""
    env = os.environ if env is None else env
    value = (env.get("SERBERO_CONFIG") or "").strip()
    return Path(value) if value else Path("config.toml")


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate `path`. Return a Config; raise ConfigError listing every problem."""
    path = Path(path)
    env = os.environ if env is None else env
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                f"{path}: config file not found (use --config or SERBERO_CONFIG, or run `serbero init`)"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.__class__.__name__}"]) from None
    return parse_config(text, path, env)


def parse_config(text: str, path: Path, env: Mapping[str, str]) -> Config:
    """Validate TOML `text` as if read from `path`. Return a Config or raise ConfigError."""
    doc = _parse_toml(text, path)
    return _Checker(path, text, env).build(doc)


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    """The document as plain Python values. The standard library parses a good file (it loads in a
    fraction of tomlkit's time, and listen runs every minute); a file it rejects is parsed again by
    tomlkit, whose errors carry the line to report."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    import tomlkit
    from tomlkit.exceptions import ParseError, TOMLKitError

    try:
        return tomlkit.parse(text).unwrap()
    except ParseError as exc:
        raise ConfigError(
            [f"{path}:{exc.line}: invalid TOML: {_parse_error_reason(exc)}"]
        ) from None
    except TOMLKitError as exc:  # a key set twice in one table: tomlkit gives no position
        raise ConfigError(
            duplicate_key_problems(path, text, ARRAY_SECTIONS) or [f"{path}: invalid TOML: {exc}"]
        ) from None


def load_reasoning_api_key(config: Config, env: Mapping[str, str] | None = None) -> Secret:
    """The provider API key from the variable named by `[reasoning].api_key_env`, else the file its
    `_FILE` twin names, else the systemd credential; ConfigError when none is set or one is unusable."""
    env = os.environ if env is None else env
    name = config.reasoning.api_key_env
    try:
        found = find_secret(env, name, API_KEY_CREDENTIAL)
    except SecretSourceError as exc:
        raise ConfigError([f"{config.path}: [reasoning] api_key_env: {exc}"]) from None
    if found is None:
        raise ConfigError(
            [
                f"{config.path}: [reasoning] api_key_env: environment variable {name} is unset or empty "
                f"(and neither {name}_FILE nor the {API_KEY_CREDENTIAL} credential is set)"
            ]
        )
    return Secret(found.text)


def _parse_error_reason(exc: Exception) -> str:
    return re.sub(r"\s+at line \d+ col \d+$", "", str(exc))


class _Checker:
    """Collects problems while turning the parsed document into records."""

    def __init__(self, path: Path, text: str, env: Mapping[str, str]):
        self.path = path
        self.lines = KeyLines(text)
        self.env = env
        self.problems: list[tuple[int | None, str]] = []
        self.warnings: list[str] = []

    def problem(self, line: int | None, where: str, message: str) -> None:
        self.problems.append((line, f"{where}: {message}"))

    def build(self, doc: dict[str, Any]) -> Config:
        for section, value in doc.items():
            if section not in SECTIONS:
                self.problem(self.lines.header(section), f"[{section}]", "unknown section")
            elif section in ARRAY_SECTIONS and not isinstance(value, list):
                self.problem(
                    self.lines.header(section),
                    f"[[{section}]]",
                    "must be an array of tables ([[...]])",
                )
            elif section not in ARRAY_SECTIONS and not isinstance(value, dict):
                self.problem(self.lines.key(None, 0, section), f"[{section}]", "must be a table")
        tables: dict[str, dict[str, Any]] = {}
        for s in SECTIONS:
            if s not in ARRAY_SECTIONS:
                table = doc.get(s)
                tables[s] = table if isinstance(table, dict) else {}
        values = {s: self.section_values(s, tables[s]) for s in tables}
        relays = self.array_values("relays", doc.get("relays"))
        solvers = self.array_values("solvers", doc.get("solvers"))
        observers = self.array_values("observers", doc.get("observers"))
        self.apply_env(values)
        self.cross_checks(values, relays, solvers, observers)
        if self.problems:
            raise ConfigError(self.render_problems())
        self.check_permissions(values)
        serbero, mostro = values["serbero"], values["mostro"]
        sections = {name: cls(**values[name]) for name, cls in _SECTION_TYPES.items()}
        return Config(
            path=self.path,
            private_key=serbero["private_key"],
            db_path=serbero["db_path"],
            log_level=serbero["log_level"],
            busy_timeout_seconds=serbero["busy_timeout_seconds"],
            mostro_pubkey=mostro["pubkey"],
            mostro_transport=mostro["transport"],
            relays=tuple(r["url"] for r in relays),
            solvers=tuple(
                SolverConfig(
                    s["pubkey"], s["permission"], s["envelopes"] or values["delivery"]["envelopes"]
                )
                for s in solvers
            ),
            observers=tuple(ObserverConfig(o["pubkey"], o["envelopes"]) for o in observers),
            warnings=tuple(self.warnings),
            **sections,
        )

    def render_problems(self) -> list[str]:
        ordered = sorted(self.problems, key=lambda p: (p[0] is None, p[0] or 0))
        return [
            f"{self.path}:{line}: {msg}" if line else f"{self.path}: {msg}" for line, msg in ordered
        ]

    def section_values(self, section: str, table: dict[str, Any], index: int = 0) -> dict[str, Any]:
        specs = {k.name: k for k in KEYS if k.section == section}
        label = f"[[{section}]]" if section in ARRAY_SECTIONS else f"[{section}]"
        for name in table:
            if name in specs:
                continue
            line = self.lines.key(section, index, name)
            if (section, name) in DROPPED_KEYS:
                where = f"{self.path}:{line}" if line else str(self.path)
                self.warnings.append(
                    f"{where}: {label} {name}: unsupported key, ignored ({DROPPED_KEYS[(section, name)]})"
                )
            else:
                self.problem(line, f"{label} {name}", "unknown key")
        out: dict[str, Any] = {}
        for name, spec in specs.items():
            where = f"{label} {name}"
            line = self.lines.key(section, index, name)
            if name not in table:
                if spec.default is REQUIRED and spec.env is None:
                    self.problem(
                        line or self.lines.header(section, index), where, "required key is missing"
                    )
                out[name] = None if spec.default is REQUIRED else spec.default
                if spec.kind == "path" and isinstance(out[name], str):
                    out[name] = self.resolve_path(out[name])
                continue
            out[name] = self.coerce(spec, table[name], line, where)
        return out

    def array_values(self, section: str, items: Any) -> list[dict[str, Any]]:
        if not isinstance(items, list):
            return []
        result = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.problem(self.lines.header(section, index), f"[[{section}]]", "must be a table")
                continue
            result.append(self.section_values(section, item, index))
        return result

    def coerce(self, spec: KeySpec, value: Any, line: int | None, where: str) -> Any:
        kind = spec.kind
        if kind == "seconds":  # a duration that may be a fraction of a second (tests use 0.2)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                self.problem(line, where, f"must be a number of seconds, not {_type_name(value)}")
                return spec.default
            if value <= spec.minimum if spec.minimum is not None else False:
                self.problem(line, where, f"must be more than {spec.minimum} seconds, got {value}")
                return spec.default
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                self.problem(line, where, f"must be an integer, not {_type_name(value)}")
                return spec.default
            if spec.minimum is not None and value < spec.minimum:
                self.problem(line, where, f"must be >= {spec.minimum}, got {value}")
                return spec.default
            return value
        if kind == "envelopes":
            return self.coerce_envelopes(spec, value, line, where)
        if kind == "bool":
            if not isinstance(value, bool):
                self.problem(line, where, f"must be true or false, not {_type_name(value)}")
                return spec.default
            return value
        if not isinstance(value, str):
            self.problem(line, where, f"must be a string, not {_type_name(value)}")
            return None if spec.default is REQUIRED else spec.default
        return self.coerce_text(spec, value, line, where)

    def coerce_envelopes(self, spec: KeySpec, value: Any, line: int | None, where: str) -> Any:
        """A non-empty list of known envelope names, each once."""
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(line, where, f"must be a list of names ({', '.join(spec.choices)})")
            return spec.default
        if not value:
            self.problem(line, where, "must name at least one envelope")
            return spec.default
        names = [v.strip().lower() for v in value]
        unknown = [v for v in names if v not in spec.choices]
        if unknown:
            self.problem(
                line, where, f"unknown envelope {unknown[0]!r} (known: {', '.join(spec.choices)})"
            )
            return spec.default
        if len(set(names)) != len(names):
            self.problem(line, where, "each envelope may appear once")
            return spec.default
        return tuple(Envelope(name) for name in names)

    def coerce_text(self, spec: KeySpec, value: str, line: int | None, where: str) -> Any:
        kind = spec.kind
        if kind == "secret":
            try:
                return parse_secret_key(value)
            except KeyFormatError as exc:
                self.problem(line, where, f"not a valid secret key ({exc})")
                return None
        if kind == "pubkey":
            try:
                return parse_public_key(value)
            except SecretKeyGiven as exc:
                self.problem(line, where, str(exc))
                return None
            except KeyFormatError as exc:
                self.problem(line, where, f"not a valid public key ({exc})")
                return None
        if kind == "choice":
            choice = value.strip().lower()
            if spec.section == "mostro" and choice == "gift-wrap":
                choice = "giftwrap"
            if choice not in spec.choices:
                self.problem(
                    line, where, f"must be one of {', '.join(spec.choices)}, got {value!r}"
                )
                return spec.default
            return choice
        if kind == "url":
            url = value.strip()
            if not re.match(r"^wss?://[^\s/]+", url):
                self.problem(line, where, f"must start with ws:// or wss://, got {url!r}")
            return url
        if kind == "path":
            if not value.strip():
                self.problem(line, where, "must not be empty")
                return None
            return self.resolve_path(value.strip())
        text = value.strip()
        if not text:
            self.problem(line, where, "must not be empty")
        return text

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.path.resolve().parent / p)

    def apply_env(self, values: dict[str, dict[str, Any]]) -> None:
        for spec in KEYS:
            if not spec.env:
                continue
            raw, where = (self.env.get(spec.env) or "").strip(), f"{spec.env} (environment)"
            if spec.kind == "secret":
                raw, found_in = self.secret_from_sources(spec, spec.env)
                if found_in is None:
                    continue  # an unusable source, already reported
                where = found_in
            if not raw:
                if (
                    spec.default is REQUIRED
                    and values[spec.section].get(spec.name) is None
                    and self.lines.key(spec.section, 0, spec.name) is None
                ):
                    also = (
                        f", {spec.env}_FILE or the {PRIVATE_KEY_CREDENTIAL} credential"
                        if spec.kind == "secret"
                        else ""
                    )
                    self.problem(
                        self.lines.header(spec.section),
                        f"[{spec.section}] {spec.name}",
                        f"required key is missing (or set {spec.env}{also})",
                    )
                continue
            values[spec.section][spec.name] = self.coerce_text(spec, raw, None, where)

    def secret_from_sources(self, spec: KeySpec, variable: str) -> tuple[str, str | None]:
        """(text, where) from `variable`, its _FILE or the systemd credential; ("", None) after
        reporting an unusable source, ("", "") when none is set."""
        try:
            found = find_secret(self.env, variable, PRIVATE_KEY_CREDENTIAL)
        except SecretSourceError as exc:
            self.problem(None, f"[{spec.section}] {spec.name}", str(exc))
            return "", None
        return (found.text, found.source) if found else ("", "")

    def cross_checks(
        self, values: dict[str, dict[str, Any]], relays: list, solvers: list, observers: list
    ) -> None:
        if not relays:
            self.problem(
                self.lines.header("relays"), "[[relays]]", "at least one relay is required"
            )
        own = _own_public_key(values["serbero"].get("private_key"))
        for section, entries in (("solvers", solvers), ("observers", observers)):
            seen: dict[str, int] = {}
            for index, entry in enumerate(entries):
                key = entry.get("pubkey")
                if key is None:
                    continue
                line = self.lines.key(section, index, "pubkey")
                if key == own:
                    # Serbero would message itself, and a node refuses its own Serbero as a solver.
                    self.problem(line, f"[[{section}]] pubkey", "this is Serbero's own key")
                elif key in seen:
                    noun = section.removesuffix("s")
                    self.problem(
                        line,
                        f"[[{section}]] pubkey",
                        f"duplicate {noun} (same key as {noun} #{seen[key] + 1})",
                    )
                else:
                    seen[key] = index
        reasoning = values["reasoning"]
        if isinstance(reasoning.get("api_base"), str):
            reasoning["api_base"] = reasoning["api_base"].rstrip("/")

    def check_permissions(self, values: dict[str, dict[str, Any]]) -> None:
        if self.lines.key("serbero", 0, "private_key") is None:
            return
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.warnings.append(
                f"{self.path}: holds private_key but is readable by group/others; run chmod 600 {self.path}"
            )


def _own_public_key(secret: Any) -> str | None:
    if not isinstance(secret, Secret):
        return None
    try:
        return public_key_of(secret)
    except Exception:  # noqa: BLE001 - an invalid key is reported on its own line
        return None


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def section_fields(section: str) -> list[str]:
    """Field names of a section's record, for the completeness test."""
    cls = _SECTION_TYPES.get(section)
    return list(getattr(cls, "_fields", ())) if cls else []
