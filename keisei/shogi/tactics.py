"""Small tactical facts a greedy opponent needs: material values, captures, mate in one."""

from __future__ import annotations

from typing import Final

import cshogi

from keisei.shogi.game import ShogiGame

PIECE_VALUES: Final[dict[int, int]] = {
    cshogi.PAWN: 1,
    cshogi.LANCE: 3,
    cshogi.KNIGHT: 4,
    cshogi.SILVER: 5,
    cshogi.GOLD: 6,
    cshogi.BISHOP: 8,
    cshogi.ROOK: 10,
    cshogi.KING: 0,
    cshogi.PROM_PAWN: 6,
    cshogi.PROM_LANCE: 6,
    cshogi.PROM_KNIGHT: 6,
    cshogi.PROM_SILVER: 6,
    cshogi.PROM_BISHOP: 10,
    cshogi.PROM_ROOK: 12,
}
"""Rough material value of each cshogi piece type (unpromoted and promoted), pawn = 1."""


def captured_piece(move: int) -> int:
    """The cshogi piece type a move captures (0 when it captures nothing)."""
    return int(cshogi.move_cap(move))


def capture_value(move: int) -> int:
    """Material value of the piece a move captures (0 for a non-capture)."""
    return PIECE_VALUES.get(captured_piece(move), 0)


def gives_mate(game: ShogiGame, label: int) -> bool:
    """Whether playing the legal move `label` checkmates (tried on a copy, the game is untouched).

    Checkmate by a pawn drop is illegal (uchifuzume), so such a label is never legal to begin
    with and this raises IllegalMoveError like any other illegal label.
    """
    move = game.move_for_label(label)
    board = game.board_copy()
    board.push(move)
    return bool(board.is_check()) and not any(True for _ in board.legal_moves)


def mate_in_one(game: ShogiGame) -> int | None:
    """A label that checkmates at once, or None (cshogi's 1-ply mate search, checked legal)."""
    if game.is_over:
        return None
    move = game.board_copy().mate_move_in_1ply()
    if not move or move not in game.legal_moves():
        return None
    label = game.label_for_move(move)
    return label if gives_mate(game, label) else None
