"""A small relay pool over nostr_sdk's Client: connect, fetch with filters given as dicts, publish.

`sent` in Serbero means a relay answered OK=true (docs/delivery.md#outbox), so `publish()` returns who
accepted and who rejected with what reason; most failures in nostr_sdk are not exceptions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import nostr_sdk as ns

from serbero_cli.nostr.events import NostrEvent, from_sdk

logger = logging.getLogger(__name__)


@dataclass
class ConnectResult:
    connected: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class FetchResult:
    """Events from a fetch, and the relays that answered it (sent an event or EOSE)."""

    events: list[NostrEvent]
    answered: set[str]


@dataclass
class PublishOutcome:
    """Result of one publish: event id, relays that said OK=true, and reasons from the others."""

    event_id: str
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # set when the event could not even be built

    @property
    def ok(self) -> bool:
        return bool(self.accepted)

    def error_message(self) -> str:
        """`no relay accepted: wss://a: blocked: …; wss://b: timeout`: what a failed row records."""
        if self.error:
            return self.error
        reasons = "; ".join(f"{url}: {why}" for url, why in sorted(self.rejected.items()))
        return "no relay accepted" + (f": {reasons}" if reasons else "")


def _url(value: Any) -> str:
    text = str(value)
    return text.rstrip("/") if text.count("/") <= 3 else text


class RelayPool:
    """One nostr_sdk Client on the configured relays. Use `async with` or call `close()`."""

    def __init__(self, relays: list[str] | tuple[str, ...]):
        self.urls = [u.strip() for u in relays]
        self.client = ns.Client()
        self._added = False
        self._extra_added: set[str] = set()
        self._usable: list[str] = []  # configured relays that parsed and were added
        self._targets: dict[tuple[str, ...], Any] = {}

    async def __aenter__(self) -> RelayPool:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def connect(self, timeout_seconds: float) -> ConnectResult:
        """Try every relay at once within the timeout; report which connected."""
        result = ConnectResult()
        if not self._added:
            for url in self.urls:
                try:
                    await self.client.add_relay(ns.RelayUrl.parse(url))
                    self._usable.append(url)
                except Exception as exc:  # noqa: BLE001 - a bad URL must not stop the others
                    result.failed[url] = f"invalid relay url: {exc}"
            self._added = True
        out = await self.client.try_connect(timedelta(seconds=timeout_seconds))
        result.connected = [_url(u) for u in out.success]
        result.failed.update({_url(u): str(why) for u, why in out.failed.items()})
        return result

    async def connected_count(self) -> int:
        relays = await self.client.relays()
        return sum(1 for r in relays.values() if r.status() == ns.RelayStatus.CONNECTED)

    async def fetch_raw(self, filters: list[dict[str, Any]], timeout_seconds: float) -> list[Any]:
        """nostr_sdk Events matching any of `filters` (NIP-01 JSON dicts), merged and de-duplicated."""
        sdk_filters = [ns.Filter.from_json(json.dumps(f)) for f in filters]
        events = await self.client.fetch_events(
            ns.ReqTarget.auto(sdk_filters), timeout=timedelta(seconds=timeout_seconds)
        )
        seen: set[str] = set()
        unique = []
        for ev in events:
            eid = ev.id().to_hex()
            if eid not in seen:
                seen.add(eid)
                unique.append(ev)
        return unique

    async def fetch(
        self, filters: list[dict[str, Any]], timeout_seconds: float
    ) -> list[NostrEvent]:
        """Like fetch_raw, as plain NostrEvent data."""
        return [from_sdk(ev) for ev in await self.fetch_raw(filters, timeout_seconds)]

    async def fetch_answered(
        self, filters: list[dict[str, Any]], timeout_seconds: float, expected: list[str]
    ) -> FetchResult:
        """Like fetch, and tell which relays answered the request (an event or EOSE) in time.

        A relay can accept the connection and then never answer a REQ; the merged fetch cannot
        tell that apart from "no events", so the relay messages seen meanwhile are tallied per URL.
        `expected` are the connected relays whose answers are worth waiting a moment for.
        """
        stream = self.client.notifications()
        answered: set[str] = set()
        tally = asyncio.ensure_future(_tally_answers(stream, answered, {_url(u) for u in expected}))
        try:
            raw = await self.fetch_raw(filters, timeout_seconds)
            # The pool forwards each relay message as it handles it; let the tally catch up.
            await _settle(answered, expected, tally)
        finally:
            tally.cancel()
            outcome = (await asyncio.gather(tally, return_exceptions=True))[0]
        lost_track = isinstance(
            outcome, Exception
        )  # a cancelled tally ends with CancelledError, not this
        if lost_track or (raw and not answered):
            # The tally lost track (a lagging notification channel): never call a relay silent on that.
            logger.debug(
                "relay answers unknown (%r); counting every connected relay as answered", outcome
            )
            answered.update(_url(u) for u in expected)
        return FetchResult([from_sdk(ev) for ev in raw], answered)

    async def statuses(self) -> dict[str, str]:
        """Each configured relay's connection status, lowercase (`connected`, `disconnected`, …).
        Recipients' inbox relays, added for publishing only, are not reported."""
        relays = await self.client.relays()
        return {
            _url(url): _status_name(relay.status())
            for url, relay in relays.items()
            if _url(url) in self._configured
        }

    async def publish(
        self, event: Any, timeout_seconds: float, *, extra_relays: Sequence[str] = ()
    ) -> PublishOutcome:
        """Send a signed nostr_sdk Event to the configured relays and wait for their OKs.

        `extra_relays` (a recipient's DM inbox relays) get the same event, best effort: their
        answers never decide the outcome. A relay that answers OK=false with a `duplicate:` reason
        already holds the event, which is what a republish wants: it counts as accepted.
        """
        event_id = event.id().to_hex()
        extra = [u for u in dict.fromkeys(extra_relays) if _url(u) not in self._configured]
        if not self._usable:
            return PublishOutcome(event_id, rejected={u: "invalid relay url" for u in self.urls})
        if not extra:
            return await self._send(event, self._usable, timeout_seconds)
        outcome, _ = await asyncio.gather(
            self._send(event, self._usable, timeout_seconds),
            self._send_extra(event, extra, timeout_seconds),
        )
        return outcome

    async def publish_json(
        self, event_json: str, timeout_seconds: float, *, extra_relays: Sequence[str] = ()
    ) -> PublishOutcome:
        """Publish a stored, signed event again, byte for byte (see `publish`)."""
        try:
            event = ns.Event.from_json(event_json)
        except Exception as exc:  # noqa: BLE001 - a stored event that no longer parses
            return PublishOutcome("", error=f"stored event unreadable: {_short_error(exc)}")
        return await self.publish(event, timeout_seconds, extra_relays=extra_relays)

    @property
    def _configured(self) -> set[str]:
        return {_url(u) for u in self.urls}

    def _target(self, urls: Sequence[str]) -> Any:
        """The SDK target for `urls`, built once per relay set (a backlog sends thousands of events)."""
        key = tuple(urls)
        if key not in self._targets:
            if len(self._targets) >= 64:
                self._targets.clear()
            self._targets[key] = ns.SendEventTarget.to([ns.RelayUrl.parse(u) for u in urls])
        return self._targets[key]

    async def _send(
        self, event: Any, urls: Sequence[str], timeout_seconds: float
    ) -> PublishOutcome:
        event_id = event.id().to_hex()
        try:
            target = self._target(urls)
            out = await asyncio.wait_for(
                self.client.send_event(
                    event, target=target, ok_timeout=timedelta(seconds=timeout_seconds)
                ),
                timeout=timeout_seconds + 5,
            )
        except TimeoutError:
            return PublishOutcome(event_id, rejected={u: "timeout" for u in urls})
        except Exception as exc:  # noqa: BLE001 - NostrSdkError: record as a failed send
            return PublishOutcome(event_id, rejected={u: _short_error(exc) for u in urls})
        accepted = [_url(u) for u in out.success]
        rejected = {}
        for url, why in out.failed.items():
            reason = _short_error(why)
            if reason.startswith("duplicate:"):
                accepted.append(_url(url))
            else:
                rejected[_url(url)] = reason
        return PublishOutcome(event_id, accepted=accepted, rejected=rejected)

    async def add_extra_relays(self, urls: Sequence[str]) -> None:
        """Start connecting to relays outside the configured set (recipients' inbox relays), in the
        background. They are write-only, so no fetch or subscription ever reads from them."""
        new = [
            u
            for u in dict.fromkeys(urls)
            if u not in self._extra_added and _url(u) not in self._configured
        ]
        for url in new:
            try:
                await self.client.add_relay(
                    ns.RelayUrl.parse(url), capabilities=ns.RelayCapabilities.write()
                )
            except Exception as exc:  # noqa: BLE001 - a bad inbox URL is skipped, never fatal
                logger.debug("inbox relay=%s not added: %s", url, _short_error(exc))
                continue
            self._extra_added.add(url)
        if new:
            await self.client.connect()  # returns at once; connections come up meanwhile

    async def _send_extra(self, event: Any, urls: list[str], timeout_seconds: float) -> None:
        """Best effort to the inbox relays that are connected now: one still connecting or down
        never delays a delivery."""
        await self.add_extra_relays(urls)
        try:
            relays = await self.client.relays()
            up = [
                u
                for u in urls
                if any(
                    _url(k) == _url(u) and r.status() == ns.RelayStatus.CONNECTED
                    for k, r in relays.items()
                )
            ]
            if not up:
                return
            outcome = await self._send(event, up, timeout_seconds)
        except Exception as exc:  # noqa: BLE001 - an inbox relay never fails a delivery
            logger.debug("inbox relays: publish raised %s", _short_error(exc))
            return
        for url, why in outcome.rejected.items():
            logger.debug("inbox relay=%s did not take event=%s: %s", url, outcome.event_id[:8], why)

    async def subscribe(self, filters: list[dict[str, Any]]) -> None:
        sdk_filters = [ns.Filter.from_json(json.dumps(f)) for f in filters]
        await self.client.subscribe(ns.ReqTarget.auto(sdk_filters))

    async def next_event(self, stream: Any, timeout_seconds: float) -> Any | None:
        """The next NEW_EVENT from a notifications stream, or None on timeout."""
        try:
            note = await asyncio.wait_for(stream.next(), timeout=timeout_seconds)
        except TimeoutError:
            return None
        if note is not None and note.is_new_event():
            return note.event
        return None

    def notifications(self) -> Any:
        return self.client.notifications()

    async def close(self) -> None:
        try:
            await self.client.shutdown()
        except Exception:  # noqa: BLE001 - closing must never fail a run
            logger.debug("relay pool shutdown raised", exc_info=True)


async def _tally_answers(stream: Any, answered: set[str], expected: set[str]) -> None:
    """Note each relay that answers; stop once every expected one has (a backlog of events would
    otherwise pass through Python one notification at a time)."""
    while not expected <= answered:
        note = await stream.next()
        if note is None:
            return
        if note.is_message():
            message = note.message.as_enum()
            if message.is_event_msg() or message.is_end_of_stored_events():
                answered.add(_url(note.relay_url))
        elif note.is_new_event():
            answered.add(_url(note.relay_url))


async def _settle(
    answered: set[str], urls: list[str], tally: asyncio.Future, *, seconds: float = 0.2
) -> None:
    """Give the tally up to `seconds` to see the answers of relays not yet counted."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not tally.done() and any(_url(u) not in answered for u in urls):
        if asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.01)


def _status_name(status: Any) -> str:
    return str(status).rsplit(".", 1)[-1].lower()


def _short_error(exc: Any) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text[:300]
