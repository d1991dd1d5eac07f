"""A background event loop so synchronous code (tests, the demo narrator) can drive async simulators."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop, started on first use in a daemon thread."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="serbero-sim-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = 60) -> T:
    """Run `coro` on the background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop()).result(timeout)


def spawn(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Start `coro` on the background loop without waiting; return its concurrent Future."""
    return asyncio.run_coroutine_threadsafe(coro, background_loop())
