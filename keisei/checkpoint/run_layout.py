"""The layout of a run directory: every file and folder of `runs/<run-name>/`, named once.

Whoever reads or writes part of a run (the trainer, background evaluation, `keisei evaluate`,
`keisei ratings`, `keisei report`, the USI engine locating a checkpoint) asks a `RunLayout` for
the path, so a name is spelled here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keisei.checkpoint.layout import CHECKPOINTS_SUBDIR, checkpoint_name

CONFIG_FILE = "config.yaml"
LOG_FILE = "train.log"
RANK_LOG_FILE = "train.rank{rank}.log"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
ELO_DATABASE = "elo.sqlite"
GAMES_DIR = "games"
REPORT_DIR = "report"
LADDER_DATABASE = "ladder.sqlite"
LADDER_PLOT = "ladder.png"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (nothing is created by asking)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """The effective configuration the run was started (or last resumed) with."""
        return self.root / CONFIG_FILE

    @property
    def log(self) -> Path:
        """Rank 0's log (the whole log of a single process)."""
        return self.root / LOG_FILE

    def rank_log(self, rank: int) -> Path:
        """The log of rank `rank` of several (`train.log` for rank 0)."""
        return self.log if rank == 0 else self.root / RANK_LOG_FILE.format(rank=rank)

    @property
    def metrics(self) -> Path:
        """One JSON object per recorded step."""
        return self.root / METRICS_FILE

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def checkpoints(self) -> Path:
        """The checkpoint store: `step_NNNNNNNNN/` directories and the `latest` pointer."""
        return self.root / CHECKPOINTS_SUBDIR

    @property
    def elo_database(self) -> Path:
        """Players and every rated game (SQLite)."""
        return self.root / ELO_DATABASE

    @property
    def games(self) -> Path:
        """Every evaluation game as KIF and CSA, one folder per evaluation."""
        return self.root / GAMES_DIR

    def games_of_step(self, step: int) -> Path:
        """The games of the evaluation during training of the checkpoint at `step`."""
        return self.games / checkpoint_name(step)

    def games_of_session(self, label: str) -> Path:
        """The games of one `keisei evaluate` invocation (`label`: e.g. a timestamp)."""
        return self.games / f"evaluate-{label}"

    def games_of_ladder(self, label: str) -> Path:
        """The games of one `keisei ladder` invocation, a folder per reference, and its plot."""
        return self.games / f"ladder-{label}"

    def ladder_plot(self, label: str) -> Path:
        """The plot of one `keisei ladder` invocation (references and the agent's rating)."""
        return self.games_of_ladder(label) / LADDER_PLOT

    @property
    def shared_ladder_database(self) -> Path:
        """The ladder registry beside the run, shared by every run in its parent directory
        (`logging.model_dir`): the references' fixed ratings and all ladder games."""
        return self.root.parent / LADDER_DATABASE

    @property
    def report(self) -> Path:
        """PNG plots and `report.md`."""
        return self.root / REPORT_DIR
