"""Matches really play: statistics add up, colours alternate, records are written."""

from __future__ import annotations

from pathlib import Path

import cshogi.CSA
import pytest
import torch

from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.builtin import GreedyPlayer, RandomPlayer
from keisei.evaluation.players.network import NeuralPlayer, load_checkpoint_player
from keisei.evaluation.players.opponents import make_opponent
from keisei.evaluation.result import EvaluationResult
from tests.support.checkpoints import save_checkpoint, tiny_model


def test_statistics_add_up_and_colours_alternate(tmp_path: Path):
    settings = MatchSettings(games=7, seed=5, random_opening_plies=4, record_dir=tmp_path)
    games = play_match(RandomPlayer(1, "a"), RandomPlayer(2, "b"), settings)
    result = EvaluationResult(step=0, games=games)
    assert result.total_games == 7
    assert result.wins + result.losses + result.draws == 7
    assert result.win_rate + result.loss_rate + result.draw_rate == pytest.approx(1.0)
    assert sum(result.end_reasons.values()) == 7
    assert [g.agent_color for g in games] == ["black", "white"] * 3 + ["black"]
    assert result.avg_game_length == pytest.approx(sum(g.plies for g in games) / 7)
    for game in games:
        assert game.record_path is not None
        kif = Path(game.record_path)
        csa = kif.with_suffix(".csa")
        assert kif.is_file() and csa.is_file()
        parsed = cshogi.CSA.Parser.parse_file(str(csa))[0]
        assert len(parsed.moves) == game.plies
    names = {p.read_text(encoding="utf-8").splitlines()[1] for p in tmp_path.glob("*.csa")}
    assert names == {"N+a", "N+b"}  # both players had both colours


def test_random_openings_vary_the_games():
    settings = MatchSettings(games=4, seed=1, random_opening_plies=6, max_plies=30)
    greedy_a, greedy_b = GreedyPlayer(0, "g1"), GreedyPlayer(0, "g2")
    games = play_match(greedy_a, greedy_b, settings)
    assert len({g.plies for g in games} | {g.reason for g in games}) >= 1
    assert all(g.plies <= 30 for g in games)


def test_greedy_beats_random_in_most_games():
    games = play_match(GreedyPlayer(1), RandomPlayer(2), MatchSettings(games=20, seed=3))
    result = EvaluationResult(step=0, games=games)
    assert result.wins >= 16, result.end_reasons


def test_a_checkpoint_opponent_loads_safely_and_plays(tmp_path: Path):
    save_checkpoint(tmp_path / "run", step=64)
    model = tiny_model()  # the same weights as the saved network
    player = make_opponent(f"checkpoint:{tmp_path / 'run'}")
    assert player.kind == "checkpoint" and player.step == 64
    assert player.name == "run/step_000000064"
    for a, b in zip(player.model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    games = play_match(player, RandomPlayer(0), MatchSettings(games=2, max_plies=60))
    assert len(games) == 2 and all(g.plies > 0 for g in games)
    # The same weights in a NeuralPlayer play the same (argmax) moves.
    twin = NeuralPlayer(model.eval(), name="twin")
    again = play_match(twin, RandomPlayer(0), MatchSettings(games=2, max_plies=60))
    assert [g.plies for g in again] == [g.plies for g in games]
    loaded = load_checkpoint_player(tmp_path / "run" / "checkpoints" / "step_000000064")
    assert loaded.path is not None and loaded.path.endswith("step_000000064")


def test_unknown_opponents_are_refused_with_the_spec():
    with pytest.raises(ValueError, match="unknown opponent 'stockfish'"):
        make_opponent("stockfish")
