"""The opponent pool: the run's own past checkpoints, as evaluation opponents.

The checkpoints training writes join the pool (the newest `size` are kept); each evaluation
samples members from it, uniformly or nearest to the agent's current rating. The fixed references
(e.g. random) are not pool members: they are played at every evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from keisei.checkpoint.layout import checkpoint_dirs, step_of
from keisei.evaluation.players.network import checkpoint_player_name


@dataclass(frozen=True)
class PoolMember:
    name: str
    path: str
    step: int


class OpponentPool:
    """A bounded set of past checkpoints to play against."""

    def __init__(
        self,
        size: int,
        sampling: Literal["uniform", "nearest"] = "uniform",
        rng: np.random.Generator | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.sampling = sampling
        self._rng = rng or np.random.default_rng()
        self._members: list[PoolMember] = []

    @property
    def members(self) -> list[PoolMember]:
        return list(self._members)

    def add(self, checkpoint: Path) -> None:
        step = step_of(checkpoint.name)
        if step is None or self.size == 0:
            return
        if any(m.path == str(checkpoint) for m in self._members):
            return
        self._members.append(PoolMember(checkpoint_player_name(checkpoint), str(checkpoint), step))
        self._members.sort(key=lambda m: m.step)
        del self._members[: max(len(self._members) - self.size, 0)]

    def refresh(self, directory: Path, *, before_step: int | None = None) -> None:
        """Add the complete checkpoints in `directory` (those older than `before_step`)."""
        self._members = [m for m in self._members if Path(m.path).is_dir()]
        if not directory.is_dir():
            return
        for checkpoint in checkpoint_dirs(directory):
            step = step_of(checkpoint.name)
            if step is not None and (before_step is None or step < before_step):
                self.add(checkpoint)

    def sample(
        self,
        count: int,
        *,
        ratings: Mapping[str, float] | None = None,
        current_rating: float | None = None,
    ) -> list[PoolMember]:
        """Up to `count` distinct members, by the pool's sampling rule."""
        count = min(count, len(self._members))
        if count == 0:
            return []
        if self.sampling == "nearest" and ratings and current_rating is not None:
            known = [m for m in self._members if m.name in ratings]
            unknown = [m for m in self._members if m.name not in ratings]
            known.sort(key=lambda m: abs(ratings[m.name] - current_rating))
            return (unknown[::-1] + known)[:count] if unknown else known[:count]
        picks = self._rng.choice(len(self._members), size=count, replace=False)
        return [self._members[int(i)] for i in sorted(picks)]
