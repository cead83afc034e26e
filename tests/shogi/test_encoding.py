"""The observation planes, the 2187-label action space and perft through that encoding."""

from __future__ import annotations

import cshogi
import numpy as np
import pytest
from cshogi.dlshogi import make_move_label

from keisei.shogi import (
    FEATURES1_NUM,
    FEATURES2_NUM,
    NUM_LABELS,
    OBS_SHAPE,
    IllegalMoveError,
    ShogiGame,
    perft,
)


def test_constants():
    assert NUM_LABELS == 2187
    assert (FEATURES1_NUM, FEATURES2_NUM) == (62, 57)
    assert OBS_SHAPE == (119, 9, 9)


@pytest.mark.parametrize(("depth", "expected"), [(1, 30), (2, 900), (3, 25_470), (4, 719_731)])
def test_perft_from_the_start_position(depth: int, expected: int):
    assert perft("startpos", depth) == expected


def test_perft_counts_drops_and_promotions():
    # Known values for this position (a drop-rich middlegame), computed with raw cshogi below.
    sfen = "l6nl/5+P1gk/2np1S3/p1p4Pp/3P2Sp1/1PPb2P1P/P5GS1/R8/LN4bKL w RGgsn5p 1"
    board = cshogi.Board(sfen)

    def raw(depth: int) -> int:
        if depth == 0:
            return 1
        total = 0
        for move in list(board.legal_moves):
            board.push(move)
            total += raw(depth - 1)
            board.pop()
        return total

    assert perft(sfen, 1) == raw(1)
    assert perft(sfen, 2) == raw(2)


def test_every_legal_move_has_a_distinct_label_that_maps_back(random_sfens: list[str]):
    assert len(random_sfens) > 200
    seen_drops = seen_promotions = 0
    for sfen in random_sfens:
        game = ShogiGame(sfen)
        board = cshogi.Board(sfen)
        moves = list(board.legal_moves)
        labels = [make_move_label(move, board.turn) for move in moves]
        assert len(set(labels)) == len(labels)
        assert all(0 <= label < NUM_LABELS for label in labels)
        mask = game.legal_mask()
        assert mask.dtype == np.bool_ and mask.shape == (NUM_LABELS,)
        assert set(np.flatnonzero(mask).tolist()) == set(labels)
        assert sorted(game.legal_labels().tolist()) == sorted(labels)
        for move, label in zip(moves, labels, strict=True):
            assert game.move_for_label(label) == move
            assert game.label_for_move(move) == label
            seen_drops += cshogi.move_is_drop(move)
            seen_promotions += cshogi.move_is_promotion(move)
    assert seen_drops > 1000 and seen_promotions > 100


def test_labels_outside_the_mask_raise_and_leave_the_game_untouched(random_sfens: list[str]):
    rng = np.random.default_rng(3)
    for sfen in random_sfens[:40]:
        game = ShogiGame(sfen)
        illegal = np.flatnonzero(~game.legal_mask())
        for label in rng.choice(illegal, size=5, replace=False).tolist():
            with pytest.raises(IllegalMoveError) as caught:
                game.push_label(label)
            assert caught.value.move == label
            assert caught.value.sfen == game.sfen()
            assert str(label) in str(caught.value) and game.sfen() in str(caught.value)
        assert game.ply == 0 and game.sfen() == cshogi.Board(sfen).sfen()
    for bad in (-1, NUM_LABELS, 10**30, 1.5, "12"):
        with pytest.raises(IllegalMoveError):
            ShogiGame().push_label(bad)  # type: ignore[arg-type]


def test_labels_and_features_are_from_the_side_to_moves_point_of_view(random_sfens: list[str]):
    # A position with white to move, rotated 180 degrees with colours swapped, is the same
    # position for black: identical planes, identical labels for the mirrored moves.
    for sfen in random_sfens[:60]:
        game = ShogiGame(sfen)
        mirror = ShogiGame(cshogi.rotate_sfen(sfen))
        assert game.turn != mirror.turn
        np.testing.assert_array_equal(game.observation(), mirror.observation())
        for move in game.legal_moves():
            assert game.label_for_move(move) == mirror.label_for_move(cshogi.move_rotate(move))


def test_observation_is_both_feature_arrays_stacked():
    game = ShogiGame()
    game.push_usi("7g7f")
    features1, features2 = game.features()
    assert features1.shape == (FEATURES1_NUM, 9, 9) and features2.shape == (FEATURES2_NUM, 9, 9)
    obs = game.observation()
    assert obs.dtype == np.float32 and obs.shape == OBS_SHAPE
    np.testing.assert_array_equal(obs, np.concatenate([features1, features2]))
    expected1 = np.zeros_like(features1)
    expected2 = np.zeros_like(features2)
    cshogi.dlshogi.make_input_features(game.board_copy(), expected1, expected2)
    np.testing.assert_array_equal(features1, expected1)


def test_feature_buffers_that_cshogi_would_overrun_are_refused():
    game = ShogiGame()
    with pytest.raises(ValueError, match="features1"):
        game.features(np.zeros((FEATURES1_NUM, 9, 9), np.float64), np.zeros((57, 9, 9), np.float32))
    strided = np.zeros((FEATURES1_NUM, 9, 18), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="features1"):
        game.features(strided, np.zeros((FEATURES2_NUM, 9, 9), np.float32))
    with pytest.raises(ValueError):
        game.observation(np.zeros((120, 9, 9), np.float32))
