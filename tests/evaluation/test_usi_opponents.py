"""External USI engines as opponents: misbehaving engines lose games and never hang a match."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.builtin import RandomPlayer
from keisei.evaluation.players.opponents import make_opponent
from keisei.evaluation.players.usi import UsiPlayer
from tests.support.engines import fairy_stockfish

FAKE = Path(__file__).resolve().parents[1] / "support" / "fake_usi_engine.py"


def fake(mode: str, timeout_s: float = 2.0) -> UsiPlayer:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} {mode}"
    return UsiPlayer(command, byoyomi_ms=50, timeout_s=timeout_s, name=f"fake-{mode}")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("hang", "engine_timeout"), ("crash", "engine_crash"), ("illegal", "illegal_move"),
     ("resign", "resign")],
)  # fmt: skip
def test_a_misbehaving_engine_loses_each_game_and_the_match_goes_on(
    mode: str, reason: str, tmp_path: Path
):
    engine = fake(mode)
    try:
        games = play_match(
            RandomPlayer(0), engine, MatchSettings(games=2, max_plies=80, record_dir=tmp_path)
        )
    finally:
        engine.close()
    assert [g.outcome for g in games] == ["win", "win"]
    assert [g.reason for g in games] == [reason, reason]
    assert all(Path(g.record_path).read_text(encoding="utf-8") for g in games if g.record_path)


def test_an_engine_that_never_starts_loses_without_hanging():
    engine = fake("slowstart")
    try:
        games = play_match(RandomPlayer(0), engine, MatchSettings(games=1, max_plies=20))
    finally:
        engine.close()
    assert games[0].outcome == "win"
    assert games[0].reason == "engine_timeout"  # it hung in the handshake


def test_fairy_stockfish_plays_legal_games_against_random(tmp_path: Path):
    engine = make_opponent(
        f"usi:{fairy_stockfish()}",
        options={"Skill Level": "-20"},
        usi_byoyomi_ms=None,
        usi_nodes=200,
    )
    try:
        games = play_match(
            RandomPlayer(0), engine, MatchSettings(games=2, max_plies=300, record_dir=tmp_path)
        )
    finally:
        engine.close()
    assert len(games) == 2
    # Both sides played legal moves to a rule ending (every move was validated by the game layer).
    assert all(g.reason not in ("illegal_move", "engine_crash", "engine_timeout") for g in games)
    assert all(g.plies > 0 for g in games)
