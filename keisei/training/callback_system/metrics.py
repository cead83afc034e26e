"""Metrics returned by callback hooks, merged per step.

Keys are namespaced by the callbacks (`evaluation/win_rate`). Within one report round (the end of
an epoch, sync and async dispatch together; or the end of training, a round of its own even at
the same step) a key reported a second time, by another callback or by the same one from two
hooks, keeps its first value; the collision is logged once per pair of reporters, naming both.
`StampedMetrics` (evaluation results, about the step each rated) are not merged: each of their
rows is recorded as a row of its own at its step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from keisei.training.callback_system.base import (
    Metrics,
    StampedMetrics,
    TrainerView,
    _CallbackBase,
)


class StepMetrics:
    """Merges the reports of one round's hooks, across the sync and async dispatches."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._round: tuple[int, str] | None = None
        self._owners: dict[str, str] = {}
        self._logged: set[tuple[str, str, str]] = set()

    def record(
        self,
        trainer: TrainerView,
        reports: list[tuple[_CallbackBase, Mapping[str, float] | None]],
        *,
        end: bool = False,
    ) -> Metrics:
        """Merge what the hooks returned (see `merge`) and record it through the trainer view,
        and each row of `StampedMetrics` at its own step; returns what was recorded (stamped
        metrics by their newest row, behind the merged keys)."""
        named = [(cb.name, metrics) for cb, metrics in reports if metrics]
        if not named:
            return {}
        stamped = [metrics for _, metrics in named if isinstance(metrics, StampedMetrics)]
        plain = [(name, m) for name, m in named if not isinstance(m, StampedMetrics)]
        merged = self.merge(trainer.global_timestep, plain, end=end)
        if merged:
            trainer.record_metrics(merged)
        recorded = dict(merged)
        for metrics in stamped:
            for step, row in metrics.rows:
                trainer.record_metrics(row, step)
            recorded.update({key: value for key, value in metrics.items() if key not in merged})
        return recorded

    def merge(
        self, step: int, reports: list[tuple[str, Mapping[str, float] | None]], *, end: bool = False
    ) -> Metrics:
        """The new metrics in `reports` ((reporter, metrics) pairs, in dispatch order) at `step`;
        `end`: reported by the end-of-training hooks."""
        round_ = (step, "end" if end else "epoch")
        if round_ != self._round:
            self._round, self._owners = round_, {}
        merged: Metrics = {}
        for reporter, metrics in reports:
            for key, value in (metrics or {}).items():
                owner = self._owners.get(key)
                if owner is not None:
                    self._collision(key, owner, reporter, step)
                    continue
                try:
                    merged[key] = float(value)
                except (TypeError, ValueError):
                    self.logger.warning(
                        "callback %s reported %r = %r, which is not a number; dropped",
                        reporter,
                        key,
                        value,
                    )
                    continue
                self._owners[key] = reporter
        return merged

    def _collision(self, key: str, first: str, second: str, step: int) -> None:
        if (key, first, second) in self._logged:
            return
        self._logged.add((key, first, second))
        who = f"twice by {first}" if first == second else f"by both {first} and {second}"
        self.logger.warning(
            "metric %r reported %s at step %d; keeping %s's first value (logged once)",
            key,
            who,
            step,
            first,
        )
