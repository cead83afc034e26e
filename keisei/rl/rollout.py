"""Self-play rollouts: N games, one batched forward pass per ply, stored per mover.

Some games may be played against a frozen past opponent (`VersusGames`): its moves are played
but left out of the rollout, which then holds fewer than `steps * N` samples.

With a `GumbelSearch` (search-improved self-play, `selfplay.playouts` > 0) the learner's moves are
the search's, all games searched together each ply, and the rollout also holds each move's
improved policy (`Rollout.targets`), the policy's training target (`improved_policy.py`); the
stored log-probability and value are the network's own at the root, as without search.

`SelfPlayCollector.collect()` plays `steps` plies in each of the env's games with the current
policy (under `torch.inference_mode()`), keeping each transition from the mover's point of view,
then computes per-player GAE. Games run on across rollouts; a game cut by the end of a rollout is
bootstrapped from the value of the position it stopped in.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from keisei.config import SelfPlayConfig
from keisei.model.network import ActorCritic, masked_logits
from keisei.rl.gae import selfplay_gae
from keisei.rl.versus import VersusGames
from keisei.search.batch_evaluator import BatchEvaluator
from keisei.search.gumbel import GumbelSearch
from keisei.shogi import NUM_LABELS, OBS_SHAPE, VecShogiEnv
from keisei.timing import SectionTimer


@dataclass
class GameStats:
    """Counts over every finished self-play game (also saved in checkpoints)."""

    games: int = 0
    black_wins: int = 0
    white_wins: int = 0
    draws: int = 0
    total_plies: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    recent_lengths: list[int] = field(default_factory=list)
    recent_decisive: list[bool] = field(default_factory=list)
    """Whether each of the last 100 games had a winner."""
    versus_games: int = 0
    """Games the learner played against a frozen past opponent (counted in `games` too)."""
    recent_versus: list[float] = field(default_factory=list)
    """The learner's score (1 win, 0.5 draw, 0 loss) in each of the last 100 of those."""

    def add(
        self, winner: int, reason: str, plies: int, versus_score: float | None = None
    ) -> None:
        self.games += 1
        if winner == 0:
            self.black_wins += 1
        elif winner == 1:
            self.white_wins += 1
        else:
            self.draws += 1
        self.total_plies += plies
        self.reasons[reason] += 1
        self.recent_lengths = [*self.recent_lengths[-99:], plies]
        self.recent_decisive = [*self.recent_decisive[-99:], winner in (0, 1)]
        if versus_score is not None:
            self.versus_games += 1
            self.recent_versus = [*self.recent_versus[-99:], versus_score]

    @property
    def recent_versus_score(self) -> float:
        """The learner's mean score over its last 100 games against past opponents (NaN: none
        yet)."""
        return sum(self.recent_versus) / len(self.recent_versus) if self.recent_versus else math.nan

    @property
    def recent_decisive_share(self) -> float:
        recent = self.recent_decisive
        return sum(recent) / len(recent) if recent else 0.0

    @property
    def mean_length(self) -> float:
        return sum(self.recent_lengths) / len(self.recent_lengths) if self.recent_lengths else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "games": self.games,
            "black_wins": self.black_wins,
            "white_wins": self.white_wins,
            "draws": self.draws,
            "total_plies": self.total_plies,
            "reasons": dict(self.reasons),
            "recent_lengths": list(self.recent_lengths),
            "recent_decisive": list(self.recent_decisive),
            "versus_games": self.versus_games,
            "recent_versus": list(self.recent_versus),
        }

    @classmethod
    def merged(cls, parts: list[GameStats]) -> GameStats:
        """The statistics of several ranks' games together: counts summed, recent games
        interleaved (the last 100 kept)."""
        total = cls()
        for part in parts:
            total.games += part.games
            total.black_wins += part.black_wins
            total.white_wins += part.white_wins
            total.draws += part.draws
            total.total_plies += part.total_plies
            total.versus_games += part.versus_games
            total.reasons.update(part.reasons)
        lengths = [length for part in parts for length in part.recent_lengths]
        decisive = [flag for part in parts for flag in part.recent_decisive]
        versus = [score for part in parts for score in part.recent_versus]
        total.recent_lengths, total.recent_decisive = lengths[-100:], decisive[-100:]
        total.recent_versus = versus[-100:]
        return total

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GameStats:
        stats = cls(**{k: v for k, v in state.items() if k not in ("reasons",)})
        stats.reasons = Counter(state.get("reasons", {}))
        return stats


