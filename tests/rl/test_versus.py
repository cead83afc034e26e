"""Versus games against a frozen past opponent: only the learner's moves enter the batch, and
the opponent plays in one batched forward pass per ply."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from keisei.model import ActorCritic, Architecture
from keisei.model.network import masked_logits
from keisei.rl.rollout import SelfPlayCollector
from keisei.rl.versus import VersusGames
from keisei.shogi import VecShogiEnv

TINY = Architecture(blocks=1, channels=8, value_hidden=8)


class CountingOpponent(nn.Module):
    """A real network that counts the positions it was asked to move in, and its calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(99)
        self.net = ActorCritic(TINY)
        self.positions = 0
        self.calls = 0

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.positions += obs.shape[0]
        self.calls += 1
        return self.net(obs)


def collector(num_envs: int, versus: VersusGames, steps: int = 12) -> SelfPlayCollector:
    env = VecShogiEnv(num_envs, seed=3, max_plies=10)
    return SelfPlayCollector(env, steps, torch.device("cpu"), 0.99, 0.95, versus=versus)


def test_only_the_learners_moves_enter_the_batch():
    torch.manual_seed(0)
    learner = ActorCritic(TINY)
    opponent = CountingOpponent()
    versus = VersusGames(4)  # 4 of 6 games against the opponent, 2 of self-play
    versus.set_opponent(opponent, "step_000000064")
    play = collector(6, versus)
    rollout = play.collect(learner)

    steps, games = 12, 6
    assert opponent.calls == steps  # one batched forward per ply
    assert len(rollout) == steps * games - opponent.positions
    assert 0 < opponent.positions < steps * 4
    # Every kept sample is a learner's move: its stored log-probability is the learner's own
    # probability of the label that was played (an opponent's move would not match).
    learner.eval()
    with torch.no_grad():
        logits, _ = learner(rollout.obs.float())
        logp = torch.log_softmax(masked_logits(logits, rollout.masks), dim=-1)
    recomputed = logp.gather(1, rollout.actions[:, None]).squeeze(-1)
    torch.testing.assert_close(recomputed, rollout.logprobs, rtol=1e-5, atol=1e-5)
    # Games ended (max 10 plies): the learner's results against the opponent were counted and
    # it switched sides in those slots.
    assert play.stats.versus_games > 0 and len(play.stats.recent_versus) == play.stats.versus_games
    assert all(score in (0.0, 0.5, 1.0) for score in play.stats.recent_versus)


def test_the_opponent_is_frozen_and_without_it_versus_games_are_self_play():
    opponent = ActorCritic(TINY)
    before = {k: v.clone() for k, v in opponent.state_dict().items()}
    versus = VersusGames(2)
    play = collector(2, versus, steps=6)
    torch.manual_seed(1)
    learner = ActorCritic(TINY)
    assert len(play.collect(learner)) == 12  # no opponent yet: every move is the learner's
    versus.set_opponent(opponent, "step_000000064")
    assert not opponent.training
    assert not any(p.requires_grad for p in opponent.parameters())
    play.collect(learner)
    for key, value in opponent.state_dict().items():
        assert torch.equal(value, before[key])


def test_learner_sides_alternate_in_each_slot_and_survive_a_state_round_trip():
    versus = VersusGames(3)
    assert versus.learner_side.tolist() == [0, 1, 0]
    versus.set_opponent(ActorCritic(TINY), "x")
    assert versus.finished(1, winner=1) == 1.0  # the learner (white) won
    assert versus.finished(1, winner=-1) == 0.5  # now black: a draw
    assert versus.finished(2, winner=1) == 0.0
    assert versus.finished(5, winner=0) is None  # not a versus game
    restored = VersusGames(3)
    restored.load_state_dict(versus.state_dict())
    assert np.array_equal(restored.learner_side, versus.learner_side)
    assert restored.learner_side.tolist() == [0, 1, 1]
