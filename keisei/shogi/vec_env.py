"""`VecShogiEnv`: N self-play games stepped together into preallocated numpy arrays.

Each step plays one move in every game. A game that ends restarts at once (the observation
returned for it is the new game's first position) and its record is handed out in
`StepResult.finished`. Rewards are for the side that just moved: +1 win, -1 loss, 0 otherwise.

Buffers are reused: the arrays in a `StepResult` (and those `reset()` returns) are overwritten by
the next `step()`/`reset()`. Copy anything you need to keep longer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from keisei.log import get_logger
from keisei.shogi.encoding import (
    FEATURES1_NUM,
    NUM_LABELS,
    OBS_SHAPE,
    check_feature_layout,
    labels_for_mixed_moves,
    write_features,
)
from keisei.shogi.game import DEFAULT_MAX_PLIES, ShogiGame
from keisei.shogi.records import GameRecord
from keisei.shogi.sfen import normalize_sfen

_log = get_logger("shogi.env")
_OPENING_ATTEMPTS = 100


@dataclass(slots=True)
class StepResult:
    """What one `step()` produced, per environment (arrays reused by the next step).

    `movers[i]` is the side (0 black, 1 white) that just moved in env i: `rewards[i]` is its
    reward. `to_move[i]` is the side to move in `obs[i]` (after an automatic restart, the new
    game's first mover). `winners[i]` is 0/1 for a decided game that ended this step, else -1.
    """

    obs: np.ndarray
    mask: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    reasons: list[str | None]
    winners: np.ndarray
    movers: np.ndarray
    to_move: np.ndarray
    finished: list[tuple[int, GameRecord]]


class VecShogiEnv:
    """N games of self-play with legal-move masks over the 2187 dlshogi labels.

    `start_sfens` (default: the standard position) are used in turn for successive new games;
    `random_opening_plies` uniformly random legal moves are then played to vary the opening
    (they are part of the record, counted in `GameRecord.opening_plies`). Everything random
    comes from `seed`, so the same seed and the same actions give the same games.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        seed: int = 0,
        max_plies: int | None = DEFAULT_MAX_PLIES,
        declaration: bool = True,
        start_sfens: Sequence[str] | None = None,
        random_opening_plies: int = 0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, not {num_envs}")
        if random_opening_plies < 0:
            raise ValueError(f"random_opening_plies must be >= 0, not {random_opening_plies}")
        if max_plies is not None and max_plies <= random_opening_plies:
            raise ValueError(
                f"max_plies ({max_plies}) must exceed random_opening_plies ({random_opening_plies})"
            )
        self.num_envs = num_envs
        self.max_plies = max_plies
        self.declaration = declaration
        self.random_opening_plies = random_opening_plies
        self._start_sfens = [normalize_sfen(s) for s in (start_sfens or ["startpos"])]
        if not self._start_sfens:
            raise ValueError("start_sfens must not be empty")
        for sfen in self._start_sfens:
            if self._make_game(sfen, "start check").is_over:
                raise ValueError(f"start position is already decided: {sfen}")
        self._rng = np.random.default_rng(seed)
        self._games_started = 0
        self._games: list[ShogiGame] = []
        self._obs = np.zeros((num_envs, *OBS_SHAPE), dtype=np.float32)
        self._features1 = [self._obs[i, :FEATURES1_NUM] for i in range(num_envs)]
        self._features2 = [self._obs[i, FEATURES1_NUM:] for i in range(num_envs)]
        self._mask = np.zeros((num_envs, NUM_LABELS), dtype=bool)
        self._rows = np.arange(num_envs)
        # All games' legal moves and labels, flattened (refreshed by `_encode_moves`).
        self._flat_moves = np.zeros(0, dtype=np.int64)
        self._flat_labels = np.zeros(0, dtype=np.intp)
        self._flat_env = np.zeros(0, dtype=np.intp)
        self._rewards = np.zeros(num_envs, dtype=np.float32)
        self._dones = np.zeros(num_envs, dtype=bool)
        self._winners = np.full(num_envs, -1, dtype=np.int8)
        self._movers = np.zeros(num_envs, dtype=np.int8)
        self._to_move = np.zeros(num_envs, dtype=np.int8)
        self._reasons: list[str | None] = [None] * num_envs

    # --- games -------------------------------------------------------------------------------

    @property
    def games(self) -> tuple[ShogiGame, ...]:
        """The running games (read them; play only through `step`)."""
        return tuple(self._games)

    @property
    def to_move(self) -> np.ndarray:
        """Side to move (0/1) in each env's current position (reused buffer)."""
        return self._to_move

    def _make_game(self, sfen: str, name: str) -> ShogiGame:
        return ShogiGame(sfen, max_plies=self.max_plies, declaration=self.declaration, name=name)

    def _new_game(self, index: int) -> ShogiGame:
        """The next game for env `index`: next start SFEN, then the random opening plies."""
        sfen = self._start_sfens[self._games_started % len(self._start_sfens)]
        name = f"env {index} game {self._games_started}"
        self._games_started += 1
        for _ in range(_OPENING_ATTEMPTS):
            game = self._make_game(sfen, name)
            for _ in range(self.random_opening_plies):
                moves = game._legal
                if game.push_move(moves[int(self._rng.integers(len(moves)))]) is not None:
                    break
            if not game.is_over:
                game.opening_plies = game.ply
                return game
            _log.debug("random opening of %s ended the game; drawing another", name)
        raise RuntimeError(f"{_OPENING_ATTEMPTS} random openings from {sfen} all ended the game")

    def _encode_moves(self) -> None:
        """Labels and masks of every game's legal moves in one vectorised pass (cheaper than
        one small numpy call per game). `_to_move` must already be up to date."""
        legal_lists = [game._legal for game in self._games]
        counts = np.fromiter(map(len, legal_lists), dtype=np.intp, count=self.num_envs)
        total = int(counts.sum())
        moves = np.fromiter(chain.from_iterable(legal_lists), dtype=np.int64, count=total)
        env_of_move = np.repeat(self._rows, counts)
        labels = labels_for_mixed_moves(moves, self._to_move[env_of_move])
        self._mask.fill(False)
        self._mask[env_of_move, labels] = True
        self._flat_moves, self._flat_labels, self._flat_env = moves, labels, env_of_move

    def _moves_for(self, chosen: np.ndarray) -> list[int]:
        """The legal move each env's label denotes; IllegalMoveError (naming the env) if any
        label is not legal there. Nothing is played before every label has been checked."""
        in_range = (chosen >= 0) & (chosen < NUM_LABELS)
        legal = self._mask[self._rows, np.where(in_range, chosen, 0)] & in_range
        if not legal.all():
            bad = int(np.flatnonzero(~legal)[0])
            self._games[bad].move_for_label(int(chosen[bad]))  # raises IllegalMoveError
            raise AssertionError(f"mask of env {bad} disagrees with its game")  # pragma: no cover
        # Labels are distinct within a game, so exactly one flat entry per env matches.
        hits = np.flatnonzero(self._flat_labels == chosen[self._flat_env])
        return self._flat_moves[hits].tolist()

    # --- the gym-like interface ----------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start every game afresh; returns (obs, mask), both reused buffers.

        With `seed`, reseeds first; without, continues the environment's random stream.
        """
        check_feature_layout()
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._games_started = 0
        self._games = [self._new_game(i) for i in range(self.num_envs)]
        for i, game in enumerate(self._games):
            write_features(game._board, self._features1[i], self._features2[i])
            self._to_move[i] = game._turn
        self._encode_moves()
        return self._obs, self._mask

    def step(self, labels: np.ndarray | Sequence[int]) -> StepResult:
        """Play `labels[i]` in game i. Every label is checked before any game moves: an illegal
        one raises IllegalMoveError (naming the env, the label and the SFEN) and no game changes.
        """
        if not self._games:
            raise RuntimeError("call reset() before step()")
        check_feature_layout()
        chosen = np.asarray(labels)
        if chosen.shape != (self.num_envs,) or chosen.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers of shape ({self.num_envs},)")
        games = self._games
        moves = self._moves_for(chosen.astype(np.int64))
        rewards, dones, winners, movers = self._rewards, self._dones, self._winners, self._movers
        rewards.fill(0.0)
        dones.fill(False)
        winners.fill(-1)
        reasons = self._reasons
        reasons[:] = [None] * self.num_envs
        finished: list[tuple[int, GameRecord]] = []
        features1, features2 = self._features1, self._features2
        movers[:] = self._to_move
        turns = []
        for i, game in enumerate(games):
            end = game._apply(moves[i])
            if end is not None:
                dones[i] = True
                reasons[i] = end.reason
                winners[i] = end.winner_index
                rewards[i] = end.reward_for(int(movers[i]))
                finished.append((i, game.record()))
                game = games[i] = self._new_game(i)
            write_features(game._board, features1[i], features2[i])
            turns.append(game._turn)
        self._to_move[:] = turns
        self._encode_moves()
        return StepResult(
            self._obs,
            self._mask,
            rewards,
            dones,
            reasons,
            winners,
            movers,
            self._to_move,
            finished,
        )

    def legal_mask(self) -> np.ndarray:
        """The current masks (the buffer `reset`/`step` return)."""
        return self._mask

    # --- resumable state -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether games are running (after `reset()` or `load_state_dict()`)."""
        return bool(self._games)

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        """(obs, mask) of the running games, as the last `reset`/`step` returned them."""
        if not self._games:
            raise RuntimeError("call reset() before current()")
        return self._obs, self._mask

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: each running game (start SFEN and USI moves) and the random
        stream, so that a restored environment plays on exactly as this one would."""
        return {
            "num_envs": self.num_envs,
            "games_started": self._games_started,
            "rng": _jsonable(self._rng.bit_generator.state),
            "games": [
                {
                    "start_sfen": game.start_sfen,
                    "usi_moves": list(game.usi_moves),
                    "name": game.name,
                    "opening_plies": game.opening_plies,
                }
                for game in self._games
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned; every move is validated while replaying."""
        if int(state["num_envs"]) != self.num_envs:
            raise ValueError(
                f"saved environment has {state['num_envs']} games, this one {self.num_envs}"
            )
        check_feature_layout()
        games = []
        for saved in state["games"]:
            game = self._make_game(saved["start_sfen"], saved["name"])
            for usi in saved["usi_moves"]:
                game.push_usi(usi)
            game.opening_plies = int(saved["opening_plies"])
            if game.is_over:
                raise ValueError(f"saved game {saved['name']} is already over")
            games.append(game)
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._rng = rng
        self._games_started = int(state["games_started"])
        self._games = games
        for i, game in enumerate(games):
            write_features(game._board, self._features1[i], self._features2[i])
            self._to_move[i] = game._turn
        self._encode_moves()

    def sample_random_labels(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """One uniformly random legal label per env (baselines, tests, benchmarks); draws from
        `rng`, or from the environment's own seeded stream."""
        generator = rng if rng is not None else self._rng
        counts = np.bincount(self._flat_env, minlength=self.num_envs)
        starts = np.cumsum(counts) - counts
        picks = starts + (generator.random(self.num_envs) * counts).astype(np.int64)
        return self._flat_labels[picks].astype(np.int64)


def _jsonable(value: Any) -> Any:
    """NumPy bit-generator state with plain ints (it may hold numpy integers)."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value
