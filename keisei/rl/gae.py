"""Generalised advantage estimation for two-player self-play.

Every transition is stored from its mover's point of view, and a move's successor is that same
player's next move: two plies later in the same game. So, per game:

- the result is credited to both players' last moves: the final mover gets its reward `r`, the
  opponent's last move (one ply earlier) gets `-r`; both are terminal;
- otherwise a move at ply `t` bootstraps from the value at ply `t + 2` (same side to move);
- a game cut by the end of the rollout bootstraps from the value of the position after the
  rollout, `V(s_T)`: the move at `T-2` has that side to move, so it uses `V(s_T)`; the move at
  `T-1` was made by the other side, for whom that position is worth `-V(s_T)` (zero-sum).
"""

from __future__ import annotations

import numpy as np


def credit_rewards(rewards: np.ndarray, dones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(credited rewards, terminal flags), both (T, N), from the env's per-mover rewards/dones.

    `rewards[t, i]` is the reward of the move played at step t in env i (non-zero only when that
    move ended the game, `dones[t, i]`).
    """
    credited = rewards.astype(np.float32, copy=True)
    terminal = dones.astype(bool, copy=True)
    # The opponent's last move: the step before a game-ending move, if it was in the same game.
    ends_next = dones[1:] & ~dones[:-1]
    credited[:-1] -= np.where(ends_next, rewards[1:], 0.0)
    terminal[:-1] |= ends_next
    return credited, terminal


def selfplay_gae(
    rewards: np.ndarray,
    dones: np.ndarray,
    values: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns, both (T, N) float32.

    rewards, dones, values: (T, N) per step and env; last_values: (N,), the value of the
    position each env is in after the rollout, for its side to move.
    """
    steps = rewards.shape[0]
    credited, terminal = credit_rewards(rewards, dones)
    next_values = np.empty_like(values, dtype=np.float32)
    next_values[:-2] = values[2:]
    if steps >= 2:
        next_values[steps - 2] = last_values
    next_values[steps - 1] = -last_values
    alive = 1.0 - terminal.astype(np.float32)
    deltas = credited + gamma * alive * next_values - values
    advantages = np.zeros_like(deltas, dtype=np.float32)
    for t in range(steps - 1, -1, -1):
        advantages[t] = deltas[t]
        if t + 2 < steps:
            advantages[t] += gamma * gae_lambda * alive[t] * advantages[t + 2]
    return advantages, advantages + values
