"""The prompt bundle: five prompt files read as raw bytes, and the policy hash that pins them.

Sessions record which bundle and hash they ran under (docs/mediation.md#prompt-bundle), so the hash is computed
over the exact bytes read, never over decoded or normalised text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from serbero_cli.config import PromptsConfig
from serbero_cli.errors import ConfigError

# (config key, packaged file name, PromptBundle field); the hash order is fixed separately below.
PROMPT_FILES: tuple[tuple[str, str, str], ...] = (
    ("system_instructions_path", "system.md", "system"),
    ("classification_policy_path", "classification.md", "classification"),
    ("escalation_policy_path", "escalation-policy.md", "escalation"),
    ("mediation_style_path", "mediation-style.md", "mediation_style"),
    ("message_templates_path", "message-templates.md", "message_templates"),
)

_HASH_DOMAIN = b"serbero/phase3\0"


@dataclass(frozen=True)
class PromptBundle:
    """A loaded bundle. Text fields are the files decoded as UTF-8; `raw` keeps the bytes hashed."""

    bundle_id: str  # [prompts].bundle_id, recorded as prompt_bundle_id
    policy_hash: str  # 64 lowercase hex, policy_hash() of `raw`
    system: str = field(repr=False)
    classification: str = field(repr=False)
    escalation: str = field(repr=False)
    mediation_style: str = field(repr=False)
    message_templates: str = field(repr=False)
    # The five files' bytes in PROMPT_FILES order (system, classification, escalation, style, templates).
    raw: tuple[bytes, ...] = field(default=(), repr=False)


def policy_hash(s: bytes, c: bytes, e: bytes, m: bytes, t: bytes) -> str:
    """The policy hash over the five files' bytes: labelled, NUL-separated, fixed order."""
    h = hashlib.sha256(_HASH_DOMAIN)
    for label, data in (
        (b"system", s),
        (b"classification", c),
        (b"escalation", e),
        (b"mediation_style", m),
    ):
        h.update(label + b"\0" + data + b"\0")
    h.update(b"message_templates\0" + t)  # the last part has no trailing NUL
    return h.hexdigest()


def load_bundle(prompts: PromptsConfig) -> PromptBundle:
    """Read the five prompt files (packaged, or the `*_path` overrides) and hash them.

    Raise ConfigError (exit 2) naming every config key whose file is missing, unreadable or not
    UTF-8, with its path.
    """
    problems: list[str] = []
    raw: dict[str, bytes] = {}
    texts: dict[str, str] = {}
    for key, filename, attr in PROMPT_FILES:
        override: Path | None = getattr(prompts, key)
        where = (
            str(override) if override is not None else f"packaged serbero_cli/prompts/{filename}"
        )
        try:
            data = override.read_bytes() if override is not None else _packaged(filename)
            texts[attr] = data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"[prompts] {key}: {where}: prompt file is not valid UTF-8")
            continue
        except OSError as exc:
            problems.append(
                f"[prompts] {key}: {where}: cannot read prompt file ({exc.__class__.__name__})"
            )
            continue
        raw[attr] = data
    if problems:
        raise ConfigError(problems)
    ordered = tuple(raw[attr] for _, _, attr in PROMPT_FILES)
    return PromptBundle(
        bundle_id=prompts.bundle_id,
        policy_hash=policy_hash(*ordered),
        raw=ordered,
        **texts,
    )


def _packaged(filename: str) -> bytes:
    return resources.files("serbero_cli.prompts").joinpath(filename).read_bytes()
