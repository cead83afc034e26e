"""Calling callback hooks safely, and what happens when one fails.

A hook either returns metrics (a mapping), returns None, or raises. A best-effort callback that
raises (or returns something else) is logged with its full traceback, counted in the metrics
(`callbacks/errors/<name>`) and disabled after `max_consecutive_failures` failures in a row; a
success resets the run of failures. A callback marked critical raises `CriticalCallbackError`:
training stops, and the trainer's teardown path takes over. Teardown hooks never raise.

On rank 0 of several ranks (`guard_rank_zero`), the hooks of `rank_zero` callbacks run inside
`rank_zero_work`, so a collective called from them raises instead of hanging the group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from keisei.training.callback_system.base import CriticalCallbackError, TrainerView, _CallbackBase
from keisei.training.distributed import rank_zero_work


@dataclass
class CallbackHealth:
    """Failure bookkeeping for one registered callback."""

    errors: int = 0
    consecutive_failures: int = 0
    disabled: bool = False


class FailurePolicy:
    """Calls hooks, keeps the health of every registered callback, applies the one rule for a
    failure; `on_disabled` is called when a failure disables a callback."""

    def __init__(
        self,
        max_consecutive_failures: int,
        logger: logging.Logger,
        on_disabled: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_consecutive_failures = max_consecutive_failures
        self.logger = logger
        self._on_disabled = on_disabled
        self._health: dict[int, CallbackHealth] = {}
        self.guard_rank_zero = False
        """Set on rank 0 of several ranks: rank-zero hooks may not call collectives."""
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

    # ---------------------------------------------------------------- calling

    def _guarded(self, cb: _CallbackBase) -> bool:
        return self.guard_rank_zero and cb.runs_on == "rank_zero"

    def _invoke(self, cb: _CallbackBase, hook: str, *args: Any) -> Any:
        if self._guarded(cb):
            with rank_zero_work(f"{cb.name}.{hook}"):
                return getattr(cb, hook)(*args)
        return getattr(cb, hook)(*args)

    async def _invoke_async(self, cb: _CallbackBase, hook: str, trainer: TrainerView) -> Any:
        with rank_zero_work(f"{cb.name}.{hook}"):  # in this hook's own task: only it is marked
            return await getattr(cb, hook)(trainer)

    def call(
        self, cb: _CallbackBase, hook: str, trainer: TrainerView
    ) -> Mapping[str, float] | None:
        """Run `cb.<hook>(trainer)`; the metrics it returned, if any."""
        try:
            outcome = self._invoke(cb, hook, trainer)
        except Exception as exc:
            outcome = exc
        if outcome is None:  # the common case, kept cheap
            if self.failing:
                self.succeeded(cb)
            return None
        return self.judge(cb, hook, trainer, outcome)

    async def call_all(
        self, calls: list[tuple[_CallbackBase, str]], trainer: TrainerView
    ) -> list[tuple[_CallbackBase, Mapping[str, float] | None]]:
        """Run the coroutine hooks concurrently; judge each outcome in the order given."""
        coroutines: list[Awaitable[Any]] = [
            self._invoke_async(cb, hook, trainer)
            if self._guarded(cb)
            else getattr(cb, hook)(trainer)
            for cb, hook in calls
        ]
        outcomes = await asyncio.gather(*coroutines, return_exceptions=True)
        return [
            (cb, self.judge(cb, hook, trainer, outcome))
            for (cb, hook), outcome in zip(calls, outcomes, strict=True)
        ]

    def call_lifecycle(self, cb: _CallbackBase, hook: str, trainer: TrainerView) -> None:
        """Run a hook whose return value does not matter (`on_train_start`)."""
        try:
            self._invoke(cb, hook, trainer)
        except Exception as exc:
            self.failed(cb, hook, trainer, exc)

    def teardown(self, cb: _CallbackBase, hook: str, action: Callable[[], None]) -> None:
        """Run a teardown hook (`on_exception`, `close`): a failure is logged, never raised."""
        try:
            if self._guarded(cb):
                with rank_zero_work(f"{cb.name}.{hook}"):
                    action()
            else:
                action()
        except Exception:
            self.failed_in_teardown(cb, hook)

    def judge(
        self, cb: _CallbackBase, hook: str, trainer: TrainerView, outcome: object
    ) -> Mapping[str, float] | None:
        """What a hook returned (or raised): the metrics to record, if any."""
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome
            self.failed(cb, hook, trainer, outcome)
            return None
        if outcome is not None and not isinstance(outcome, Mapping):
            error = TypeError(
                f"{cb.name}.{hook} returned {type(outcome).__name__}, "
                "expected a dict of metrics or None"
            )
            self.failed(cb, hook, trainer, error)
            return None
        self.succeeded(cb)
        return outcome

    # ---------------------------------------------------------------- failures

    def failed(self, cb: _CallbackBase, hook: str, trainer: TrainerView, exc: Exception) -> None:
        """Log and count a failure; disable the callback after too many in a row. A critical
        callback's failure raises `CriticalCallbackError` (from `exc`)."""
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
            return
        health.disabled = True
        self.logger.warning(
            "callback %s disabled after %d consecutive failures",
            cb.name,
            health.consecutive_failures,
        )
        self._on_disabled()

    def failed_in_teardown(self, cb: _CallbackBase, hook: str) -> None:
        """A failure in `on_exception` or `close`: logged and counted, never raised."""
        health = self._health.get(id(cb))
        if health is not None:
            health.errors += 1
        self.logger.exception("callback %s failed in %s", cb.name, hook)
