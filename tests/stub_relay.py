"""A tiny loopback WebSocket relay for the cases LocalRelay cannot play: one that accepts the
connection and then never answers, and one that serves events LocalRelay would refuse to store.

Written on asyncio streams (RFC 6455 framing by hand), so it needs no extra dependency. It runs
on the simulators' background loop; `start_stub_relay()` returns a handle with its URL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from serbero_cli.simulate import aio

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class StubRelay:
    """`silent`: complete the handshake, then answer nothing. Otherwise every REQ gets `events`
    (raw event JSON objects, unfiltered) then EOSE, and every EVENT gets OK=false."""

    silent: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    requests: int = 0
    server: Any = None
    _writers: set = field(default_factory=set)

    async def start(self, port: int = 0) -> StubRelay:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self.server.close()
        for writer in list(self._writers):
            writer.close()
        await self.server.wait_closed()

    def shutdown(self) -> None:
        aio.run(self.stop())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._handshake(reader, writer)
            while True:
                opcode, payload = await _read_frame(reader)
                if opcode == 0x8:
                    return
                if opcode == 0x9:
                    writer.write(_frame(0xA, payload))
                elif opcode == 0x1:
                    await self._on_message(json.loads(payload.decode()), writer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        await writer.drain()

    async def _on_message(self, message: list[Any], writer: asyncio.StreamWriter) -> None:
        if message[0] == "REQ":
            self.requests += 1
        if self.silent:
            return
        if message[0] == "REQ":
            for event in self.events:
                writer.write(_frame(0x1, json.dumps(["EVENT", message[1], event]).encode()))
            writer.write(_frame(0x1, json.dumps(["EOSE", message[1]]).encode()))
        elif message[0] == "EVENT":
            writer.write(
                _frame(
                    0x1,
                    json.dumps(["OK", message[1].get("id", ""), False, "blocked: stub"]).encode(),
                )
            )


def start_stub_relay(
    *, silent: bool = False, events: list[dict[str, Any]] | None = None, port: int = 0
) -> StubRelay:
    """Start a stub relay on 127.0.0.1 (`port`, else a random one) on the background loop."""
    return aio.run(StubRelay(silent=silent, events=list(events or [])).start(port))


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 65536:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload
