"""A Mostrix-like reader of Serbero's messages, written from the published contract, not from
Serbero's sender code, so the two check each other.

What Mostrix (the solver TUI) does with a message from a trusted sender, step by step:

1. Read kind 14 events with `authors` = the trusted sender and `#p` = the solver.
2. Check the event signature; NIP-44 v2 decrypt with (solver secret, author public key).
3. Parse the plaintext as a JSON array of exactly three elements: message, signature, identity.
4. The message is an object with one variant key; its body must be action `send-dm` with payload
   `{"text_message": "<text>"}` and `id` the dispute id.
5. A signature string must be a BIP-340 signature by the author over sha256 of the message as
   Rust's serde writes it again (its own key order and escaping), so the bytes on the wire must
   be exactly serde's. The identity element null means "the author".
6. The first line of the text is `Dispute <id> · <subject>`; subjects that start with
   `handed off` or `mediation could not start` raise the take-over banner.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import coincurve
import nostr_sdk as ns

from serbero_cli.simulate import aio
from serbero_cli.simulate.client import SimClient

HISTORY_WINDOW_SECONDS = 7 * 86400
HEADER_SEPARATOR = " \u00b7 "
BANNER_PREFIXES = ("handed off", "mediation could not start")
# The order serde writes the fields of a Mostro message kind; `id` is left out when null.
MESSAGE_FIELDS = ("version", "request_id", "trade_index", "id", "action", "payload")


class Rejected(ValueError):
    """The event is not a message Mostrix would show; the text says which check failed."""


def serde_string(text: str) -> str:
    """A JSON string the way serde_json writes it: `"` and `\\` escaped, \\b \\f \\n \\r \\t short,
    other control characters as \\u00xx with lowercase hex, everything else (DEL, U+2028, emoji)
    as raw UTF-8."""
    short = {
        '"': '\\"',
        "\\": "\\\\",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
    }
    out = ['"']
    for char in text:
        if char in short:
            out.append(short[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def serde_value(value: Any) -> str:
    """Compact JSON for the payload values a send-dm carries (objects keep their order)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return serde_string(value)
    if isinstance(value, list):
        return "[" + ",".join(serde_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ",".join(serde_string(k) + ":" + serde_value(v) for k, v in value.items()) + "}"
        )
    raise Rejected(f"unexpected value type {type(value).__name__}")


def serde_message(variant: str, body: dict[str, Any]) -> str:
    """The message re-serialized as the receiver's serde would: fields in struct order, unknown dropped."""
    parts = []
    for name in MESSAGE_FIELDS:
        if name == "id" and body.get("id") is None:
            continue
        parts.append(serde_string(name) + ":" + serde_value(body.get(name)))
    return "{" + serde_string(variant) + ":{" + ",".join(parts) + "}}"


@dataclass(frozen=True)
class SolverMessage:
    """One message as Mostrix shows it in a dispute's SERBERO tab."""

    event_id: str
    author: str
    created_at: int
    dispute_id: str
    text: str
    subject: str
    header_dispute: str | None  # the id on the first line

    @property
    def banner(self) -> bool:
        """Whether Mostrix raises "Serbero handed off … · Ctrl+T to take over" for it."""
        return self.subject.startswith(BANNER_PREFIXES)

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


def split_first_line(text: str) -> tuple[str | None, str]:
    """(dispute id on the first line or None, subject). A first line without the `Dispute <id> · `
    head is all subject, as Mostrix does for older texts."""
    first = text.split("\n", 1)[0].rstrip("\r").strip()
    head, sep, rest = first.partition(HEADER_SEPARATOR)
    if sep and head.startswith("Dispute "):
        return head[len("Dispute ") :].strip(), rest.strip()
    return None, first


def open_message(event: ns.Event, solver_keys: ns.Keys, trusted: set[str]) -> SolverMessage:
    """Apply every check; return the message or raise Rejected naming the failed check."""
    author = event.author().to_hex()
    if event.kind().as_u16() != 14:
        raise Rejected("not kind 14")
    if author not in trusted:
        raise Rejected("author not trusted")
    if not event.verify():
        raise Rejected("bad event signature")
    try:
        plaintext = ns.nip44_decrypt(solver_keys.secret_key(), event.author(), event.content())
    except Exception as exc:  # noqa: BLE001 - NostrSdkError
        raise Rejected(f"nip44 decrypt failed: {exc}") from None
    try:
        elements = json.loads(plaintext)
    except ValueError:
        raise Rejected("content is not JSON") from None
    if not isinstance(elements, list) or len(elements) != 3:
        raise Rejected("not a 3-element tuple")
    message, signature, identity = elements
    if not isinstance(message, dict) or len(message) != 1:
        raise Rejected("message is not one variant")
    variant, body = next(iter(message.items()))
    if not isinstance(body, dict) or body.get("action") != "send-dm":
        raise Rejected("not a send-dm")
    payload = body.get("payload")
    if (
        not isinstance(payload, dict)
        or set(payload) != {"text_message"}
        or not isinstance(payload["text_message"], str)
    ):
        raise Rejected("payload is not a text_message")
    if signature is not None:
        digest = hashlib.sha256(serde_message(variant, body).encode("utf-8")).digest()
        try:
            valid = coincurve.PublicKeyXOnly(bytes.fromhex(author)).verify(
                bytes.fromhex(signature), digest
            )
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise Rejected("signature does not verify over serde's bytes")
    if identity is not None:
        raise Rejected("identity proof present (Serbero sends null)")
    dispute_id = body.get("id")
    if not isinstance(dispute_id, str):
        raise Rejected("no dispute id")
    text = payload["text_message"]
    header_dispute, subject = split_first_line(text)
    return SolverMessage(
        event.id().to_hex(),
        author,
        event.created_at().as_secs(),
        dispute_id,
        text,
        subject,
        header_dispute,
    )


class MostrixReader:
    """A solver running Mostrix with `trusted_dm_senders = [serbero]`."""

    def __init__(self, relay_urls: list[str] | str, keys: ns.Keys, trusted: list[str]):
        self.keys = keys
        self.trusted = set(trusted)
        self.client = SimClient(relay_urls)
        self.rejected: list[str] = []

    async def messages_async(self) -> list[SolverMessage]:
        since = int(time.time()) - HISTORY_WINDOW_SECONDS
        events = await self.client.fetch(
            [
                {
                    "kinds": [14],
                    "authors": sorted(self.trusted),
                    "#p": [self.keys.public_key().to_hex()],
                    "since": since,
                }
            ]
        )
        out, self.rejected = [], []
        for event in events:
            try:
                out.append(open_message(event, self.keys, self.trusted))
            except Rejected as exc:
                self.rejected.append(f"{event.id().to_hex()[:8]}: {exc}")
        return sorted(out, key=lambda m: (m.created_at, m.event_id))

    def messages(self) -> list[SolverMessage]:
        return aio.run(self.messages_async())

    def serbero_tab(self, dispute_id: str) -> list[SolverMessage]:
        """What the dispute's SERBERO tab lists: its messages, oldest first."""
        return [m for m in self.messages() if m.dispute_id == dispute_id]

    def close(self) -> None:
        aio.run(self.client.close())
