"""Who plays evaluation games: what every player answers to.

A player answers `choose(game)` with a USI move, or `resign`. A player that cannot answer (an
engine that hangs or crashes) raises `PlayerFailure` with the end reason to record; the match
counts the game as lost by that player and goes on.
"""

from __future__ import annotations

from typing import Protocol

import cshogi

from keisei.shogi import ShogiGame

RESIGN = "resign"


class PlayerFailure(Exception):
    """The player could not produce a move; `reason` is recorded as the game's end reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Player(Protocol):
    name: str
    """Identity in the Elo registry (e.g. `random`, `first/step_000102400`)."""
    kind: str
    """`random`, `greedy`, `agent`, `checkpoint` or `usi`."""
    path: str | None
    step: int | None

    def new_game(self) -> None: ...

    def choose(self, game: ShogiGame) -> str: ...

    def close(self) -> None: ...


def label_usi(game: ShogiGame, label: int) -> str:
    """The USI spelling of the legal move with policy label `label`."""
    return str(cshogi.move_to_usi(game.move_for_label(label)))
