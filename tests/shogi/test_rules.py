"""Game end and move legality under the official rules, each on a concrete position."""

from __future__ import annotations

import cshogi
import pytest

from keisei.shogi import GameEnd, IllegalMoveError, ShogiGame

MATE_IN_ONE = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"  # G*5b mates: the pawn on 5c guards the gold.
# White king on 1a; black knight 3c covers 2a, gold 2c covers 1b and 2b.
PAWN_DROP_MATE = "8k/9/6NG1/9/9/9/9/9/4K4 b P 1"
LANCE_DROP_MATE = "8k/9/6NG1/9/9/9/9/9/4K4 b L 1"
# After 8d8c the white king on 9a is not in check but every square it could go to is covered.
STALEMATE_NEXT = "k8/2G6/9/1S7/9/9/9/9/4K4 b - 1"
# Black rook 3i against the white king 1a: rook checks along files 1 and 2, king shuttles.
PERPETUAL = "8k/9/9/9/9/9/9/9/K5R2 b - 1"
PERPETUAL_CYCLE = ["1a2a", "1i2i", "2a1a", "2i1i"]
PERPETUAL_FROM_X = "8k/9/9/9/9/9/9/9/K6R1 b - 1"  # rook 2i, king 1a: no check yet
# Black king on 5b with ten pieces in white's camp: 4 big pieces (20) + 6 small (6) = 26 points.
DECLARE_BLACK_28 = "R1B1G1B1R/3GKG3/3SSS3/9/9/9/9/9/4k4 w 2P 1"  # + 2 pawns in hand = 28
DECLARE_BLACK_27 = "R1B1G1B1R/3GKG3/3SSS3/9/9/9/9/9/4k4 w P 1"  # + 1 pawn = 27: not enough
ROOK_SHUFFLE = ["2h3h", "8b7b", "3h2h", "7b8b"]  # back to the start position in 4 plies


def test_checkmate_loses_for_the_side_to_move():
    game = ShogiGame(MATE_IN_ONE)
    assert game.result is None
    end = game.push_usi("G*5b")
    assert end == GameEnd("checkmate", "black", 1)
    assert game.result is end and game.is_over
    assert game.legal_moves() == [] and not game.legal_mask().any()


def test_no_legal_move_without_check_loses():
    game = ShogiGame(STALEMATE_NEXT)
    end = game.push_usi("8d8c")
    assert not game.is_check()
    assert end == GameEnd("no_legal_moves", "black", 1)


def test_a_start_position_without_legal_moves_is_already_decided():
    game = ShogiGame("k8/2G6/1S7/9/9/9/9/9/4K4 w - 1")
    assert game.result == GameEnd("no_legal_moves", "black", 0)


def test_pawn_drop_mate_is_illegal_but_other_drop_mates_are_not():
    game = ShogiGame(PAWN_DROP_MATE)
    assert "P*1b" not in game.legal_usi()
    assert "P*1c" in game.legal_usi()
    label = cshogi.dlshogi.make_move_label(game.board_copy().move_from_usi("P*1b"), 0)
    assert not game.legal_mask()[label]
    with pytest.raises(IllegalMoveError, match=r"P\*1b"):
        game.push_usi("P*1b")
    with pytest.raises(IllegalMoveError, match=str(label)):
        game.push_label(label)
    assert game.ply == 0 and game.sfen() == ShogiGame(PAWN_DROP_MATE).sfen()

    lance = ShogiGame(LANCE_DROP_MATE)
    assert lance.push_usi("L*1b") == GameEnd("checkmate", "black", 1)


def test_two_unpromoted_pawns_on_a_file_are_illegal():
    game = ShogiGame("4k4/9/9/9/9/4P4/9/9/4K4 b P 1")
    drops = game.legal_usi()
    assert not [move for move in drops if move.startswith("P*5")]
    assert "P*4e" in drops
    with pytest.raises(IllegalMoveError):
        game.push_usi("P*5e")
    promoted = ShogiGame("4k4/9/9/9/9/4+P4/9/9/4K4 b P 1")
    assert "P*5e" in promoted.legal_usi()  # a tokin does not count


def test_no_drop_where_the_piece_could_never_move():
    game = ShogiGame("4k4/9/9/9/9/9/9/9/4K4 b PLN 1")
    legal = set(game.legal_usi())
    for square in ("1a", "9a"):
        assert {f"P*{square}", f"L*{square}", f"N*{square}"}.isdisjoint(legal)
    assert {"N*1b", "N*9b"}.isdisjoint(legal)
    assert {"P*1b", "L*1b", "N*1c"} <= legal


def test_promotion_forced_on_the_last_ranks_and_optional_elsewhere():
    game = ShogiGame("4k4/P8/9/1N1P5/9/9/9/9/4K4 b - 1")
    legal = set(game.legal_usi())
    assert "9b9a+" in legal and "9b9a" not in legal  # pawn to the last rank
    assert "8d7b+" in legal and "8d7b" not in legal  # knight to the second-last rank
    assert {"6d6c+", "6d6c"} <= legal  # entering the camp: either
    assert len({game.label_for_move(game.move_for_usi(m)) for m in ("6d6c+", "6d6c")}) == 2
    with pytest.raises(IllegalMoveError, match="9b9a"):
        game.push_usi("9b9a")


