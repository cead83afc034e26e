"""Per-player GAE and credit assignment on hand-built self-play sequences with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from keisei.rl.gae import credit_rewards, selfplay_gae


def column(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float32)[:, None]


def flags(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=bool)[:, None]


def test_result_is_credited_to_both_players_last_moves():
    # Plies 0..3 of one game; the move at ply 3 mates (+1 for its mover); ply 4 starts a new game.
    rewards, dones = column([0, 0, 0, 1, 0]), flags([0, 0, 0, 1, 0])
    credited, terminal = credit_rewards(rewards, dones)
    assert credited[:, 0].tolist() == [0, 0, -1, 1, 0]
    assert terminal[:, 0].tolist() == [False, False, True, True, False]


def test_returns_follow_each_players_own_stream():
    values = column([0.1, 0.2, 0.3, 0.4, 0.5])
    rewards, dones = column([0, 0, 0, 1, 0]), flags([0, 0, 0, 1, 0])
    advantages, returns = selfplay_gae(rewards, dones, values, np.array([0.7]), 1.0, 1.0)
    # Moves 1 and 3 were the winner's, 0 and 2 the loser's; move 4 (new game, last of the
    # rollout) bootstraps from the other side's value of the final position: -0.7.
    assert returns[:, 0] == pytest.approx([-1, 1, -1, 1, -0.7])
    assert advantages[:, 0] == pytest.approx(returns[:, 0] - values[:, 0])


def test_discounting_is_per_own_move():
    values = column([0, 0, 0, 0])
    rewards, dones = column([0, 0, 0, -1]), flags([0, 0, 0, 1])
    _, returns = selfplay_gae(rewards, dones, values, np.array([0.0]), 0.9, 1.0)
    # The mover at ply 3 lost (-1); its previous move (ply 1) sees -0.9; the opponent's moves
    # (plies 2 and 0) see +1 and +0.9.
    assert returns[:, 0] == pytest.approx([0.9, -0.9, 1.0, -1.0])


def test_a_game_cut_by_the_rollout_bootstraps_from_the_value():
    values = column([0.1, -0.2, 0.3, -0.4])
    rewards, dones = column([0, 0, 0, 0]), flags([0, 0, 0, 0])
    gamma, lam, last = 0.99, 0.8, 0.5
    advantages, returns = selfplay_gae(rewards, dones, values, np.array([last]), gamma, lam)
    # Ply 2's side is to move after the rollout: V(s_T) = 0.5. Ply 3's side sees -0.5.
    a3 = gamma * -last - (-0.4)
    a2 = gamma * last - 0.3
    a1 = gamma * -0.4 - (-0.2) + gamma * lam * a3
    a0 = gamma * 0.3 - 0.1 + gamma * lam * a2
    assert advantages[:, 0] == pytest.approx([a0, a1, a2, a3], abs=1e-6)
    assert returns[:, 0] == pytest.approx(np.array([a0, a1, a2, a3]) + values[:, 0], abs=1e-6)


def test_draws_end_both_streams_with_zero():
    values = column([0.3, 0.3, 0.3])
    rewards, dones = column([0, 0, 0]), flags([0, 1, 0])
    _, returns = selfplay_gae(rewards, dones, values, np.array([0.2]), 1.0, 1.0)
    assert returns[:, 0] == pytest.approx([0.0, 0.0, -0.2])


def test_a_game_ending_on_the_first_ply_of_a_rollout_only_credits_that_move():
    rewards, dones = column([1, 0, 0]), flags([1, 0, 0])
    credited, terminal = credit_rewards(rewards, dones)
    assert credited[:, 0].tolist() == [1, 0, 0]
    assert terminal[:, 0].tolist() == [True, False, False]


def test_envs_are_independent_columns():
    rewards = np.array([[0, 0], [1, 0], [0, -1]], dtype=np.float32)
    dones = np.array([[0, 0], [1, 0], [0, 1]], dtype=bool)
    values = np.zeros((3, 2), dtype=np.float32)
    _, returns = selfplay_gae(rewards, dones, values, np.array([0.0, 0.0]), 1.0, 1.0)
    assert returns[:, 0] == pytest.approx([-1, 1, 0])
    assert returns[:, 1] == pytest.approx([-1, 1, -1])
