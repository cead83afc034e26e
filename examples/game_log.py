"""An example callback for `keisei train --callback game_log:GameLog` (with `PYTHONPATH=examples`).

Every `every` steps it appends the self-play game counts to `games.csv` in the run directory and
reports the share of decisive games as a metric (`custom/decisive_share`).
"""

from __future__ import annotations

import csv

from keisei.training.callbacks import Callback, Metrics, TrainerView
from keisei.training.schedule import EveryNSteps


class GameLog(Callback):
    def __init__(self, every: int = 10_240) -> None:
        super().__init__()
        self.schedule = EveryNSteps(every)  # aligned to whole epochs by the manager

    def on_step_end(self, trainer: TrainerView) -> Metrics:
        games = trainer.total_episodes_completed
        path = trainer.run_dir / "games.csv"
        new = not path.exists()
        with path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["step", "games", "black_wins", "white_wins", "draws"])
            writer.writerow([trainer.global_timestep, games, trainer.black_wins,
                             trainer.white_wins, trainer.draws])  # fmt: skip
        decisive = trainer.black_wins + trainer.white_wins
        return {"custom/decisive_share": decisive / games if games else 0.0}
