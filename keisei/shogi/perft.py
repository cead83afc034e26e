"""Perft: count move sequences of a given length, through the environment's label encoding.

Every node goes through `ShogiGame` exactly as the environment does (legal moves, their labels,
label -> move, push with rule checks) and checks that the legal moves map to distinct labels that
map back to the same moves. Entering-king declaration and the ply limit are off, as in standard
perft; a mated position simply has no moves.
"""

from __future__ import annotations

from keisei.shogi.errors import IllegalMoveError
from keisei.shogi.game import ShogiGame


def perft(sfen: str, depth: int) -> int:
    """Number of legal move sequences of length `depth` from `sfen` (`startpos` accepted)."""
    if depth < 0:
        raise ValueError(f"depth must be >= 0, not {depth}")
    game = ShogiGame(sfen, max_plies=None, declaration=False, name=f"perft {sfen}")
    return _count(game, depth)


def _count(game: ShogiGame, depth: int) -> int:
    if depth == 0:
        return 1
    labels = game.legal_labels().tolist()
    moves = game.legal_moves()
    if len(set(labels)) != len(labels) or min(labels, default=0) < 0:
        raise IllegalMoveError(labels, game=game.name, sfen=game.sfen(), detail="label collision")
    for label, move in zip(labels, moves, strict=True):
        if game.move_for_label(label) != move:
            raise IllegalMoveError(label, game=game.name, sfen=game.sfen(), detail="bad inverse")
    if depth == 1:
        return len(labels)
    total = 0
    for label in labels:
        game.push_label(label)
        total += _count(game, depth - 1)
        game.pop()
    return total
