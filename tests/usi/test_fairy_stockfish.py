"""A real match: `keisei usi` against Fairy-Stockfish, both through the USI client, every move
checked by a referee `ShogiGame`. Skipped only when Fairy-Stockfish is absent outside CI."""

from __future__ import annotations

from pathlib import Path

from keisei.evaluation.players.usi_client import UsiEngine
from keisei.shogi import ShogiGame
from tests.support.engines import fairy_stockfish
from tests.usi.helpers import QUIT_S, REPO, engine_env, keisei_command, outcome_for

FSF_NODES = 300


def test_match_against_fairy_stockfish_completes_with_legal_moves(run_dir: Path) -> None:
    stockfish = UsiEngine(
        [fairy_stockfish()],
        options={"UCI_Variant": "shogi", "Threads": "1", "Hash": "16"},
        name="fairy-stockfish",
    )
    keisei = UsiEngine(
        keisei_command("usi", "--checkpoint", str(run_dir)),
        options={"Playouts": "8", "BatchSize": "8"},
        name="keisei",
        cwd=REPO,
        env=engine_env(),
        startup_timeout_s=120,
    )
    finished = []
    with stockfish, keisei:
        assert stockfish.engine_name is not None and "Fairy-Stockfish" in stockfish.engine_name
        for players in ((keisei, stockfish), (stockfish, keisei)):
            for engine in players:
                engine.new_game()
            game = ShogiGame(max_plies=400)
            resigned = None
            while not game.is_over:
                engine = players[game.turn]
                move = engine.best_move(game.usi_position(), nodes=FSF_NODES)
                if move == "resign":
                    assert engine is stockfish, f"Keisei resigned a live game: {game.sfen()}"
                    resigned = game.turn
                    break
                assert move != "win", f"{engine.name} claimed a win in {game.sfen()}"
                game.push_usi(move)  # IllegalMoveError here fails the test
            assert game.is_over or resigned
            assert game.ply > 0
            finished.append((game.result, resigned, game.usi_moves))
            for side, engine in enumerate(players):
                engine.game_over(outcome_for(game, side, resigned))
        assert len(finished) == 2  # both colours, every move legal, both games over
        keisei.quit(timeout_s=QUIT_S)
    assert keisei.returncode == 0
