"""Shared pieces for the USI tests: engine commands, positions, random games."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from keisei.shogi import ShogiGame

REPO = Path(__file__).resolve().parents[2]
DECLARATION_SFEN = "RRBB1GGGG/SS2K4/9/9/9/9/9/9/8k b 2P2s4n4l16p 1"
"""Black's king in the enemy camp with ten pieces there and 28 points: Black declares and wins."""
MATED_SFEN = "4k4/4G4/4P4/9/9/9/9/9/4K4 w - 1"
"""White to move and checkmated (gold on 5b supported by the pawn on 5c)."""
MATE_IN_ONE_SFEN = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"
"""Black mates with G*5b."""
QUIT_S = 60.0
"""How long a test whose `keisei usi` must exit cleanly (code 0) waits for it after `quit`: on a
busy machine the process can take longer than the client's default 5 s to shut torch down, and
is then terminated (-15), which is not what such a test checks."""


def keisei_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "keisei.cli", *args]


def engine_env() -> dict[str, str]:
    """The environment for engine subprocesses: the repo importable, one torch thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def random_game(seed: int, plies: int) -> ShogiGame:
    """A game of uniformly random legal moves, stopped early rather than let it finish."""
    rng = np.random.default_rng(seed)
    game = ShogiGame(max_plies=None)
    while game.ply < plies:
        for move in rng.permutation(game.legal_moves()):
            game.push_move(int(move))
            if not game.is_over:
                break
            game.pop()
        else:
            break  # every move would end the game
    return game


def outcome_for(game: ShogiGame, side: int, resigned: int | None = None) -> str:
    """`win`, `lose` or `draw` for `side` (0 black, 1 white), as USI's `gameover` says it."""
    if resigned is not None:
        return "lose" if resigned == side else "win"
    result = game.result
    if result is None or result.winner is None:
        return "draw"
    return "win" if result.winner == ("black", "white")[side] else "lose"
