"""What happens when a callback fails.

A best-effort callback that raises is logged with its full traceback, counted in the metrics
(`callbacks/errors/<name>`) and disabled after `max_consecutive_failures` failures in a row; a
success resets the run of failures. A callback marked critical raises `CriticalCallbackError`:
training stops, and the trainer's teardown path takes over.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from keisei.training.callback_base import CriticalCallbackError, TrainerView, _CallbackBase


@dataclass
class CallbackHealth:
    """Failure bookkeeping for one registered callback."""

    errors: int = 0
    consecutive_failures: int = 0
    disabled: bool = False


class FailurePolicy:
    """The health of every registered callback, and the one rule for a failure."""

    def __init__(self, max_consecutive_failures: int, logger: logging.Logger) -> None:
        self.max_consecutive_failures = max_consecutive_failures
        self.logger = logger
        self._health: dict[int, CallbackHealth] = {}
        self.failing: set[int] = set()
        """Callbacks (by id) whose last call failed; empty in a healthy run, so a success
        costs nothing to record."""

    def track(self, cb: _CallbackBase) -> None:
        self._health[id(cb)] = CallbackHealth()

    def forget(self, cb: _CallbackBase) -> None:
        self._health.pop(id(cb), None)
        self.failing.discard(id(cb))

    def health(self, cb: _CallbackBase) -> CallbackHealth:
        return self._health[id(cb)]

    def enabled(self, cb: _CallbackBase) -> bool:
        health = self._health.get(id(cb))
        return health is None or not health.disabled

    def succeeded(self, cb: _CallbackBase) -> None:
        if id(cb) not in self.failing:
            return
        self.failing.discard(id(cb))
        health = self._health.get(id(cb))
        if health is not None:
            health.consecutive_failures = 0

    def failed(self, cb: _CallbackBase, hook: str, trainer: TrainerView, exc: Exception) -> bool:
        """Log and count a failure; True when it disabled the callback. A critical callback's
        failure raises `CriticalCallbackError` (from `exc`)."""
        step = trainer.global_timestep
        health = self._health.get(id(cb), CallbackHealth())
        health.errors += 1
        health.consecutive_failures += 1
        self.failing.add(id(cb))
        self.logger.error("callback %s failed in %s at step %d", cb.name, hook, step, exc_info=exc)
        try:
            trainer.record_metrics({f"callbacks/errors/{cb.name}": float(health.errors)})
        except Exception:
            self.logger.exception("recording the error count of callback %s failed", cb.name)
        if cb.critical:
            raise CriticalCallbackError(cb.name, hook, step) from exc
        if health.consecutive_failures < self.max_consecutive_failures or health.disabled:
            return False
        health.disabled = True
        self.logger.warning(
            "callback %s disabled after %d consecutive failures",
            cb.name,
            health.consecutive_failures,
        )
        return True

    def failed_in_teardown(self, cb: _CallbackBase, hook: str) -> None:
        """A failure in `on_exception` or `close`: logged and counted, never raised."""
        health = self._health.get(id(cb))
        if health is not None:
            health.errors += 1
        self.logger.exception("callback %s failed in %s", cb.name, hook)
