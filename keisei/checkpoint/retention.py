"""Which checkpoints to keep: the rated ones, the last K of the others, every multiple of a step
interval, the best by a metric.

The rule is a pure function of the checkpoints present, so it can be tested on its own; the store
applies it after each commit. The checkpoint `latest` points to is never selected for deletion,
nor is a pinned one: a checkpoint that is a rated player (it has an `evaluation.json`, or a
rating names it), while `keep_rated` is on, and, whatever the setting, one still in use (an
evaluation has asked for it and not finished). `keep_last` counts the others.

What is rated or in use is known above this layer (the Elo registry and the evaluations belong to
the evaluation and training layers), so they hand it to the store as pin sources: callables
returning steps, asked at each retention (see `CheckpointStore.pin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PinSource = Callable[[], Iterable[int]]
"""Steps whose checkpoints must not be deleted now; asked before each retention, in the thread
that writes checkpoints."""


@dataclass(frozen=True)
class RetentionPolicy:
    """`keep_last` newest checkpoints among those not pinned, plus steps divisible by
    `keep_every`, plus the best one by metric `best_metric` (higher is better) among checkpoints
    that reported it. `keep_rated`: rated checkpoints are pinned (see the module docstring)."""

    keep_last: int = 5
    keep_every: int | None = None
    best_metric: str | None = None
    keep_rated: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.keep_last, bool) or not isinstance(self.keep_last, int):
            raise ValueError(f"keep_last must be an int, got {self.keep_last!r}")
        if self.keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {self.keep_last}")
        if self.keep_every is not None and (
            isinstance(self.keep_every, bool)
            or not isinstance(self.keep_every, int)
            or self.keep_every < 1
        ):
            raise ValueError(f"keep_every must be None or an int >= 1, got {self.keep_every!r}")

    def to_delete(
        self,
        checkpoints: Iterable[tuple[int, float | None]],
        *,
        protected: Iterable[int] = (),
        pinned: Iterable[int] = (),
    ) -> list[int]:
        """Steps to delete among `checkpoints` = (step, metric value or None) pairs.

        `protected` steps (the `latest` target) are always kept. `pinned` steps are always kept
        and not counted in `keep_last`, which keeps the newest of the others. The best
        checkpoint is the one with the highest finite metric value; on a tie, the earliest.
        """
        entries = sorted(dict(checkpoints).items())
        pins = set(pinned)
        keep = set(protected) | pins
        others = [step for step, _ in entries if step not in pins]
        keep.update(others[-self.keep_last :])
        if self.keep_every is not None:
            keep.update(step for step, _ in entries if step % self.keep_every == 0)
        scored = [
            (value, -step) for step, value in entries if value is not None and math.isfinite(value)
        ]
        if self.best_metric is not None and scored:
            keep.add(-max(scored)[1])
        return [step for step, _ in entries if step not in keep]
