"""`serbero dispatch-once`: deliver escalation handoffs to write-permission solvers (docs/delivery.md#dispatch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from serbero_cli.cli.common import (
    QUIET_HELP,
    console,
    emit_json,
    execute,
    load,
    maybe_init_nostr_logger,
)

if TYPE_CHECKING:
    from rich.table import Table

    from serbero_cli.dispatch.result import DispatchResult


def dispatch_once(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent and recorded; touch nothing.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (dispatch_once/v1) on stdout.")
    ] = False,
    limit: Annotated[
        str | None,
        typer.Option(
            "--limit",
            metavar="N",
            help="Most claims this run (overrides max_dispatches_per_run).",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)] = False,
) -> None:
    """Send each pending escalation handoff to the solvers who can take the dispute over, once, and exit.

    Run it from a timer every 30 s. Exit codes: 0 done, 1 internal error, 2 config or usage error,
    3 no relay reachable, 4 a send failed or a handoff is unroutable, 75 another run holds the lock.
    """
    from serbero_cli.dispatch.result import error_report

    seen: dict[str, bool | None] = {"enabled": None}

    def body() -> int:
        max_claims = _parse_limit(limit)
        config = load(ctx)
        seen["enabled"] = config.escalation.enabled
        maybe_init_nostr_logger(ctx)
        from serbero_cli.cli.render import show_result
        from serbero_cli.dispatch.run import run_dispatch_once

        result = run_dispatch_once(config, dry_run=dry_run, limit=max_claims)
        if json_output:
            emit_json(result.to_dict())
        else:
            show_result(
                exit_code=result.exit_code,
                quiet=quiet,
                table=lambda: render_dry_run(result) if dry_run else render_run(result),
                line=lambda: dispatch_line(result),
            )
        return result.exit_code

    execute(
        ctx,
        json_output=json_output,
        body=body,
        error_report=lambda code, error: error_report(
            code, error, dry_run=dry_run, enabled=seen["enabled"]
        ),
    )


def _parse_limit(value: str | None) -> int | None:
    # Parsed here, not by Typer, so a bad value still yields the one --json document (exit 2).
    from serbero_cli.errors import UsageError

    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise UsageError(f"--limit: expected a whole number of at least 1, got {value!r}")
    return int(text)


def dispatch_line(result: DispatchResult) -> str | None:
    """The one summary line (None for a real run with escalation disabled: nothing to say)."""
    from serbero_cli.cli.render import summary_line

    if not result.enabled and not result.dry_run:
        return None
    fields: dict[str, object] = (
        {"dry_run": "yes", "enabled": result.enabled} if result.dry_run else {}
    )
    if result.dry_run:
        sends = [h for h in result.handoffs if h.action in ("send", "resend")]
        fields |= {
            "would_send": sum(h.action == "send" for h in sends),
            "would_resend": sum(h.action == "resend" for h in sends),
        }
    fields |= {"handoffs": len(result.handoffs), **result.counts}
    if not result.dry_run:
        fields["failed_sends"] = result.failed_sends
    return summary_line("dispatch-once", {**fields, "exit": result.exit_code})


def _counts_line(result: DispatchResult) -> str:
    counts = dict(result.counts)
    if result.dry_run:
        # A dry run cannot know send outcomes: say what it would attempt instead.
        sends = [h for h in result.handoffs if h.action in ("send", "resend")]
        counts = {
            "would send": sum(h.action == "send" for h in sends),
            "would resend": counts["resends"],
            "DMs": sum(len(h.recipients) for h in sends),
            "would give up": counts["gave_up"],
            **{
                k: counts[k]
                for k in ("superseded", "unroutable", "parse_failed", "deferred", "in_flight")
            },
        }
    return "  ".join(f"{name} {count}" for name, count in counts.items())


def _short_note(text: str | None, limit: int = 48) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(title: str, columns: tuple[str, ...]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column != "note", overflow="ellipsis")
    return table


def render_run(result: DispatchResult) -> None:
    from serbero_cli.cli.render import plain

    out = console()
    if not result.enabled:
        out.print(
            plain(
                "dispatch-once: escalation is disabled ([escalation] enabled = false); nothing done"
            )
        )
        return
    table = _table(
        "dispatch-once",
        ("handoff", "dispute", "decision", "action", "status", "recipients", "note"),
    )
    for h in result.handoffs:
        ok = sum(1 for d in h.deliveries if d["ok"])
        note = h.detail or (f"{ok}/{len(h.deliveries)} accepted" if h.deliveries else "")
        table.add_row(
            *(
                plain(v)
                for v in (
                    h.handoff_event_id,
                    h.dispute_id[:12],
                    h.decision,
                    h.action,
                    h.status or "-",
                    ", ".join(r[:8] for r in h.recipients),
                    _short_note(note),
                )
            )
        )
    if result.handoffs:
        out.print(table)
    out.print(plain(_counts_line(result)))
    for url, why in result.relay_errors.items():
        out.print(plain(f"relay {url}: {why}"))


def render_dry_run(result: DispatchResult) -> None:
    """The dry run: pending-handoffs table, one panel per planned send with the exact body, a counts footer."""
    from rich.panel import Panel
    from rich.table import Table

    from serbero_cli.cli.render import plain

    out = console()
    state = "enabled" if result.enabled else "DISABLED: a real run would do nothing"
    out.print(plain(f"dispatch-once --dry-run (escalation {state}; nothing written or sent)"))
    table = _table(
        "Pending handoffs",
        ("id", "dispute", "session", "trigger", "decision", "action", "recipients", "note"),
    )
    for h in result.handoffs:
        table.add_row(
            *(
                plain(v)
                for v in (
                    h.handoff_event_id,
                    h.dispute_id[:12],
                    (h.session_id or "-")[:12],
                    (h.trigger or "-")[:20],
                    h.decision,
                    h.action,
                    ", ".join(r[:8] for r in h.recipients),
                    _short_note(h.detail),
                )
            )
        )
    out.print(table)
    for h in result.handoffs:
        if h.body is None:
            continue
        out.print(
            Panel(
                plain(h.body),
                title=plain(f"handoff {h.handoff_event_id}: {h.action} (exact body)"),
                title_align="left",
            )
        )
        recipients = Table()
        recipients.add_column("recipient (hex)")
        for pubkey in h.recipients:
            recipients.add_row(plain(pubkey))
        out.print(recipients)
    out.print(plain(_counts_line(result)))
