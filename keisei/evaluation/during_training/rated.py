"""Which of a run's checkpoints are rated players: what retention keeps (`checkpoint.keep_rated`).

A checkpoint is a player once a rating names it: in the run's Elo registry (`elo.sqlite`: every
evaluation during training, `keisei evaluate`, `keisei ladder`) or in the ladder database beside
the run (`ladder.sqlite`, shared by the runs of a directory). The trainer pins these steps in its
checkpoint store (`CheckpointStore.pin(RatedCheckpoints(run_dir), rated=True)`); a checkpoint with
an `evaluation.json` is pinned by the store itself, which may not read the registries (they
belong to this layer). Both databases are only read: nothing is created, written or locked.
"""

from __future__ import annotations

from pathlib import Path

from keisei.checkpoint import step_of
from keisei.checkpoint.run_layout import RunLayout
from keisei.evaluation.ladder.registry import read_player_names
from keisei.evaluation.ratings.elo import read_players


def checkpoint_step(player: str, run_name: str) -> int | None:
    """The step of the checkpoint of run `run_name` that the registry name `player` designates
    (`<run>/step_NNNNNNNNN`, with a search suffix such as `+puct32` or not), else None."""
    run, _, checkpoint = player.partition("/")
    if run != run_name:
        return None
    return step_of(checkpoint.split("+", 1)[0])


class RatedCheckpoints:
    """Called, the steps of `run_dir`'s checkpoints that are rated players (a pin source)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.layout = RunLayout(Path(run_dir))

    def __call__(self) -> set[int]:
        layout = self.layout
        run_name = layout.root.name
        store = layout.checkpoints.resolve()
        found: list[int | None] = []
        for player in read_players(layout.elo_database):
            # By its path (a checkpoint of this store) and by its name (`<run>/step_...`: also
            # when the run directory was moved since).
            if player.path is not None and Path(player.path).parent.resolve() == store:
                found.append(step_of(Path(player.path).name))
            found.append(checkpoint_step(player.name, run_name))
        ladder = read_player_names(layout.shared_ladder_database)
        found += [checkpoint_step(name, run_name) for name in ladder]
        return {step for step in found if step is not None}