@dataclass
class Rollout:
    """One rollout, flattened to (T*N, ...) torch tensors on the training device."""

    obs: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    games_finished: int
    targets: torch.Tensor | None = None
    """With search: each position's improved policy over the labels (0 on illegal ones)."""

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def sample_actions(
    model: torch.nn.Module, obs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(labels, log-probabilities, values) sampled from the masked policy, one per position."""
    logits, values = model(obs)
    logp = torch.log_softmax(masked_logits(logits.float(), mask), dim=-1)
    actions = torch.multinomial(logp.exp(), 1).squeeze(-1)
    return actions, logp.gather(1, actions[:, None]).squeeze(-1), values.float()


def self_play_search(
    model: ActorCritic, config: SelfPlayConfig, num_envs: int, device: torch.device
) -> GumbelSearch | None:
    """The Gumbel root search of search-improved self-play (`selfplay.playouts` > 0), sized so
    that one forward pass takes the leaves of a round of every game; None for plain PPO."""
    if config.playouts == 0:
        return None
    rows = num_envs * min(config.considered, config.playouts)
    evaluator = BatchEvaluator(model, rows, device)
    return GumbelSearch(evaluator, config.playouts, considered=config.considered)


class SelfPlayCollector:
    """Plays the env's games with the model and fills a rollout buffer."""

    def __init__(
        self,
        env: VecShogiEnv,
        steps: int,
        device: torch.device,
        gamma: float,
        gae_lambda: float,
        timer: SectionTimer | None = None,
        versus: VersusGames | None = None,
        search: GumbelSearch | None = None,
    ) -> None:
        self.env = env
        self.versus = versus or VersusGames(0)
        self.search = search
        self.steps = steps
        self.device = device
        self.gamma = gamma
        self.gae_lambda = gae_lambda
        self.timer = timer or SectionTimer()
        self.stats = GameStats()
        n = env.num_envs
        # On CUDA the rollout's positions and the per-ply batch live in pinned host memory, so
        # their copies to the device run asynchronously.
        self._pinned = device.type == "cuda"
        self._obs = self._host((steps, n, *OBS_SHAPE), torch.uint8)
        self._masks = self._host((steps, n, NUM_LABELS), torch.bool)
        self._ply_obs = self._host((n, *OBS_SHAPE), torch.float32)
        self._ply_mask = self._host((n, NUM_LABELS), torch.bool)
        self._actions = np.zeros((steps, n), dtype=np.int64)
        self._logprobs = np.zeros((steps, n), dtype=np.float32)
        self._values = np.zeros((steps, n), dtype=np.float32)
        self._rewards = np.zeros((steps, n), dtype=np.float32)
        self._dones = np.zeros((steps, n), dtype=bool)
        self._learner = np.ones((steps, n), dtype=bool)
        """Which moves were the learner's (not a past opponent's): only those are trained on."""
        self._targets = (
            np.zeros((steps, n, NUM_LABELS), dtype=np.float32) if search is not None else None
        )
        self._current_obs: np.ndarray | None = None
        self._current_mask: np.ndarray | None = None

    def _host(self, shape: tuple[int, ...], dtype: torch.dtype) -> np.ndarray:
        """A zeroed host array (pinned on CUDA), as numpy."""
        return torch.zeros(shape, dtype=dtype, pin_memory=self._pinned).numpy()

    def _ensure_started(self) -> None:
        if self._current_obs is None:
            obs, mask = self.env.current() if self.env.started else self.env.reset()
            self._current_obs, self._current_mask = obs, mask

    def _to_device(self, obs: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pinned:
            self._ply_obs[: len(obs)] = obs
            self._ply_mask[: len(mask)] = mask
            obs, mask = self._ply_obs[: len(obs)], self._ply_mask[: len(mask)]
        return (
            torch.from_numpy(obs).to(self.device, dtype=torch.float32, non_blocking=True),
            torch.from_numpy(mask).to(self.device, non_blocking=True),
        )

    def collect(self, model: ActorCritic) -> Rollout:
        """Play `steps` plies in every game; return the flattened rollout with advantages."""
        self._ensure_started()
        assert self._current_obs is not None and self._current_mask is not None
        obs, mask = self._current_obs, self._current_mask
        finished = 0
        was_training = model.training
        model.eval()
        try:
            for t in range(self.steps):
                self._obs[t] = obs
                self._masks[t] = mask
                if self.search is not None:
                    with self.timer.section("search"):
                        labels = self._searched_moves(t)
                with self.timer.section("inference"), torch.inference_mode():
                    obs_t, mask_t = self._to_device(obs, mask)
                    if self.search is None:
                        actions, logprobs, values = sample_actions(model, obs_t, mask_t)
                        labels = actions.cpu().numpy()
                        self._logprobs[t] = logprobs.cpu().numpy()
                        self._values[t] = values.cpu().numpy()
                    learner = self.versus.play(obs_t, mask_t, self.env.to_move, labels)
                self._learner[t] = True if learner is None else learner
                self._actions[t] = labels
                with self.timer.section("env"):
                    result = self.env.step(labels)
                self._rewards[t] = result.rewards
                self._dones[t] = result.dones
                for index, record in result.finished:
                    end = record.result
                    assert end is not None
                    versus_score = self.versus.finished(index, end.winner_index)
                    self.stats.add(end.winner_index, end.reason, record.plies, versus_score)
                    finished += 1
                obs, mask = result.obs, result.mask
            with self.timer.section("inference"), torch.inference_mode():
                _, last_values = model(self._to_device(obs, mask)[0])
                last = last_values.float().cpu().numpy()
        finally:
            model.train(was_training)
        self._current_obs, self._current_mask = obs, mask
        with self.timer.section("buffer"):
            advantages, returns = selfplay_gae(
                self._rewards, self._dones, self._values, last, self.gamma, self.gae_lambda
            )
            rollout = self._flatten(advantages, returns, finished)
        return rollout

    def _searched_moves(self, t: int) -> np.ndarray:
        """The search's move in every game where the learner is to move (the others are the
        past opponent's, chosen after); their improved policies, log-probabilities and root
        values stored at ply `t`."""
        assert self.search is not None and self._targets is not None
        n = self.env.num_envs
        rows = np.setdiff1d(np.arange(n), self.versus.opponent_rows(self.env.to_move))
        games = self.env.games
        results = self.search.run_many([games[i] for i in rows])
        labels = np.zeros(n, dtype=np.int64)
        self._targets[t] = 0.0
        self._logprobs[t] = 0.0
        self._values[t] = 0.0
        for row, result in zip(rows, results, strict=True):
            labels[row] = result.label
            self._targets[t, row, result.labels] = result.improved
            chosen = int(np.flatnonzero(result.labels == result.label)[0])
            self._logprobs[t, row] = np.log(max(float(result.prior[chosen]), 1e-30))
            self._values[t, row] = result.value
        return labels

    def _flatten(self, advantages: np.ndarray, returns: np.ndarray, finished: int) -> Rollout:
        """The learner's moves of the rollout, flattened (a past opponent's moves left out)."""
        keep = None if self._learner.all() else self._learner.reshape(-1)

        def tensor(array: np.ndarray) -> torch.Tensor:
            flat = array.reshape(-1, *array.shape[2:])
            return torch.from_numpy(flat if keep is None else flat[keep]).to(
                self.device, non_blocking=True
            )

        return Rollout(
            obs=tensor(self._obs),
            masks=tensor(self._masks),
            actions=tensor(self._actions),
            logprobs=tensor(self._logprobs),
            values=tensor(self._values),
            advantages=tensor(advantages),
            returns=tensor(returns),
            games_finished=finished,
            targets=None if self._targets is None else tensor(self._targets),
        )
