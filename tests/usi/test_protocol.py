"""Parsing of GUI commands, time planning, options and the position tracker (no subprocess)."""

from __future__ import annotations

import cshogi
import pytest

from keisei.shogi import ShogiGame
from keisei.usi.options import EngineOptions
from keisei.usi.position import PositionTracker, decided_answer, parse_position, searchable
from keisei.usi.protocol import (
    GoCommand,
    UsiInputError,
    format_info,
    info_string,
    parse_go,
    parse_setoption,
    value_to_cp,
)
from keisei.usi.time_control import MIN_THINK_MS, think_time_ms
from tests.usi.helpers import DECLARATION_SFEN, MATED_SFEN, random_game


def test_parse_go_reads_every_field() -> None:
    go = parse_go("btime 1000 wtime 2000 byoyomi 300 binc 10 winc 20 nodes 50".split())
    assert go == GoCommand(btime=1000, wtime=2000, byoyomi=300, binc=10, winc=20, nodes=50)
    assert go.remaining_ms(0) == 1000 and go.remaining_ms(1) == 2000
    assert go.increment_ms(1) == 20
    assert parse_go(["infinite"]).infinite
    assert parse_go("ponder btime 5 wtime 5".split()).ponder
    assert parse_go(["mate", "1000"]).mate
    assert parse_go([]) == GoCommand()


@pytest.mark.parametrize(
    "words", [["btime"], ["btime", "x"], ["sideways"], ["nodes", "1.5"], ["byoyomi", "1e3"]]
)
def test_parse_go_refuses_malformed_arguments(words: list[str]) -> None:
    with pytest.raises(UsiInputError, match="go"):
        parse_go(words)


def test_negative_clock_counts_as_zero() -> None:
    assert parse_go("btime -20 wtime 0".split()).btime == 0


def test_parse_setoption_names_and_values_with_spaces() -> None:
    assert parse_setoption("name Skill Level value -5".split()) == ("Skill Level", "-5")
    assert parse_setoption("name Clear Hash".split()) == ("Clear Hash", None)
    assert parse_setoption("name Path value a b".split()) == ("Path", "a b")
    for bad in ([], ["value", "3"], ["name"], ["name", "value", "3"]):
        with pytest.raises(UsiInputError):
            parse_setoption(bad)


def test_value_to_cp_is_odd_monotonic_and_bounded() -> None:
    values = [-1.0, -0.9, -0.5, -0.1, 0.0, 0.1, 0.5, 0.9, 1.0]
    cps = [value_to_cp(v) for v in values]
    assert cps == sorted(cps) and len(set(cps)) == len(cps)
    assert value_to_cp(0.0) == 0
    assert value_to_cp(0.5) == -value_to_cp(-0.5) > 0
    assert value_to_cp(float("nan")) == 0


def test_format_info_and_info_string() -> None:
    line = format_info(depth=3, seldepth=5, nodes=100, time_ms=50, score_cp=12, pv=["7g7f", "3c3d"])
    assert line == "info depth 3 seldepth 5 nodes 100 time 50 nps 2000 score cp 12 pv 7g7f 3c3d"
    assert "score mate +1" in format_info(depth=1, seldepth=1, nodes=1, time_ms=0, mate=1)
    assert info_string("two\nlines") == "info string two lines"


def test_think_time_respects_every_clock_form() -> None:
    assert think_time_ms(GoCommand(), 0) is None
    assert think_time_ms(GoCommand(nodes=10), 0) is None
    pure_byoyomi = think_time_ms(GoCommand(btime=0, wtime=0, byoyomi=1000), 0, overhead_ms=100)
    assert pure_byoyomi == 900
    # Main time: a slice of it, never the whole clock.
    sudden = think_time_ms(GoCommand(btime=60_000, wtime=1_000), 0, overhead_ms=100)
    assert sudden is not None and 0 < sudden < 60_000 // 10
    # The side to move's clock is the one used.
    white = think_time_ms(GoCommand(btime=60_000, wtime=1_000), 1, overhead_ms=100)
    assert white is not None and white < sudden
    # Fischer: the increment is spent too, but never more than the clock holds.
    fischer = think_time_ms(GoCommand(btime=1_000, wtime=1_000, binc=5_000), 0, overhead_ms=100)
    assert fischer is not None and 5_000 - 100 <= fischer <= 1_000 + 5_000 - 100
    assert think_time_ms(GoCommand(btime=0, wtime=0, byoyomi=10), 0) == MIN_THINK_MS
    assert think_time_ms(GoCommand(movetime=500), 0, overhead_ms=100) == 400


