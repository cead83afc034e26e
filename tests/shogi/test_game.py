"""ShogiGame as players and the USI engine use it: validated input, undo, positions, tactics."""

from __future__ import annotations

import pickle

import cshogi
import pytest

from keisei.shogi import (
    PIECE_VALUES,
    IllegalMoveError,
    InvalidSfenError,
    ShogiGame,
    capture_value,
    captured_piece,
    gives_mate,
    mate_in_one,
)

MATE_IN_ONE = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"


@pytest.mark.parametrize("bad", ["7g7e", "7g7f+", "P*5e", "zz", "", "7g7f ", "7G7F", "0000"])
def test_push_usi_refuses_illegal_or_malformed_moves(bad: str):
    game = ShogiGame(name="eval game 3")
    with pytest.raises(IllegalMoveError) as caught:
        game.push_usi(bad)
    assert caught.value.move == bad
    assert caught.value.game == "eval game 3"
    assert caught.value.sfen == cshogi.STARTING_SFEN
    assert game.ply == 0 and game.sfen() == cshogi.STARTING_SFEN


def test_push_move_validates_cshogi_moves_too():
    game = ShogiGame()
    other = cshogi.Board()
    other.push_usi("7g7f")
    with pytest.raises(IllegalMoveError):
        game.push_move(other.move_from_usi("3c3d"))  # white's move, black to move here
    assert game.push_move(game.move_for_usi("2g2f")) is None
    assert game.usi_moves == ["2g2f"] and game.side_to_move == "white" and game.turn == 1


def test_usi_position_replays_and_round_trips():
    text = "position startpos moves 7g7f 3c3d 8h2b+ 3a2b B*4e"
    game = ShogiGame.from_usi_position(text)
    assert game.ply == 5 and game.usi_moves[-1] == "B*4e"
    assert game.usi_position() == f"sfen {cshogi.STARTING_SFEN} moves " + text.split("moves ")[1]
    again = ShogiGame.from_usi_position(game.usi_position())
    assert again.sfen() == game.sfen()
    from_sfen = ShogiGame.from_usi_position(f"sfen {game.sfen()}")
    assert from_sfen.sfen() == game.sfen() and from_sfen.usi_position() == f"sfen {game.sfen()}"
    with pytest.raises(IllegalMoveError, match="7g7f"):
        ShogiGame.from_usi_position("startpos moves 7g7f 7g7f")
    with pytest.raises(ValueError):
        ShogiGame.from_usi_position("position nowhere")


@pytest.mark.parametrize(
    ("sfen", "why"),
    [
        ("garbage", "expected board"),
        ("9/9/9/9/9/9/9/9/9 b - 1", "king"),
        ("4k4/9/9/9/9/9/9/9/9 b - 1", "king"),
        ("4k4/9/9/9/9/9/9/9/4K3 b - 1", "9 squares"),
        ("4k4/9/9/9/9/9/9/9/4K4 x - 1", "side to move"),
        ("4k4/9/9/9/9/9/9/9/4K4 b 3Q 1", "hands"),
        ("4k4/9/9/9/9/9/9/9/4K4 b 19P 1", "more than 18"),
        ("P3k4/9/9/9/9/9/9/9/4K4 b - 1", "never move"),
        ("4k4/N8/9/9/9/9/9/9/4K4 b - 1", "never move"),
        ("4k4/9/9/4P4/9/4P4/9/9/4K4 b - 1", "two unpromoted pawns"),
        ("4k4/4R4/9/9/9/9/9/9/4K4 b - 1", "not to move is in check"),
        ("4k4/9/9/9/9/9/9/9/4K4 b - 0", "move number"),
        ("4k4/9/9/9/9/9/9/9/4+K4 b - 1", "bad piece"),
    ],
)
def test_bad_sfens_are_refused_before_cshogi_sees_them(sfen: str, why: str):
    with pytest.raises(InvalidSfenError, match=why):
        ShogiGame(sfen)


def test_sfen_forms_accepted():
    assert ShogiGame("startpos").sfen() == cshogi.STARTING_SFEN
    assert ShogiGame("sfen " + cshogi.STARTING_SFEN).sfen() == cshogi.STARTING_SFEN
    assert ShogiGame(" ".join(cshogi.STARTING_SFEN.split()[:3])).sfen() == cshogi.STARTING_SFEN
    assert ShogiGame.from_sfen("4k4/9/9/9/9/9/9/9/4K4 w 2Pp 30").side_to_move == "white"


def test_undo_restores_the_position_and_the_legal_moves():
    game = ShogiGame()
    before = (game.sfen(), game.legal_mask().copy())
    game.push_usi("7g7f")
    game.push_usi("3c3d")
    game.pop()
    game.pop()
    assert game.sfen() == before[0]
    assert (game.legal_mask() == before[1]).all()


def test_record_is_picklable_and_replays():
    game = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d 8h2b+")
    record = pickle.loads(pickle.dumps(game.record("A", "B")))
    assert record.usi_moves == ["7g7f", "3c3d", "8h2b+"]
    assert record.final_board().sfen() == game.sfen()
    assert record.result is None and record.black_name == "A"


def test_mate_helpers():
    game = ShogiGame(MATE_IN_ONE)
    label = mate_in_one(game)
    assert label is not None and cshogi.move_to_usi(game.move_for_label(label)) == "G*5b"
    assert gives_mate(game, label)
    quiet = game.label_for_move(game.move_for_usi("5i5h"))
    assert not gives_mate(game, quiet)
    assert game.ply == 0 and game.result is None
    assert mate_in_one(ShogiGame()) is None
    # The only mating drop is a pawn: illegal (uchifuzume), so there is no mate in one.
    assert mate_in_one(ShogiGame("8k/9/6NG1/9/9/9/9/9/4K4 b P 1")) is None


def test_capture_helpers():
    game = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d")
    takes_bishop = game.move_for_usi("8h2b+")
    assert captured_piece(takes_bishop) == cshogi.BISHOP
    assert capture_value(takes_bishop) == PIECE_VALUES[cshogi.BISHOP]
    assert capture_value(game.move_for_usi("2g2f")) == 0
    assert PIECE_VALUES[cshogi.ROOK] > PIECE_VALUES[cshogi.GOLD] > PIECE_VALUES[cshogi.PAWN]


def test_games_copy_and_pickle_as_start_position_plus_moves():
    game = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d 8h2b+", max_plies=50, name="g")
    for clone in (game.copy(), pickle.loads(pickle.dumps(game))):
        assert clone.sfen() == game.sfen() and clone.moves == game.moves
        assert clone.max_plies == 50 and clone.name == "g"
        clone.push_usi("3a2b")
        assert game.ply == 3  # independent
    ended = ShogiGame("4k4/9/4P4/9/9/9/9/9/4K4 b G 1")
    ended.push_usi("G*5b")
    assert pickle.loads(pickle.dumps(ended)).result == ended.result


def test_label_parts_split_kind_and_square():
    from keisei.shogi.encoding import label_parts

    game = ShogiGame()
    label = game.label_for_move(game.move_for_usi("7g7f"))
    kind, square = label_parts(label)
    assert 0 <= kind < 27 and 0 <= square < 81 and kind * 81 + square == label
    with pytest.raises(ValueError):
        label_parts(2187)
