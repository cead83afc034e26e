"""A private asyncio event loop on a background thread.

Async callbacks run on this loop, so dispatching them works the same from plain synchronous code
and from code already inside a running event loop (`asyncio.run(main())`, a notebook cell), with
no `asyncio.run()` per step: the caller submits a coroutine and waits for its result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundEventLoop:
    """Starts its thread on first use; `close()` stops it (and it may be started again later)."""

    def __init__(self, name: str = "keisei-callbacks") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coroutine` on the background loop and return its result."""
        loop = self._ensure_started()
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("BackgroundEventLoop.run() called from its own loop thread")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    @property
    def running(self) -> bool:
        return self._loop is not None

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
