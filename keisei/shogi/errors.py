"""Errors raised by the game layer: a move that is not legal where it was asked for."""

from __future__ import annotations


class IllegalMoveError(ValueError):
    """A move (policy label, USI string or cshogi move) that is not legal in the position.

    Raised before the board is touched: cshogi's `push()` does not validate and would corrupt the
    position. The message names the move, the game and the position's SFEN.
    """

    def __init__(self, move: object, *, game: str, sfen: str, detail: str = "") -> None:
        self.move = move
        self.game = game
        self.sfen = sfen
        self.detail = detail
        text = f"illegal move {move!r} in game {game!r} at position sfen {sfen}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
