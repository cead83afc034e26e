"""The Gumbel root search: its visit schedule, its improved policy, and what the values make it
play, on real games with small real networks (one of them a fixed material count)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from keisei.model import FLOAT32
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.gumbel import GumbelSearch, visit_rounds
from keisei.shogi import NUM_LABELS, ShogiGame
from tests.support.checkpoints import tiny_model

MATE_IN_ONE_SFEN = "4k4/9/4P4/9/9/9/9/9/4K4 b G 1"
"""Black mates with G*5b."""


class MaterialNet(nn.Module):
    """A uniform policy and a value from the pieces on the board: tanh(0.5 * (own - theirs)),
    for the side to move (dlshogi planes 0-13 are its pieces, 31-44 the opponent's)."""

    precision = FLOAT32

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        own = obs[:, :14].sum(dim=(1, 2, 3))
        theirs = obs[:, 31:45].sum(dim=(1, 2, 3))
        return torch.zeros(len(obs), NUM_LABELS), torch.tanh(0.5 * (own - theirs))


def played(*usi: str) -> ShogiGame:
    game = ShogiGame()
    for move in usi:
        game.push_usi(move)
    return game


@pytest.mark.parametrize(
    ("considered", "simulations", "rounds"),
    [(16, 32, [16, 8, 4, 4]), (16, 16, [16]), (4, 8, [4, 2, 2]), (3, 7, [3, 2, 2]), (1, 2, [1, 1])],
)
def test_visit_rounds_halve_the_candidates_and_spend_exactly_the_simulations(
    considered: int, simulations: int, rounds: list[int]
):
    assert visit_rounds(considered, simulations) == rounds


@pytest.mark.parametrize(("considered", "simulations"), [(16, 64), (8, 5), (32, 32), (2, 9)])
def test_visit_rounds_never_grow_and_sum_to_the_budget(considered: int, simulations: int):
    rounds = visit_rounds(considered, simulations)
    assert sum(rounds) == simulations
    assert rounds[0] == min(considered, simulations)
    assert all(a >= b for a, b in zip(rounds, rounds[1:], strict=False))


def test_the_improved_policy_covers_the_legal_moves_and_sums_to_one():
    games = [ShogiGame(), played("7g7f", "3c3d"), played("2g2f", "8c8d", "2f2e")]
    search = GumbelSearch(BatchEvaluator(tiny_model(3), 64, "cpu"), 8)
    before = [list(game.usi_moves) for game in games]
    torch.manual_seed(0)
    for game, result, moves in zip(games, search.run_many(games), before, strict=True):
        np.testing.assert_array_equal(result.labels, game.legal_labels())
        assert result.improved.shape == result.labels.shape
        assert result.improved.sum() == pytest.approx(1.0, abs=1e-9)
        assert (result.improved >= 0).all()
        assert result.label in result.labels and result.move in game.legal_moves()
        assert result.simulations == 8
        assert game.usi_moves == moves  # the game is as it was


def test_with_every_value_zero_the_improved_policy_is_the_prior():
    model = tiny_model(1)
    with torch.no_grad():  # every value 0 (for either side), whatever the position
        model.value_out.weight.zero_()
        model.value_out.bias.zero_()
        model.policy_head.weight.normal_(0, 0.5)  # a prior far from uniform
    torch.manual_seed(0)
    (result,) = GumbelSearch(BatchEvaluator(model, 64, "cpu"), 16).run_many([ShogiGame()])
    np.testing.assert_allclose(result.improved, result.prior, rtol=1e-6, atol=1e-9)


def test_the_values_move_the_policy_towards_the_capture():
    """After 7g7f 3c3d Black can take the bishop (8h2b+, 8h2b); with a material value the search
    plays a capture and the improved policy puts more on the captures than the prior does."""
    game = played("7g7f", "3c3d")
    captures = [i for i, usi in enumerate(game.legal_usi()) if usi.startswith("8h2b")]
    search = GumbelSearch(BatchEvaluator(MaterialNet(), 64, "cpu"), 64, considered=64)
    for seed in range(3):
        torch.manual_seed(seed)
        (result,) = search.run_many([game])
        assert game.legal_usi()[list(result.labels).index(result.label)].startswith("8h2b")
        assert result.improved[captures].sum() > 5 * result.prior[captures].sum()


def test_a_mate_in_one_is_played_at_once_with_a_one_hot_target():
    game = ShogiGame(MATE_IN_ONE_SFEN)
    (result,) = GumbelSearch(BatchEvaluator(tiny_model(), 8, "cpu"), 8).run_many([game])
    assert game.legal_usi()[list(result.labels).index(result.label)] == "G*5b"
    assert result.improved.max() == 1.0 and result.improved.sum() == 1.0
    assert result.simulations == 0


def test_the_noise_comes_from_torch_s_generator():
    games = [played("7g7f"), played("2g2f")]
    search = GumbelSearch(BatchEvaluator(tiny_model(2), 64, "cpu"), 4)
    torch.manual_seed(7)
    first = [r.label for r in search.run_many(games)]
    torch.manual_seed(7)
    again = [r.label for r in search.run_many(games)]
    assert first == again
