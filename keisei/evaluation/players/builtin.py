"""The built-in players: uniformly random (the fixed reference of the rating scale) and greedy."""

from __future__ import annotations

import cshogi
import numpy as np

from keisei.evaluation.players.base import label_usi
from keisei.shogi import ShogiGame, capture_value, mate_in_one


class RandomPlayer:
    """Uniform over legal moves: the fixed reference of the rating scale."""

    kind = "random"
    path = None
    step = None

    def __init__(self, seed: int = 0, name: str = "random") -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        labels = game.legal_labels()
        return label_usi(game, int(labels[self._rng.integers(len(labels))]))

    def close(self) -> None:
        pass


class GreedyPlayer:
    """Mates in one if it can, else takes the most valuable piece it can, else plays randomly."""

    kind = "greedy"
    path = None
    step = None

    def __init__(self, seed: int = 0, name: str = "greedy") -> None:
        self.name = name
        self._rng = np.random.default_rng(seed)

    def new_game(self) -> None:
        pass

    def choose(self, game: ShogiGame) -> str:
        mate = mate_in_one(game)
        if mate is not None:
            return label_usi(game, mate)
        moves = game.legal_moves()
        values = np.array([capture_value(move) for move in moves])
        best = np.flatnonzero(values == values.max()) if values.max() > 0 else np.arange(len(moves))
        return str(cshogi.move_to_usi(moves[int(best[self._rng.integers(len(best))])]))

    def close(self) -> None:
        pass
