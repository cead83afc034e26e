"""Ctrl-C during training: the first press asks to stop at the end of the epoch (a clean,
exactly resumable checkpoint); the second stops at once. Once training is stopping (the final
checkpoint, then teardown), further presses are noted and do not cut that short."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from keisei import log


class StopRequested(KeyboardInterrupt):
    """Ctrl-C arrived; training stopped at the end of an epoch."""


class GracefulInterrupt:
    """First SIGINT: ask to stop after the epoch. Second: raise KeyboardInterrupt at once.
    During `stopping()`: only a log line."""

    def __init__(self) -> None:
        self.requested = False
        self._stopping = False

    @contextmanager
    def stopping(self) -> Iterator[None]:
        """The final checkpoint and teardown run inside: Ctrl-C does not interrupt them."""
        self._stopping = True
        try:
            yield
        finally:
            self._stopping = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            log.get_logger("trainer").warning(
                "Ctrl-C: training is already stopping; finishing the final checkpoint and "
                "teardown first (kill the process to abandon them)"
            )
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.get_logger("trainer").warning(
            "Ctrl-C: stopping at the end of this epoch (press Ctrl-C again to stop now)"
        )

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
