"""How long to think about one move, from the clocks a `go` command gives.

A simple, safe rule: spend a slice of the remaining time plus the byoyomi or increment that comes
back anyway, and keep `overhead_ms` in reserve for the network evaluation in flight and the pipe
to the GUI. Never plan past what the clock allows; never below a few milliseconds.
"""

from __future__ import annotations

from typing import Final

from keisei.usi.protocol import GoCommand

MOVES_TO_GO: Final[int] = 30
"""Assume this many more own moves when dividing the main time."""
MIN_THINK_MS: Final[int] = 5


def think_time_ms(go: GoCommand, side: int, overhead_ms: int = 100) -> int | None:
    """Milliseconds to search for `side` (0 black, 1 white), or None when `go` sets no time
    limit (`go nodes ...`, bare `go`, `infinite` and `ponder` until ponderhit)."""
    if go.movetime is not None:
        return max(go.movetime - overhead_ms, MIN_THINK_MS)
    if not go.has_time_limit:
        return None
    remaining = go.remaining_ms(side) or 0
    byoyomi = go.byoyomi or 0
    increment = go.increment_ms(side)
    planned = remaining // MOVES_TO_GO + byoyomi + increment
    hard_limit = remaining + byoyomi + increment - overhead_ms
    budget = min(planned - overhead_ms, hard_limit)
    return max(budget, MIN_THINK_MS)
