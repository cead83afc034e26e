"""What each rank adds to a checkpoint besides the shared model and optimizer: its games in
progress (and which side the learner plays in its versus games), its game statistics and its
random state.

Every epoch the ranks send theirs to rank 0 (`RankStates.share`), before any callback runs, so a
checkpoint written by rank 0 at that step holds every rank's state without a collective inside
rank-zero work. Rank 0's own state goes where a single process puts it (`extra.env`,
`extra.game_stats`, the manifest's random state); the others' under `extra.peers`.

On resume with the same number of ranks each rank takes its own state back, so the run continues
bitwise as if it had not stopped (on CPU). With another number of ranks, rank 0 continues its own
games with every rank's statistics summed, and the games of the other ranks are restarted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from keisei.checkpoint.rng import capture_rng_state, restore_rng_state
from keisei.rl.rollout import GameStats, SelfPlayCollector
from keisei.training.distributed import World


class RankStates:
    """The per-rank state of one trainer: shared each epoch, saved by rank 0, restored on
    resume."""

    def __init__(self, world: World, collector: SelfPlayCollector) -> None:
        self.world = world
        self.collector = collector
        self.peers: list[dict[str, Any]] = []
        """Ranks 1.. as of the last epoch boundary (on rank 0)."""
        self.all_stats: GameStats = collector.stats
        """Every rank's game statistics summed (on rank 0; this rank's own elsewhere)."""

    def _own(self) -> dict[str, Any]:
        state: dict[str, Any] = {"game_stats": self.collector.stats.state_dict()}
        if not self.world.is_main:
            state["env"] = self.collector.env.state_dict()
            state["versus"] = self.collector.versus.state_dict()
            state["rng"] = capture_rng_state()
        return state

    def share(self) -> None:
        """At an epoch boundary, on every rank: send this rank's state to rank 0."""
        if not self.world.distributed:
            self.all_stats = self.collector.stats
            return
        states = self.world.gather_to_main(self._own(), "the ranks' game states")
        if states is None:
            self.all_stats = self.collector.stats
            return
        self.peers = states[1:]
        self.all_stats = GameStats.merged(
            [self.collector.stats, *(GameStats.from_state(s["game_stats"]) for s in self.peers)]
        )

    def checkpoint_extra(self) -> dict[str, Any]:
        """Rank 0's part of a checkpoint's `extra`."""
        return {
            "env": self.collector.env.state_dict(),
            "versus": self.collector.versus.state_dict(),
            "game_stats": self.collector.stats.state_dict(),
            "world_size": self.world.size,
            "peers": self.peers,
        }

    def restore(self, extra: Mapping[str, Any], logger: logging.Logger) -> bool:
        """Take this rank's state back from a checkpoint's `extra`. True when the random state
        is the manifest's (rank 0's) and is still to be restored by the caller, last."""
        saved_size = int(extra.get("world_size", 1))
        saved = [
            {
                "env": extra["env"],
                "versus": extra.get("versus", {}),
                "game_stats": extra["game_stats"],
                "rng": None,
            },
            *extra.get("peers", []),
        ]
        rank, size = self.world.rank, self.world.size
        if saved_size == size and len(saved) == size:
            mine = saved[rank]
            self.collector.stats = GameStats.from_state(mine["game_stats"])
            self.collector.env.load_state_dict(mine["env"])
            self.collector.versus.load_state_dict(mine.get("versus", {}))
            if mine["rng"] is None:
                return True
            restore_rng_state(mine["rng"])
            return False
        if rank != 0:
            return False  # new games, seeded by seed + rank; statistics start at zero
        self.collector.env.load_state_dict(saved[0]["env"])
        self.collector.versus.load_state_dict(saved[0].get("versus", {}))
        self.collector.stats = GameStats.merged(
            [GameStats.from_state(s["game_stats"]) for s in saved]
        )
        if saved_size > size:
            what = f"the games in progress of {_ranks(size, saved_size)} are dropped"
        else:
            what = f"{_ranks(saved_size, size)} start new games"
        logger.warning(
            "resuming with %d rank(s) from a checkpoint written by %d: rank 0 continues its "
            "games and keeps every rank's game statistics; %s",
            size,
            saved_size,
            what,
        )
        return True


def _ranks(first: int, end: int) -> str:
    return f"rank {first}" if end - first == 1 else f"ranks {first}..{end - 1}"
