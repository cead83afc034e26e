from __future__ import annotations

import cshogi
import numpy as np
import pytest


def random_playout_sfens(seed: int, games: int, plies: int, every: int) -> list[str]:
    """Positions from uniformly random games played with raw cshogi (independent of keisei)."""
    rng = np.random.default_rng(seed)
    sfens = []
    board = cshogi.Board()
    for _ in range(games):
        board.reset()
        for ply in range(plies):
            moves = list(board.legal_moves)
            if not moves or board.is_nyugyoku():
                break
            board.push(moves[int(rng.integers(len(moves)))])
            if ply % every == every - 1 and list(board.legal_moves):
                sfens.append(board.sfen())
    return sfens


@pytest.fixture(scope="session")
def random_sfens() -> list[str]:
    """About 300 varied positions, both sides to move, many with pieces in hand."""
    return random_playout_sfens(seed=7, games=40, plies=240, every=31)
