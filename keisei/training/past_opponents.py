"""Which past checkpoint the learner plays in its versus games (`selfplay.past_opponent_share`).

Each time the step reaches a multiple of the checkpoint interval (at the start of the next
epoch, on every rank), the opponent is drawn uniformly from the run's `selfplay.past_opponents`
newest clean checkpoints and loaded into a frozen copy of the network. Rank 0 lists them (after
the write in flight has landed) and tells the others; the draw comes from a generator seeded by
`training.seed`, the same on every rank, so every rank plays the same opponent. The choice and
the generator go into checkpoints: a resumed run plays the opponent the stopped one played and
draws the same ones after it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from keisei.checkpoint import CheckpointStore, load_model_weights
from keisei.checkpoint.layout import checkpoint_dirs, parse_checkpoint_name
from keisei.model import ActorCritic, Architecture, Precision
from keisei.rl.versus import VersusGames
from keisei.training.distributed import World

_SEED_OFFSET = 104_729


class PastOpponents:
    """Draws and loads the frozen opponent of `versus` from `store`'s checkpoints."""

    def __init__(
        self,
        versus: VersusGames,
        store: CheckpointStore,
        *,
        architecture: Architecture,
        precision: Precision,
        device: torch.device,
        pool_size: int,
        interval: int,
        seed: int,
        world: World,
        logger: logging.Logger,
    ) -> None:
        self.versus = versus
        self.store = store
        self.architecture = architecture
        self.precision = precision
        """The learner's: the opponent computes in the same precision."""
        self.device = device
        self.pool_size = pool_size
        self.interval = interval
        self.world = world
        self.logger = logger
        self.rng = np.random.default_rng(seed + _SEED_OFFSET)
        self.drawn_at: int | None = None
        """The step of the last draw (a draw happens once per multiple of `interval`)."""

    @property
    def enabled(self) -> bool:
        return self.versus.count > 0

    def _pool(self, step: int) -> list[str]:
        """The newest clean checkpoints up to `step`, oldest first (on rank 0)."""
        self.store.committed(step)  # waits for the write in flight, if any
        names = []
        for path in checkpoint_dirs(self.store.directory):
            parsed = parse_checkpoint_name(path.name)
            if parsed is not None and parsed[1] and parsed[0] <= step:
                names.append(path.name)
        return names[-self.pool_size :]

    def refresh(self, step: int) -> None:
        """At the start of an epoch, on every rank: draw a new opponent when `step` is a
        multiple of the interval not drawn at yet."""
        if not self.enabled or step == 0 or step % self.interval or step == self.drawn_at:
            return
        pool = self._pool(step) if self.world.is_main else None
        pool = self.world.broadcast_from_main(pool, "the past-opponent pool")
        self.drawn_at = step
        if not pool:
            return
        self._load(pool[int(self.rng.integers(len(pool)))])

    def _load(self, name: str) -> bool:
        try:
            weights = load_model_weights(self.store.directory / name)
        except Exception as exc:  # a checkpoint removed or damaged since: keep playing on
            self.logger.warning("past opponent %s cannot be loaded (%s); keeping %s",
                                name, exc, self.versus.opponent_name)  # fmt: skip
            return False
        with torch.random.fork_rng(devices=[]):  # building it draws no training randomness
            model = ActorCritic(self.architecture, self.precision)
        model.load_state_dict(weights)
        model.to(self.device)
        self.versus.set_opponent(model, name)
        self.logger.info("versus games now play the past opponent %s", name)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "opponent": self.versus.opponent_name,
            "drawn_at": self.drawn_at,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the opponent and the draws of a checkpoint (its opponent must still be on
        disk: retention keeps the newest `checkpoint.keep_last`)."""
        if not state:
            return
        self.rng.bit_generator.state = state["rng"]
        self.drawn_at = state.get("drawn_at")
        name = state.get("opponent")
        if name and not self._load(name):
            self.logger.warning("this resume is not exact: its past opponent is gone")
