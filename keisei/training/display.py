"""What a person watching a training run sees.

`LiveDisplay` draws a Rich panel (progress bar with steps, steps/s and ETA; the latest losses; game
statistics; the latest evaluation and Elo snapshot) that refreshes in place. `PlainDisplay` writes
one log line per epoch instead, for CI and log files (`keisei train --no-live`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from keisei.evaluation.result import EloSnapshot
from keisei.log import get_console, get_logger


@dataclass
class ProgressSnapshot:
    """The numbers a display shows after an epoch."""

    step: int
    total_steps: int
    steps_per_second: float
    losses: dict[str, float] = field(default_factory=dict)
    games: int = 0
    black_wins: int = 0
    white_wins: int = 0
    draws: int = 0
    mean_game_length: float = 0.0
    end_reasons: dict[str, int] = field(default_factory=dict)
    evaluation: str | None = None
    elo: EloSnapshot | None = None

    @property
    def eta_seconds(self) -> float:
        remaining = max(self.total_steps - self.step, 0)
        return remaining / self.steps_per_second if self.steps_per_second > 0 else float("inf")


class Display(Protocol):
    def start(self, step: int, total_steps: int) -> None: ...

    def update(self, snapshot: ProgressSnapshot) -> None: ...

    def stop(self) -> None: ...


def _format_eta(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class NoDisplay:
    """Nothing: ranks other than 0 show no progress (rank 0 shows every rank's)."""

    def start(self, step: int, total_steps: int) -> None:
        pass

    def update(self, snapshot: ProgressSnapshot) -> None:
        pass

    def stop(self) -> None:
        pass


class PlainDisplay:
    """One INFO line per epoch."""

    def __init__(self) -> None:
        self._logger = get_logger("progress")

    def start(self, step: int, total_steps: int) -> None:
        self._logger.info("training from step %d to %d", step, total_steps)

    def update(self, s: ProgressSnapshot) -> None:
        losses = " ".join(
            f"{key.split('/')[-1]}={value:.4f}"
            for key, value in s.losses.items()
            if key in ("ppo/policy_loss", "ppo/value_loss", "ppo/entropy")
        )
        self._logger.info(
            "step %d/%d (%.0f steps/s, ETA %s) | %s | games %d: B %d W %d D %d, mean length %.0f",
            s.step,
            s.total_steps,
            s.steps_per_second,
            _format_eta(s.eta_seconds),
            losses,
            s.games,
            s.black_wins,
            s.white_wins,
            s.draws,
            s.mean_game_length,
        )

    def stop(self) -> None:
        pass


class LiveDisplay:
    """A Rich panel refreshed in place; log messages scroll above it."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=get_console(),
        )
        self._task = self._progress.add_task("training", total=1, rate="-")
        self._live: Live | None = None
        self._latest: ProgressSnapshot | None = None
        self._started = time.monotonic()

    def start(self, step: int, total_steps: int) -> None:
        self._progress.update(self._task, completed=step, total=total_steps)
        self._live = Live(self._render(), console=get_console(), refresh_per_second=4)
        self._live.start()

    def update(self, snapshot: ProgressSnapshot) -> None:
        self._latest = snapshot
        self._progress.update(
            self._task,
            completed=snapshot.step,
            total=snapshot.total_steps,
            rate=f"{snapshot.steps_per_second:,.0f}",
        )
        if self._live is not None:
            self._live.update(self._render())

    def _render(self) -> Group:
        s = self._latest
        if s is None:
            return Group(self._progress)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        losses = "  ".join(
            f"{key.removeprefix('ppo/')} {value:.4f}"
            for key, value in s.losses.items()
            if key in ("ppo/policy_loss", "ppo/value_loss", "ppo/entropy", "ppo/approx_kl")
        )
        table.add_row("losses", losses or "-")
        table.add_row(
            "games",
            f"{s.games} played: black {s.black_wins}, white {s.white_wins}, draws {s.draws}; "
            f"mean length {s.mean_game_length:.0f} plies",
        )
        if s.end_reasons:
            table.add_row(
                "end reasons", ", ".join(f"{k} {v}" for k, v in sorted(s.end_reasons.items()))
            )
        table.add_row("evaluation", s.evaluation or "none yet")
        if s.elo is not None:
            top = ", ".join(f"{name} {rating:.0f}" for name, rating in s.elo.top[:3])
            table.add_row(
                "Elo",
                f"{s.elo.rating:.0f} (last vs {s.elo.opponent}: {s.elo.last_outcome or '-'})"
                + (f"; top: {top}" if top else ""),
            )
        return Group(self._progress, table)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None
