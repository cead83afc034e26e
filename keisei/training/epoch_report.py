"""What an epoch reports: its row of metrics (the update's losses, speed, game statistics) and the
snapshot the progress display shows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from keisei.rl.rollout import GameStats
from keisei.training.callback_system.base import _CallbackBase
from keisei.training.display import ProgressSnapshot


def epoch_metrics(
    update: Mapping[str, float], steps_per_second: float, stats: GameStats, *, versus: bool
) -> dict[str, float]:
    """The metrics of an epoch; `versus`: the learner also plays past opponents."""
    return {
        **update,
        "train/steps_per_second": steps_per_second,
        "games/finished": float(stats.games),
        "games/black_wins": float(stats.black_wins),
        "games/white_wins": float(stats.white_wins),
        "games/draws": float(stats.draws),
        "games/mean_length": stats.mean_length,
        "games/decisive_share_recent": stats.recent_decisive_share,
        **(versus_metrics(stats) if versus else {}),
    }


def versus_metrics(stats: GameStats) -> dict[str, float]:
    """The versus games played, and the learner's score against past opponents (last 100)."""
    metrics = {"selfplay/past_opponent_games": float(stats.versus_games)}
    if stats.recent_versus:
        metrics["selfplay/past_opponent_score"] = stats.recent_versus_score
    return metrics


def progress_snapshot(
    step: int,
    total_steps: int,
    steps_per_second: float,
    update: Mapping[str, float],
    stats: GameStats,
    callbacks: Iterable[_CallbackBase],
) -> ProgressSnapshot:
    """The display's numbers after an epoch, with the latest evaluation and Elo snapshot that
    any of `callbacks` holds."""
    elo = None
    evaluation = None
    for cb in callbacks:
        result = getattr(cb, "last_result", None)
        if result is not None:
            evaluation = result.summary()
        elo = getattr(cb, "elo_snapshot", None) or elo
    return ProgressSnapshot(
        step=step,
        total_steps=total_steps,
        steps_per_second=steps_per_second,
        losses=dict(update),
        games=stats.games,
        black_wins=stats.black_wins,
        white_wins=stats.white_wins,
        draws=stats.draws,
        mean_game_length=stats.mean_length,
        end_reasons=dict(stats.reasons),
        evaluation=evaluation,
        elo=elo,
    )
