"""Whole games through the USI protocol: `keisei usi` subprocesses driven by the USI client."""

from __future__ import annotations

import subprocess
from pathlib import Path

from keisei.evaluation.players.usi_client import UsiEngine
from keisei.shogi import ShogiGame
from tests.support.checkpoints import save_checkpoint
from tests.usi.helpers import (
    DECLARATION_SFEN,
    MATED_SFEN,
    QUIT_S,
    REPO,
    engine_env,
    keisei_command,
    outcome_for,
)


def keisei_engine(run_dir: Path, name: str, **options: str) -> UsiEngine:
    return UsiEngine(
        keisei_command("usi", "--checkpoint", str(run_dir)),
        options=options,
        name=name,
        cwd=REPO,
        env=engine_env(),
        startup_timeout_s=120,
    )


def play_out(engines: tuple[UsiEngine, UsiEngine], nodes: tuple[int, int]) -> ShogiGame:
    """Play one game; the referee `ShogiGame` validates every move (IllegalMoveError fails)."""
    game = ShogiGame(max_plies=300)
    while not game.is_over:
        side = game.turn
        move = engines[side].best_move(game.usi_position(), nodes=nodes[side])
        assert move not in ("resign", "win"), f"{move} in a live position {game.sfen()}"
        game.push_usi(move)
    result = game.result
    assert result is not None
    for side, engine in enumerate(engines):
        engine.game_over(outcome_for(game, side))
    return game


def test_two_engines_play_a_whole_game_then_quit_cleanly(run_dir: Path) -> None:
    searcher = keisei_engine(run_dir, "search", Playouts="16", BatchSize="4")
    policy = keisei_engine(run_dir, "policy")
    with searcher, policy:
        assert searcher.engine_name is not None and searcher.engine_name.startswith("Keisei")
        assert {"Playouts", "BatchSize", "CPuct"} <= set(searcher.advertised_options)
        for engines in ((searcher, policy), (policy, searcher)):
            for engine in engines:
                engine.new_game()
            game = play_out(engines, nodes=(16, 16))
            assert game.result is not None and game.ply > 0
        info = searcher.last_info
        assert info is not None and "pv" in info and ("score cp" in info or "score mate" in info)
        # The same processes answer decided positions.
        assert searcher.best_move(f"sfen {DECLARATION_SFEN}", nodes=16) == "win"
        assert policy.best_move(f"sfen {MATED_SFEN}", nodes=1) == "resign"
        assert (
            policy.best_move("startpos moves 7g7f", nodes=1)
            in ShogiGame.from_usi_position("startpos moves 7g7f").legal_usi()
        )
        searcher.quit(timeout_s=QUIT_S)
        policy.quit(timeout_s=QUIT_S)
    assert searcher.returncode == 0 and policy.returncode == 0
    searcher.quit()  # idempotent


def test_engine_exits_on_end_of_input(run_dir: Path) -> None:
    done = subprocess.run(
        keisei_command("usi", "--checkpoint", str(run_dir)),
        input=b"usi\n\xff\xfe not UTF-8\nisready\nposition startpos\ngo byoyomi 100\n",
        capture_output=True,
        cwd=REPO,
        env=engine_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert any(line.startswith("info string error: unknown command") for line in lines)
    assert "usiok" in lines and "readyok" in lines
    assert lines[-1].startswith("bestmove ")
    # Protocol output only on stdout; the log goes to stderr.
    assert all(
        line.split()[0] in {"id", "option", "usiok", "readyok", "info", "bestmove"}
        for line in lines
    )


def test_missing_checkpoint_fails_before_the_protocol_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        keisei_command("usi", "--checkpoint", str(tmp_path / "missing")),
        input="usi\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=engine_env(),
        timeout=60,
    )
    assert done.returncode == 3
    assert "usiok" not in done.stdout
    assert "missing" in done.stderr


def test_unloadable_checkpoint_is_reported_at_isready(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run)
    (weights,) = run.glob("checkpoints/step_*/model.safetensors")
    weights.write_bytes(b"not safetensors")  # found at start-up, fails to load in the background
    done = subprocess.run(
        keisei_command("usi", "--checkpoint", str(run)),
        input="usi\nisready\ngo\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env=engine_env(),
        timeout=120,
    )
    assert done.returncode == 3
    assert "usiok" in done.stdout and "readyok" not in done.stdout
    assert "info string error: cannot load the agent" in done.stdout