def test_fourfold_repetition_draws_on_the_fourth_occurrence_not_the_first():
    game = ShogiGame()
    for occurrence in (2, 3):
        for move in ROOK_SHUFFLE:
            assert game.push_usi(move) is None
        assert game.repetitions() == occurrence
        assert game.board_copy().is_draw() == cshogi.REPETITION_DRAW  # cshogi already says draw
    for move in ROOK_SHUFFLE[:-1]:
        assert game.push_usi(move) is None
    end = game.push_usi(ROOK_SHUFFLE[-1])
    assert end == GameEnd("repetition", None, 12)
    assert game.repetitions() == 4


def test_perpetual_check_loses_for_the_checking_side():
    game = ShogiGame(PERPETUAL)
    game.push_usi("3i1i")  # check; this position is the one that repeats
    for _ in range(2):
        for move in PERPETUAL_CYCLE:
            assert game.push_usi(move) is None
    for move in PERPETUAL_CYCLE[:-1]:
        assert game.push_usi(move) is None
    end = game.push_usi(PERPETUAL_CYCLE[-1])
    assert end == GameEnd("perpetual_check", "white", 13)


def rotate_usi(move: str) -> str:
    """The same move seen from the other side of the board (for mirrored positions)."""

    def square(text: str) -> str:
        return f"{10 - int(text[0])}{chr(ord('a') + ord('i') - ord(text[1]))}"

    if move[1] == "*":
        return move[:2] + square(move[2:4])
    return square(move[:2]) + square(move[2:4]) + move[4:]


def test_perpetual_check_by_white_loses_for_white():
    game = ShogiGame(cshogi.rotate_sfen(PERPETUAL))
    moves = ["3i1i"] + PERPETUAL_CYCLE * 3
    for move in moves[:-1]:
        assert game.push_usi(rotate_usi(move)) is None
    assert game.push_usi(rotate_usi(moves[-1])) == GameEnd("perpetual_check", "black", 13)


def test_checks_only_in_later_cycles_make_a_plain_draw():
    # X = this position (black to move). A quiet cycle returns to X, then two checking cycles:
    # black did not check with every move since X first occurred, so it is sennichite, a draw.
    game = ShogiGame(PERPETUAL_FROM_X)
    quiet = ["2i3i", "1a1b", "3i2i", "1b1a"]
    checking = ["2i1i", "1a2a", "1i2i", "2a1a"]
    for move in quiet + checking + checking[:-1]:
        assert game.push_usi(move) is None
    assert game.push_usi(checking[-1]) == GameEnd("repetition", None, 12)

    only_checks = ShogiGame(PERPETUAL_FROM_X)
    for move in checking * 2 + checking[:-1]:
        assert only_checks.push_usi(move) is None
    assert only_checks.push_usi(checking[-1]) == GameEnd("perpetual_check", "white", 12)


def test_undo_restores_repetition_counts_and_verdict():
    game = ShogiGame()
    for _ in range(3):
        for move in ROOK_SHUFFLE:
            game.push_usi(move)
    assert game.result is not None
    assert cshogi.move_to_usi(game.pop()) == "7b8b"
    assert game.result is None and game.ply == 11
    assert game.repetitions() == 3  # this position occurred at plies 3, 7 and 11
    assert game.push_usi("7b8b").reason == "repetition"
    for _ in range(12):
        game.pop()
    assert game.ply == 0 and game.repetitions() == 1
    assert game.sfen() == cshogi.STARTING_SFEN
    with pytest.raises(IndexError):
        game.pop()


def test_entering_king_declaration_wins_at_28_points_for_black():
    game = ShogiGame(DECLARE_BLACK_28)
    assert game.result is None  # white to move: black may only declare on its own turn
    assert game.push_usi("5i5h") == GameEnd("declaration", "black", 1)


def test_declaration_needs_28_points_for_black_but_27_for_white():
    black = ShogiGame(DECLARE_BLACK_27)
    assert black.push_usi("5i5h") is None
    mirrored = cshogi.rotate_sfen(DECLARE_BLACK_27)  # white now has the same 27 points
    white = ShogiGame(mirrored)
    assert white.push_usi("5a5b") == GameEnd("declaration", "white", 1)


def test_declaration_can_be_switched_off():
    game = ShogiGame(DECLARE_BLACK_28, declaration=False)
    assert game.push_usi("5i5h") is None


def test_ply_limit_draws_when_reached():
    game = ShogiGame(max_plies=4)
    for move in ROOK_SHUFFLE[:3]:
        assert game.push_usi(move) is None
    assert game.push_usi(ROOK_SHUFFLE[3]) == GameEnd("max_plies", None, 4)
    with pytest.raises(IllegalMoveError, match="game over"):
        game.push_usi("2h3h")


def test_checkmate_on_the_last_allowed_ply_is_still_checkmate():
    game = ShogiGame(MATE_IN_ONE, max_plies=1)
    assert game.push_usi("G*5b").reason == "checkmate"


def test_default_ply_limit_is_512():
    assert ShogiGame().max_plies == 512