def test_options_advertise_validate_and_ignore_gui_standard_ones() -> None:
    options = EngineOptions()
    lines = options.usi_lines()
    assert "option name Playouts type spin default 0 min 0 max 1000000" in lines
    assert options.set("playouts", "200") == "Playouts" and options["Playouts"] == 200
    assert options.set("CPuct", "2.5") == "CPuct" and options["CPuct"] == 2.5
    assert options.set("USI_Hash", "256") is None and options.set("USI_Ponder", "true") is None
    for name, value in [
        ("Playouts", "-1"),
        ("Playouts", "many"),
        ("BatchSize", "0"),
        ("CPuct", "0"),
        ("CPuct", "nan"),
        ("Playouts", None),
        ("Hash", "16"),
    ]:
        with pytest.raises(UsiInputError):
            options.set(name, value)
    assert options["Playouts"] == 200


def test_parse_position_forms() -> None:
    assert parse_position(["startpos"]) == (cshogi.STARTING_SFEN, [])
    start, moves = parse_position(f"sfen {DECLARATION_SFEN} moves 5b4b".split())
    assert start.split()[:3] == DECLARATION_SFEN.split()[:3] and moves == ["5b4b"]
    for bad in ([], ["moves", "7g7f"], ["sfen", "9/9/9", "b", "-", "1"], ["start"]):
        with pytest.raises(UsiInputError):
            parse_position(bad)


def test_tracker_updates_incrementally_and_replays_on_divergence() -> None:
    tracker = PositionTracker()
    tracker.set("startpos moves 7g7f 3c3d".split())
    game = tracker.game
    tracker.set("startpos moves 7g7f 3c3d 2g2f".split())
    assert tracker.game is game and tracker.game.usi_moves == ["7g7f", "3c3d", "2g2f"]
    tracker.set("startpos moves 7g7f 8c8d".split())  # a take-back and another line
    assert tracker.game.usi_moves == ["7g7f", "8c8d"]
    assert tracker.game.sfen() == ShogiGame.from_usi_position("startpos moves 7g7f 8c8d").sfen()
    tracker.set(f"sfen {DECLARATION_SFEN}".split())
    assert tracker.game.usi_moves == [] and decided_answer(tracker.game) == "win"


def test_tracker_refuses_bad_input_and_keeps_the_position() -> None:
    tracker = PositionTracker()
    tracker.set("startpos moves 7g7f 3c3d".split())
    before = tracker.game.sfen(), tracker.game.usi_moves
    bad_commands = [
        "startpos moves 7g7f 3c3d 2g2f 2g2f",  # illegal at the end of an extension
        "startpos moves 7g7f 7g7f",  # illegal after a take-back
        "startpos moves 7g7f 3c3d xyz",  # not a move at all
        "sfen lnsgkgsnl/9/9/9/9/9/9/9/LNSGKGSNL x - 1",  # bad side to move
        "sfen 9/9/9/9/9/9/9/9/9 b - 1",  # no kings
        "fen startpos",
    ]
    for command in bad_commands:
        with pytest.raises(UsiInputError):
            tracker.set(command.split())
        assert (tracker.game.sfen(), tracker.game.usi_moves) == before, command


def test_illegal_move_message_names_the_move_and_its_number() -> None:
    tracker = PositionTracker()
    with pytest.raises(UsiInputError, match=r"move 3 '7g7f' is illegal.*position unchanged"):
        tracker.set("startpos moves 7g7f 3c3d 7g7f".split())


def test_tracker_handles_hundreds_of_moves() -> None:
    game = random_game(seed=3, plies=400)
    tracker = PositionTracker()
    words = ["startpos", "moves", *game.usi_moves]
    for end in (len(words) - 5, len(words), len(words) - 40, len(words)):
        tracker.set(words[:end])
        assert tracker.game.sfen() == ShogiGame.from_usi_position(" ".join(words[:end])).sfen()


def test_decided_positions_and_searchable() -> None:
    assert decided_answer(ShogiGame(MATED_SFEN)) == "resign"
    assert decided_answer(ShogiGame()) is None
    assert decided_answer(ShogiGame(DECLARATION_SFEN)) == "win"
    # A fourfold repetition ends the game by our rules; the GUI may still ask for a move.
    game = ShogiGame(max_plies=None)
    for _ in range(4):
        for move in ("5i4h", "5a4b", "4h5i", "4b5a"):
            if not game.is_over:
                game.push_usi(move)
    assert game.result is not None and game.result.reason == "repetition"
    assert decided_answer(game) is None
    copy = searchable(game)
    assert not copy.is_over and copy.sfen() == game.sfen()
    live = ShogiGame.from_usi_position("startpos moves 7g7f")
    assert searchable(live).usi_moves == ["7g7f"] and searchable(live) is not live
