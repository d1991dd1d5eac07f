"""The handoff DM body (docs/wire-formats.md#handoff), byte-exact.

It opens with the `Dispute <id> · <subject>` line Mostrix and mostro-watchdog read (`handed off:
<trigger>` when a session was opened, else `mediation could not start` with `reason: <trigger>`),
then `escalation_handoff/v2` on its own line, the `Key: value` header up to the first empty line,
one line for the person reading it, and the JSON package after `Handoff payload (JSON):`. Tools
find the marker on the first line matching `^[a-z_]+/v[0-9]+$`; everything but the prose line is
a wire format. Product reviews `SUMMARY_TEMPLATE`; rewording it needs no new version.
"""

from __future__ import annotations

import logging

from serbero_cli.domain.handoff import HandoffPackage
from serbero_cli.domain.headline import escalation_opening

logger = logging.getLogger(__name__)

VERSION_LINE = "escalation_handoff/v2"
NO_SESSION = "<none \u2014 dispute-scoped handoff>"  # em dash, one space each side
PAYLOAD_HEADER = "Handoff payload (JSON):"
WARN_BODY_BYTES = 30_000

# Line 6. It must stay one line and name the dispute id and trigger verbatim, say the dispute
# needs human judgment, send the solver to their own Mostro instance and say where it comes
# from; a write solver takes over from Serbero with admin-take-dispute (docs/mediation.md#takeover).
SUMMARY_TEMPLATE = (
    "Serbero's mediation assistance is handing over dispute {dispute_id} (trigger: {trigger}) because it "
    "needs human judgment: take over with admin-take-dispute on {dispute_id} from your own Mostro instance."
)


def summary_line(package: HandoffPackage) -> str:
    """Line 6 for this package (header fields were checked free of line breaks by the parser)."""
    return SUMMARY_TEMPLATE.format(dispute_id=package.dispute_id, trigger=package.trigger)


def render_handoff_body(package: HandoffPackage) -> str:
    """The whole DM text joined with `\\n`, no trailing newline. WARN above 30 000 bytes."""
    session = package.session_id if package.session_id is not None else NO_SESSION
    first, second = escalation_opening(package.dispute_id, package.session_id, package.trigger)
    body = "\n".join(
        (
            first,
            second,
            VERSION_LINE,
            f"Dispute: {package.dispute_id}",
            f"Session: {session}",
            f"Trigger: {package.trigger}",
            "",
            summary_line(package),
            "",
            PAYLOAD_HEADER,
            package.to_json(),
        )
    )
    size = len(body.encode("utf-8"))
    if size > WARN_BODY_BYTES:
        # Never truncated: a relay or NIP-44 limit shows up as an ordinary send failure.
        logger.warning(
            "dispute=%s handoff body is %d bytes (over %d); relays may reject it",
            package.dispute_id[:12],
            size,
            WARN_BODY_BYTES,
        )
    return body
