"""Sennichite bookkeeping: how often each position has occurred along the current line of play.

cshogi's `is_draw()` fires on the *first* repetition; the official rule needs the fourth
occurrence of the same position (board, hands, side to move — cshogi's Zobrist key covers all
three). The tracker keeps one key and one "in check" flag per position so that `pop()` can undo
exactly, and so that, at the fourth occurrence, it can tell whether one side gave check with every
one of its moves since the position first occurred (perpetual check, which loses; JSA rule:
"in the sequence in which the same position appeared four times, all of one side's moves were
checks").
"""

from __future__ import annotations

from typing import Final

SENNICHITE_OCCURRENCES: Final[int] = 4


class RepetitionTracker:
    """Occurrence counts for the positions of one game, undoable move by move."""

    __slots__ = ("_counts", "_keys", "_in_check", "_first_mover")

    def __init__(self, start_key: int, start_in_check: bool, side_to_move: int) -> None:
        self._counts: dict[int, int] = {start_key: 1}
        self._keys: list[int] = [start_key]
        self._in_check: list[bool] = [start_in_check]
        self._first_mover = side_to_move

    def push(self, key: int, in_check: bool) -> int:
        """Record the position reached by a move; returns how often it has now occurred."""
        count = self._counts.get(key, 0) + 1
        self._counts[key] = count
        self._keys.append(key)
        self._in_check.append(in_check)
        return count

    def pop(self) -> None:
        """Forget the last recorded position (the move that reached it was undone)."""
        if len(self._keys) == 1:
            raise IndexError("no move to undo")
        key = self._keys.pop()
        self._in_check.pop()
        count = self._counts[key] - 1
        if count:
            self._counts[key] = count
        else:
            del self._counts[key]

    def occurrences(self, key: int | None = None) -> int:
        """How often `key` (default: the current position) has occurred so far."""
        return self._counts.get(self._keys[-1] if key is None else key, 0)

    def perpetual_checker(self) -> int | None:
        """The color (0/1) that gave check with all its moves since the current position first
        occurred, or None. When both did (counter-checks throughout), nobody is singled out."""
        key = self._keys[-1]
        first = self._keys.index(key)
        last = len(self._keys) - 1
        if first == last:
            return None
        checkers = []
        for color in (0, 1):
            # Move j (reaching position j) was made by the first mover when j is odd.
            next_is_first_mover = (first + 1) % 2 == 1
            start = first + 1 if next_is_first_mover == (color == self._first_mover) else first + 2
            moves = range(start, last + 1, 2)
            if all(self._in_check[j] for j in moves):
                checkers.append(color)
        return checkers[0] if len(checkers) == 1 else None
