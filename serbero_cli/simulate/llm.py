"""A scripted reasoning provider: a real HTTP server on 127.0.0.1 speaking the OpenAI and
Anthropic envelopes, for tests and `serbero demo`.

Tests push replies (status, headers, raw body, delay, dropped connection, or plain content that
is wrapped in the envelope of the path hit) and read back every request received. Health pings
(`ping` as the last user message) are answered without consuming the script unless told otherwise.
"""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OPENAI_PATHS = ("/v1/chat/completions", "/chat/completions")
ANTHROPIC_PATH = "/v1/messages"

_rationale_counter = itertools.count(1)


@dataclass
class Reply:
    """One scripted answer. `body` (bytes/str/dict) is sent as is; otherwise `content` or `blocks`
    is wrapped in the envelope of the path hit. `close_connection` drops the socket unanswered."""

    content: str | None = None
    blocks: list[dict[str, Any]] | None = None  # Anthropic content blocks, sent verbatim
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | str | dict[str, Any] | list[Any] | None = None
    delay: float = 0.0  # seconds to wait before answering
    close_connection: bool = False


@dataclass
class RecordedRequest:
    """A request as received: lowercase header names, the JSON body (None if not JSON), raw bytes."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float  # time.monotonic() on arrival

    @property
    def is_health(self) -> bool:
        return _last_user_content(self.body) == "ping"


Responder = Callable[[str, Any], Reply | None]


class LLMServer:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> serving the three provider paths."""

    def __init__(
        self,
        *,
        auto_health: bool = True,
        health_failures: int = 0,
        health_status: int = 200,
        responder: Responder | None = None,
    ):
        self.auto_health = auto_health
        self.health_failures = health_failures  # the next n health pings get 503 (or health_status)
        self.health_status = health_status  # status of every other health answer
        self.responder = responder  # asked when the queue is empty
        self.requests: list[RecordedRequest] = []
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LLMServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        # client hang-ups are expected; this one server instance stays quiet about them
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="serbero-sim-llm",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes delayed replies
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LLMServer is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return self.base_url + "/v1"

    # --- scripting ---------------------------------------------------------------------------
    def push(self, *replies: Reply | str) -> None:
        """Queue replies in order; a bare string is `Reply(content=...)`."""
        with self._lock:
            for reply in replies:
                self._queue.append(Reply(content=reply) if isinstance(reply, str) else reply)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def model_requests(self, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests that are not health pings, optionally only those to `path`."""
        with self._lock:
            return [
                r for r in self.requests if not r.is_health and (path is None or r.path == path)
            ]

    def health_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.is_health]

    # --- serving -----------------------------------------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = handler.path.split("?", 1)[0]
        record = RecordedRequest(
            path, {k.lower(): v for k, v in handler.headers.items()}, body, raw, time.monotonic()
        )
        with self._lock:
            self.requests.append(record)
        reply = self._choose(path, record)
        if reply.delay > 0 and self._stopping.wait(reply.delay):
            handler.close_connection = True
            return
        if reply.close_connection:
            handler.close_connection = True
            return
        payload, content_type = self._payload(path, body, reply)
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True  # the client gave up (timeout); nothing to answer

    def _choose(self, path: str, record: RecordedRequest) -> Reply:
        if path not in OPENAI_PATHS and path != ANTHROPIC_PATH:
            return Reply(status=404, body={"error": {"message": f"no route {path}"}})
        if self.auto_health and record.is_health:
            with self._lock:
                failing = self.health_failures > 0
                if failing:
                    self.health_failures -= 1
            if failing:
                status = self.health_status if self.health_status != 200 else 503
                return Reply(status=status, body={"error": {"message": "simulated health failure"}})
            if self.health_status != 200:
                return Reply(
                    status=self.health_status,
                    body={"error": {"message": "simulated health failure"}},
                )
            return Reply(content="pong")
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
        if reply is None and self.responder is not None:
            reply = self.responder(path, record.body)
        if reply is None:
            return Reply(
                status=500, body={"error": {"message": "LLMServer: no scripted reply left"}}
            )
        return reply

    def _payload(self, path: str, request_body: Any, reply: Reply) -> tuple[bytes, str]:
        if reply.body is not None:
            if isinstance(reply.body, bytes):
                return reply.body, "application/octet-stream"
            if isinstance(reply.body, str):
                return reply.body.encode("utf-8"), "text/plain; charset=utf-8"
            return json.dumps(reply.body).encode("utf-8"), "application/json"
        if not 200 <= reply.status < 300 and reply.content is None and reply.blocks is None:
            error = {"error": {"type": "simulated", "message": f"simulated status {reply.status}"}}
            return json.dumps(error).encode("utf-8"), "application/json"
        model = request_body.get("model", "sim") if isinstance(request_body, dict) else "sim"
        if path == ANTHROPIC_PATH:
            blocks = (
                reply.blocks
                if reply.blocks is not None
                else [{"type": "text", "text": reply.content or ""}]
            )
            envelope: dict[str, Any] = {
                "id": "msg_sim",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            }
        else:
            envelope = {
                "id": "chatcmpl-sim",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content or ""},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        return json.dumps(envelope, ensure_ascii=False).encode("utf-8"), "application/json"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the client's delayed
    # ACK adds ~40 ms to every answer.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.server.owner._handle(self)  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
        pass  # tests read .requests; stderr stays clean


def classification_json(
    label: str,
    confidence: float,
    action: str,
    buyer: str | None = None,
    seller: str | None = None,
    flags: Iterable[str] = (),
    rationale: str | None = None,
    detail: str | None = None,
) -> str:
    """A classification answer as the model would write it. Each call gets a distinct rationale by default."""
    obj: dict[str, Any] = {
        "classification": label,
        "confidence": confidence,
        "suggested_action": action,
    }
    if buyer is not None:
        obj["buyer_clarification"] = buyer
    if seller is not None:
        obj["seller_clarification"] = seller
    if detail is not None:
        obj["suggested_action_detail"] = detail
    obj["flags"] = list(flags)
    obj["rationale"] = (
        rationale
        if rationale is not None
        else f"scripted rationale #{next(_rationale_counter)}: {label}"
    )
    return json.dumps(obj, ensure_ascii=False)


def summary_text(summary: str, next_step: str, rationale: str) -> str:
    """A summary answer: summary, then the next-step line, then the rationale line."""
    return f"{summary}\nSUGGESTED_NEXT_STEP: {next_step}\nRATIONALE: {rationale}"


def unused_port() -> int:
    """A loopback port nothing listens on (bound then released), for "closed port" cases."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _last_user_content(body: Any) -> Any:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    for message in reversed(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            return message.get("content")
    return None
