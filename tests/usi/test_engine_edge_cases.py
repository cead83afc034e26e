"""Protocol edge cases against one `keisei usi` subprocess: bad input, stop during infinite,
ponder, long move lists. Ordering is checked (what comes before `readyok`), never timing."""

from __future__ import annotations

import pytest

from keisei.evaluation.players.usi_client import UsiEngine
from keisei.shogi import ShogiGame
from tests.usi.helpers import random_game

WAIT_S = 60.0


def sync(engine: UsiEngine) -> list[str]:
    """Everything the engine said before answering `isready`."""
    engine.send_line("isready")
    return engine.read_until("readyok", WAIT_S, "isready")[:-1]


def go(engine: UsiEngine, command: str = "go btime 0 wtime 0 byoyomi 200") -> str:
    engine.send_line(command)
    return engine.read_until("bestmove", WAIT_S, "go")[-1].split()[1]


def set_playouts(engine: UsiEngine, playouts: int) -> None:
    engine.send_line(f"setoption name Playouts value {playouts}")
    assert not [line for line in sync(engine) if "error" in line]


BAD_INPUT = [
    "position startpos moves 7g7f 3c3d 7g7f",  # illegal move
    "position startpos moves 7g7f 3c3d 2g2f 8c8d 9z9z",  # malformed move
    "position sfen lnsgkgsnl/9/9 b - 1",  # truncated SFEN
    "position sfen 9/9/9/9/9/9/9/9/9 b - 1",  # no kings
    "position sfen lnsgkgsnl/1r5b1/ppppppppp/9/9/9/PPPPPPPPP/1B5R1/LNSGKGSNL q - 1",
    "position",
    "position moves 7g7f",
    "frobnicate now",
    "go sideways",
    "go btime",
    "setoption name Playouts value lots",
    "setoption name Playouts value -3",
    "setoption name NoSuchOption value 1",
    "setoption",
    "位置 startpos",
]


@pytest.mark.parametrize("command", BAD_INPUT)
def test_bad_input_is_reported_and_changes_nothing(engine: UsiEngine, command: str) -> None:
    valid = "startpos moves 7g7f 3c3d 8h2b+"  # White to move: a Black move would be illegal
    engine.send_line(f"position {valid}")
    assert sync(engine) == []
    engine.send_line(command)
    said = sync(engine)
    assert len(said) == 1 and said[0].startswith("info string error"), said
    if command.startswith("position"):
        # No position to search: `go` resigns rather than move in the previous one.
        assert go(engine) == "resign"
        return
    # Still the position from before, still the default options: a legal policy move.
    move = go(engine)
    assert move in ShogiGame.from_usi_position(valid).legal_usi()


def test_blank_lines_and_stray_stop_are_ignored(engine: UsiEngine) -> None:
    for line in ("", "   ", "stop", "ponderhit", "gameover draw"):
        engine.send_line(line)
    assert sync(engine) == []


@pytest.mark.parametrize("playouts", [0, 200])
def test_stop_during_infinite(engine: UsiEngine, playouts: int) -> None:
    set_playouts(engine, playouts)
    try:
        engine.send_line("position startpos moves 2g2f")
        engine.send_line("go infinite")
        # An infinite search answers isready but never gives its move before `stop`.
        before_stop = sync(engine)
        assert not [line for line in before_stop if line.startswith("bestmove")]
        engine.send_line("stop")
        lines = before_stop + engine.read_until("bestmove", WAIT_S, "stop")
        move = lines[-1].split()[1]
        assert move in ShogiGame.from_usi_position("startpos moves 2g2f").legal_usi()
        infos = [line for line in lines if line.startswith("info depth")]
        assert infos and f" pv {move}" in infos[-1]
    finally:
        set_playouts(engine, 0)


def test_ponder_then_ponderhit(engine: UsiEngine) -> None:
    set_playouts(engine, 32)
    try:
        engine.send_line("position startpos moves 7g7f 3c3d")
        engine.send_line("go ponder btime 0 wtime 0 byoyomi 300")
        assert not [line for line in sync(engine) if line.startswith("bestmove")]
        engine.send_line("ponderhit")
        move = engine.read_until("bestmove", WAIT_S, "ponderhit")[-1].split()[1]
        assert move in ShogiGame.from_usi_position("startpos moves 7g7f 3c3d").legal_usi()
    finally:
        set_playouts(engine, 0)


def test_go_while_thinking_is_refused_without_losing_the_search(engine: UsiEngine) -> None:
    engine.send_line("position startpos")
    engine.send_line("go infinite")
    engine.send_line("go btime 0 wtime 0 byoyomi 100")
    said = sync(engine)
    assert [line for line in said if line.startswith("info string error")]
    engine.send_line("stop")
    move = engine.read_until("bestmove", WAIT_S, "stop")[-1].split()[1]
    assert move in ShogiGame().legal_usi()


def test_back_to_back_go_commands_each_get_their_move(engine: UsiEngine) -> None:
    """A `go` that arrives while a limited search is still finishing waits for it (a GUI that
    answers `bestmove` at once must never find its next `go` refused)."""
    set_playouts(engine, 16)
    try:
        for _ in range(3):
            engine.send_line("position startpos moves 7g7f")
            engine.send_line("go btime 0 wtime 0 byoyomi 100")
            engine.send_line("position startpos moves 7g7f 3c3d")
            engine.send_line("go btime 0 wtime 0 byoyomi 100")
            first = engine.read_until("bestmove", WAIT_S, "go")
            second = engine.read_until("bestmove", WAIT_S, "go")
            assert not [line for line in first + second if "error" in line]
            after_one = ShogiGame.from_usi_position("startpos moves 7g7f").legal_usi()
            assert first[-1].split()[1] in after_one
            after_two = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d").legal_usi()
            assert second[-1].split()[1] in after_two
    finally:
        set_playouts(engine, 0)


def test_position_with_hundreds_of_moves(engine: UsiEngine) -> None:
    game = random_game(seed=11, plies=450)
    assert game.ply == 450 and not game.is_over
    for length in (440, 450, 300):
        prefix = ShogiGame(max_plies=None)
        for move in game.usi_moves[:length]:
            prefix.push_usi(move)
        assert prefix.result is None
        engine.send_line("position startpos moves " + " ".join(prefix.usi_moves))
        assert sync(engine) == []
        assert go(engine) in prefix.legal_usi()


def test_mate_search_is_declined(engine: UsiEngine) -> None:
    engine.send_line("position startpos")
    engine.send_line("go mate 1000")
    assert engine.read_until("checkmate", WAIT_S, "go mate")[-1] == "checkmate notimplemented"


def test_usinewgame_resets_to_the_start(engine: UsiEngine) -> None:
    engine.send_line("position startpos moves 7g7f 3c3d 8h2b+")
    engine.send_line("usinewgame")
    assert sync(engine) == []
    assert go(engine) in ShogiGame().legal_usi()
