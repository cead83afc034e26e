"""KIF, CSA and USI records read back by cshogi's own parsers to the same game."""

from __future__ import annotations

import cshogi
import cshogi.KIF
import numpy as np
import pytest

from keisei.shogi import GameEnd, ShogiGame
from keisei.shogi.records import GameRecord


def random_game(seed: int, sfen: str | None = None, max_plies: int = 512) -> ShogiGame:
    rng = np.random.default_rng(seed)
    game = ShogiGame(sfen, max_plies=max_plies)
    while not game.is_over:
        labels = game.legal_labels()
        game.push_label(int(labels[rng.integers(len(labels))]))
    return game


def replay(start_sfen: str, moves: list[int]) -> cshogi.Board:
    board = cshogi.Board(start_sfen)
    for move in moves:
        assert board.is_legal(move)
        board.push(move)
    return board


def same_position(a: str, b: str) -> bool:
    """Board, side to move and hands equal (cshogi writes hands in a canonical order)."""
    return cshogi.Board(a).sfen().split()[:3] == cshogi.Board(b).sfen().split()[:3]


@pytest.mark.parametrize("seed", range(6))
def test_kif_parses_back_to_the_same_game(seed: int):
    game = random_game(seed)
    kif = game.to_kif("Keisei-A", "Keisei-B")
    parsed = cshogi.KIF.Parser.parse_str(kif)
    assert parsed.names == ["Keisei-A", "Keisei-B"]
    assert parsed.sfen == cshogi.STARTING_SFEN
    assert [cshogi.move16(m) for m in parsed.moves] == [cshogi.move16(m) for m in game.moves]
    assert same_position(replay(parsed.sfen, parsed.moves).sfen(), game.sfen())
    assert f"end={game.result.reason}" in kif


@pytest.mark.parametrize("seed", range(6))
def test_csa_parses_back_to_the_same_game_from_any_start(seed: int, random_sfens: list[str]):
    start = random_sfens[seed * 17]
    game = random_game(seed, start)
    csa = game.to_csa("Keisei-A", "Keisei-B")
    (parsed,) = cshogi.Parser.parse_str(csa)
    assert parsed.names == ["Keisei-A", "Keisei-B"]
    assert same_position(parsed.sfen, start)
    assert list(parsed.moves) == game.moves
    assert same_position(replay(parsed.sfen, parsed.moves).sfen(), game.sfen())
    assert f"end={game.result.reason}" in parsed.comment


def test_csa_from_the_start_position_uses_pi():
    game = ShogiGame.from_usi_position("startpos moves 7g7f 3c3d")
    csa = game.to_csa()
    assert "PI\n+\n+7776FU\n-3334FU\n" in csa
    (parsed,) = cshogi.Parser.parse_str(csa)
    assert same_position(replay(parsed.sfen, parsed.moves).sfen(), game.sfen())


# Three moves are played, so white is to move: the side that is mated, may declare, or is
# checked perpetually.
ENDINGS = [
    (GameEnd("checkmate", "black", 3), "詰み", "先手の勝ち", "%TSUMI", None),
    (GameEnd("no_legal_moves", "black", 3), "投了", "先手の勝ち", "%TORYO", cshogi.BLACK_WIN),
    (GameEnd("repetition", None, 3), "千日手", "千日手", "%SENNICHITE", cshogi.DRAW),
    (GameEnd("perpetual_check", "white", 3), "反則勝ち", "後手の反則勝ち", "%+ILLEGAL_ACTION", 2),
    (GameEnd("declaration", "white", 3), "入玉勝ち", "後手の入玉勝ち", "%KACHI", None),
    (GameEnd("max_plies", None, 3), "持将棋", "持将棋", "%MAX_MOVES", cshogi.DRAW),
]


@pytest.mark.parametrize(("end", "kif_word", "kif_verdict", "csa_word", "csa_win"), ENDINGS)
def test_every_end_reason_is_written_in_both_formats(
    end: GameEnd, kif_word: str, kif_verdict: str, csa_word: str, csa_win: int | None
):
    board = cshogi.Board()
    moves = []
    for usi in ("7g7f", "3c3d", "2g2f"):
        moves.append(board.move_from_usi(usi))
        board.push(moves[-1])
    record = GameRecord(cshogi.STARTING_SFEN, tuple(moves), end, "A", "B")
    kif = record.to_kif()
    assert f"   4 {kif_word}" in kif and f"まで3手で{kif_verdict}" in kif
    assert cshogi.KIF.Parser.parse_str(kif).moves == moves
    csa = record.to_csa()
    assert csa.rstrip().endswith(csa_word)
    (parsed,) = cshogi.Parser.parse_str(csa)
    assert parsed.endgame == csa_word
    if csa_win is not None:
        assert parsed.win == csa_win
    assert f"end={end.reason}" in csa and f"end={end.reason}" in kif


def test_kif_from_another_start_writes_the_board_diagram():
    sfen = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"
    game = ShogiGame(sfen)
    game.push_usi("G*5b")
    kif = game.to_kif()
    assert "手合割" not in kif and "先手の持駒：金" in kif and "後手の持駒：なし" in kif
    assert "   1 ５二金打" in kif and "まで1手で先手の勝ち" in kif
