"""When a search must stop: a playout budget, a deadline, or `stop` from the GUI.

Kept apart from the search (no torch import) so the protocol loop can hold and change limits
while the network is still loading or a search runs in another thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Final

MAX_PLAYOUTS: Final[int] = 200_000
"""Hard cap for `go infinite` (bounds the tree's memory); the search then waits for `stop`."""


@dataclass
class SearchControl:
    """Limits of one search. The protocol thread may change them while it runs (`stop`,
    `ponderhit`); plain attribute writes are atomic under the GIL."""

    max_playouts: int = 0
    deadline: float | None = None
    """`time.monotonic()` at which to stop, or None."""
    stop: threading.Event = field(default_factory=threading.Event)

    def should_stop(self, playouts: int) -> bool:
        if self.stop.is_set() or playouts >= self.max_playouts:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline
