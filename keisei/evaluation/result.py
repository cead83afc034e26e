"""What an evaluation produces: per-game results, summary statistics and an Elo snapshot.

These plain dataclasses cross process boundaries (background evaluation returns them from a worker
process), so they hold only builtin types.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["win", "loss", "draw"]


@dataclass(frozen=True)
class GameResult:
    """One finished evaluation game, from the evaluated agent's point of view."""

    opponent: str
    agent_color: Literal["black", "white"]
    outcome: Outcome
    reason: str
    plies: int
    duration_s: float = 0.0
    record_path: str | None = None


@dataclass(frozen=True)
class EloSnapshot:
    """The latest ratings, for the live display."""

    rating: float
    opponent: str
    last_outcome: Outcome | None
    top: tuple[tuple[str, float], ...] = ()


@dataclass
class EvaluationResult:
    """The games of one evaluation of the weights saved at training step `step`."""

    step: int
    games: list[GameResult] = field(default_factory=list)
    elo: EloSnapshot | None = None
    worker_pid: int | None = None
    duration_s: float = 0.0

    @property
    def total_games(self) -> int:
        return len(self.games)

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for game in self.games if game.outcome == outcome)

    @property
    def wins(self) -> int:
        return self._count("win")

    @property
    def losses(self) -> int:
        return self._count("loss")

    @property
    def draws(self) -> int:
        return self._count("draw")

    def _rate(self, count: int) -> float:
        return count / self.total_games if self.games else 0.0

    @property
    def win_rate(self) -> float:
        return self._rate(self.wins)

    @property
    def loss_rate(self) -> float:
        return self._rate(self.losses)

    @property
    def draw_rate(self) -> float:
        return self._rate(self.draws)

    @property
    def avg_game_length(self) -> float:
        return sum(g.plies for g in self.games) / self.total_games if self.games else 0.0

    @property
    def end_reasons(self) -> dict[str, int]:
        return dict(Counter(game.reason for game in self.games))

    def metrics(self, prefix: str = "evaluation") -> dict[str, float]:
        """Flat, namespaced numbers for the metric sinks."""
        out = {
            f"{prefix}/step": float(self.step),
            f"{prefix}/total_games": float(self.total_games),
            f"{prefix}/wins": float(self.wins),
            f"{prefix}/losses": float(self.losses),
            f"{prefix}/draws": float(self.draws),
            f"{prefix}/win_rate": self.win_rate,
            f"{prefix}/loss_rate": self.loss_rate,
            f"{prefix}/draw_rate": self.draw_rate,
            f"{prefix}/avg_game_length": self.avg_game_length,
            f"{prefix}/duration_s": self.duration_s,
        }
        for reason, count in self.end_reasons.items():
            out[f"{prefix}/reason/{reason}"] = float(count)
        if self.elo is not None:
            out[f"{prefix}/elo"] = self.elo.rating
        return out

    def summary(self) -> str:
        """One line for the log."""
        text = (
            f"step {self.step}: {self.total_games} games, {self.wins} W / {self.losses} L / "
            f"{self.draws} D (win rate {self.win_rate:.1%}), avg length {self.avg_game_length:.1f}"
        )
        if self.elo is not None:
            text += f", Elo {self.elo.rating:.0f}"
        return text
