"""The `CallbackManager`: decides when callbacks run, runs them safely, keeps training going.

- Scheduling lives in the callbacks' `EveryNSteps` filters; intervals are aligned to whole epochs
  once, here, by `align_interval`.
- Checkpoint callbacks run after every other callback at the same step.
- A best-effort callback that raises is logged with its traceback, counted in the metrics
  (`callbacks/errors/<name>`) and disabled after `callbacks.max_consecutive_failures` failures in a
  row. A critical one stops training: `on_exception` reaches every callback, teardown runs, and
  the error is re-raised.
- Async callbacks run concurrently on a private event loop thread; their metrics are merged in
  registration order and a key reported twice is logged as a collision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from keisei.config import Config
from keisei.log import get_logger
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    Callback,
    CheckpointCallback,
    EvaluationCallback,
    Metrics,
    TrainerView,
    _CallbackBase,
)
from keisei.training.event_loop import BackgroundEventLoop
from keisei.training.schedule import DueQueue, align_interval

AnyCallback = TypeVar("AnyCallback", bound=_CallbackBase)


@dataclass
class CallbackHealth:
    """Failure bookkeeping for one registered callback."""

    errors: int = 0
    consecutive_failures: int = 0
    disabled: bool = False


class CallbackManager:
    """Holds the sync and async callbacks of a training run and dispatches their hooks."""

    def __init__(self, config: Config, model_dir: str | Path) -> None:
        self.config = config
        self.model_dir = Path(model_dir)
        self.logger = get_logger("callbacks")
        steps_per_epoch = config.training.steps_per_epoch
        self.checkpoint_interval = align_interval(
            config.training.checkpoint_interval_timesteps,
            steps_per_epoch,
            "training.checkpoint_interval_timesteps",
            self.logger,
        )
        self.evaluation_interval = align_interval(
            config.evaluation.evaluation_interval_timesteps,
            steps_per_epoch,
            "evaluation.evaluation_interval_timesteps",
            self.logger,
        )
        self.max_consecutive_failures = config.callbacks.max_consecutive_failures
        self.callbacks: list[Callback] = []
        self.async_callbacks: list[AsyncCallback] = []
        self._defaults: set[int] = set()
        self._health: dict[int, CallbackHealth] = {}
        self._unclaimed_state: dict[str, dict[str, Mapping[str, Any]]] = {}
        self._handled_exception: BaseException | None = None
        self._closed = False
        self._loop = BackgroundEventLoop()
        self._due = DueQueue()
        self._every_step: list[tuple[int, Callback]] = []
        self._dirty = True

    # ----------------------------------------------------------------- defaults

    def _new_checkpoint_callback(self) -> CheckpointCallback:
        return CheckpointCallback(self.checkpoint_interval, self.model_dir)

    def _new_async_evaluation_callback(self) -> AsyncEvaluationCallback:
        evaluation = self.config.evaluation
        return AsyncEvaluationCallback(
            self.evaluation_interval,
            policy=evaluation.async_policy,
            queue_size=evaluation.async_queue_size,
            shutdown_timeout_s=evaluation.async_shutdown_timeout_s,
        )

    def _replace_defaults(self, registry: list[AnyCallback], new: list[AnyCallback]) -> None:
        kept = [cb for cb in registry if id(cb) not in self._defaults]
        for cb in registry:
            if id(cb) in self._defaults:
                self._defaults.discard(id(cb))
                self._health.pop(id(cb), None)
        registry[:] = kept
        self._dirty = True
        for cb in new:
            self._register(registry, cb, default=True)

    def setup_default_callbacks(self) -> list[Callback]:
        """(Re)create the default sync callbacks; callbacks added by the user stay, in order.

        Defaults: a checkpoint callback, and a sync evaluation callback when periodic evaluation
        is on and not in async mode.
        """
        new: list[Callback] = [self._new_checkpoint_callback()]
        evaluation = self.config.evaluation
        if evaluation.enable_periodic_evaluation and not evaluation.async_mode:
            new.insert(0, EvaluationCallback(self.evaluation_interval))
        self._replace_defaults(self.callbacks, new)
        return self.get_callbacks()

    def setup_async_callbacks(self) -> list[AsyncCallback]:
        """(Re)create the default async callbacks: background evaluation in async mode."""
        new: list[AsyncCallback] = []
        evaluation = self.config.evaluation
        if evaluation.enable_periodic_evaluation and evaluation.async_mode:
            new.append(self._new_async_evaluation_callback())
        self._replace_defaults(self.async_callbacks, new)
        return self.get_async_callbacks()

    def use_async_evaluation(self) -> None:
        """Replace sync evaluation by background evaluation. Calling it again changes nothing."""
        if self.remove_callback(EvaluationCallback):
            self.logger.info("evaluation switched to background mode")
        if not any(isinstance(cb, AsyncEvaluationCallback) for cb in self.async_callbacks):
            self._register(
                self.async_callbacks, self._new_async_evaluation_callback(), default=True
            )

    # ------------------------------------------------------------- registration

    def _register(self, registry: list[AnyCallback], cb: AnyCallback, *, default: bool) -> None:
        if any(existing is cb for existing in self.callbacks + self.async_callbacks):
            raise ValueError(f"callback {cb!r} is already registered")
        registry.append(cb)
        self._dirty = True
        self._health[id(cb)] = CallbackHealth()
        if default:
            self._defaults.add(id(cb))
        self._claim_state(registry, cb)

    def add_callback(self, callback: Callback) -> None:
        if not isinstance(callback, Callback):
            raise TypeError(
                f"add_callback() takes a Callback, got {type(callback).__name__}; "
                "use add_async_callback() for an AsyncCallback"
            )
        self._register(self.callbacks, callback, default=False)

    def add_async_callback(self, callback: AsyncCallback) -> None:
        if not isinstance(callback, AsyncCallback):
            raise TypeError(
                f"add_async_callback() takes an AsyncCallback, got {type(callback).__name__}"
            )
        self._register(self.async_callbacks, callback, default=False)

    def _remove(self, registry: list[AnyCallback], callback_type: type) -> bool:
        self._dirty = True
        removed = [cb for cb in registry if isinstance(cb, callback_type)]
        for cb in removed:
            self._defaults.discard(id(cb))
            self._health.pop(id(cb), None)
        registry[:] = [cb for cb in registry if not isinstance(cb, callback_type)]
        return bool(removed)

    def remove_callback(self, callback_type: type) -> bool:
        """Remove every sync callback of this type (subclasses included); True if any was."""
        return self._remove(self.callbacks, callback_type)

    def remove_async_callback(self, callback_type: type) -> bool:
        """Remove every async callback of this type (subclasses included); True if any was."""
        return self._remove(self.async_callbacks, callback_type)

    def get_callbacks(self) -> list[Callback]:
        return list(self.callbacks)

    def get_async_callbacks(self) -> list[AsyncCallback]:
        return list(self.async_callbacks)

    def clear_callbacks(self) -> None:
        self._remove(self.callbacks, _CallbackBase)

    def clear_async_callbacks(self) -> None:
        self._remove(self.async_callbacks, _CallbackBase)

    def has_async_callbacks(self) -> bool:
        return bool(self.async_callbacks)

    def health(self, callback: _CallbackBase) -> CallbackHealth:
        """Failure counts of a registered callback."""
        return self._health[id(callback)]

    # ----------------------------------------------------------------- dispatch

    def _active(self, registry: list[AnyCallback]) -> list[AnyCallback]:
        active = [cb for cb in registry if not self._health.get(id(cb), CallbackHealth()).disabled]
        # Stable sort: checkpoints last, everything else in registration order.
        return sorted(active, key=lambda cb: isinstance(cb, CheckpointCallback))

    def _succeeded(self, cb: _CallbackBase) -> None:
        health = self._health.get(id(cb))
        if health is not None:
            health.consecutive_failures = 0

    def _failed(self, cb: _CallbackBase, hook: str, trainer: TrainerView, exc: Exception) -> None:
        """Log and count a failure; a critical callback's failure stops training (re-raised)."""
        step = trainer.global_timestep
        health = self._health.get(id(cb), CallbackHealth())
        health.errors += 1
        health.consecutive_failures += 1
        self.logger.error("callback %s failed in %s at step %d", cb.name, hook, step, exc_info=exc)
        try:
            trainer.record_metrics({f"callbacks/errors/{cb.name}": float(health.errors)})
        except Exception:
            self.logger.exception("recording the error count of callback %s failed", cb.name)
        if cb.critical:
            self.logger.error("critical callback %s failed: stopping training", cb.name)
            self.on_exception(trainer, exc)
            self.close()
            raise exc
        if health.consecutive_failures >= self.max_consecutive_failures and not health.disabled:
            health.disabled = True
            self._dirty = True
            self.logger.warning(
                "callback %s disabled after %d consecutive failures",
                cb.name,
                health.consecutive_failures,
            )

    def _call(self, cb: _CallbackBase, hook: str, trainer: TrainerView, *args: Any) -> None:
        try:
            getattr(cb, hook)(trainer, *args)
        except Exception as exc:
            self._failed(cb, hook, trainer, exc)
        else:
            self._succeeded(cb)

    def _rebuild_dispatch(self) -> None:
        """Index the enabled sync callbacks: every-step ones, and scheduled ones by due step."""
        count = len(self.callbacks)
        every_step: list[tuple[int, Callback]] = []
        scheduled = []
        for index, cb in enumerate(self.callbacks):
            if self._health.get(id(cb), CallbackHealth()).disabled:
                continue
            # Rank: registration order, with checkpoint callbacks after all the others.
            rank = index + (count if isinstance(cb, CheckpointCallback) else 0)
            if cb.schedule is None:
                every_step.append((rank, cb))
            else:
                scheduled.append((rank, cb.schedule, cb))
        self._every_step = every_step
        self._due.rebuild(scheduled)
        self._dirty = False

    def execute_step_callbacks(self, trainer: TrainerView) -> None:
        """Run the `on_step_end` of every enabled sync callback that is due (checkpoints last).

        Scheduled callbacks that are not due are not called at all.
        """
        if self._dirty:
            self._rebuild_dispatch()
        due = self._due.pop_due(trainer.global_timestep)
        if not due and not self._every_step:
            return
        for _, cb in sorted([*self._every_step, *due], key=lambda pair: pair[0]):
            self._call(cb, "on_step_end", trainer)

    async def _gather(
        self, callbacks: list[AsyncCallback], hook: str, trainer: TrainerView
    ) -> list[Metrics | BaseException | None]:
        calls = [getattr(cb, hook)(trainer) for cb in callbacks]
        return await asyncio.gather(*calls, return_exceptions=True)

    def _run_async_hook(self, hook: str, trainer: TrainerView) -> Metrics:
        callbacks = self._active(self.async_callbacks)
        if not callbacks:
            return {}
        outcomes = self._loop.run(self._gather(callbacks, hook, trainer))
        merged: Metrics = {}
        owners: dict[str, str] = {}
        for cb, outcome in zip(callbacks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                self._failed(cb, hook, trainer, outcome)
                continue
            if outcome is not None and not isinstance(outcome, Mapping):
                error = TypeError(
                    f"{cb.name}.{hook} returned {type(outcome).__name__}, "
                    "expected a dict of metrics or None"
                )
                self._failed(cb, hook, trainer, error)
                continue
            self._succeeded(cb)
            for key, value in (outcome or {}).items():
                if key in merged:
                    self.logger.warning(
                        "metric %r reported by both %s and %s at step %d; keeping %s's value",
                        key,
                        owners[key],
                        cb.name,
                        trainer.global_timestep,
                        owners[key],
                    )
                    continue
                merged[key] = float(value)
                owners[key] = cb.name
        return merged

    def execute_step_callbacks_async(self, trainer: TrainerView) -> Metrics:
        """Run every enabled async callback's `on_step_end` concurrently; return merged metrics.

        Works from plain code and from inside a running event loop alike; always returns a dict.
        """
        return self._run_async_hook("on_step_end", trainer)

    # ---------------------------------------------------------------- lifecycle

    def _every(self) -> list[_CallbackBase]:
        return [*self.callbacks, *self.async_callbacks]

    def on_train_start(self, trainer: TrainerView) -> None:
        """Anchor schedules at the current step (unless restored), then each callback's hook."""
        self._closed = False
        self._handled_exception = None
        for cb in self.callbacks:
            if cb.schedule is not None:
                cb.schedule.start(trainer.global_timestep)
        self._dirty = True
        for cb in self._every():
            self._call(cb, "on_train_start", trainer)

    def on_train_end(self, trainer: TrainerView) -> None:
        """Finish async work first, then sync callbacks (the final checkpoint last)."""
        metrics = self._run_async_hook("on_train_end", trainer)
        if metrics:
            trainer.record_metrics(metrics)
        for cb in self._active(self.callbacks):
            self._call(cb, "on_train_end", trainer)

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        """Tell every callback that training is stopping; once per exception, errors logged."""
        if self._handled_exception is exc:
            return
        self._handled_exception = exc
        ordered = sorted(self._every(), key=lambda cb: isinstance(cb, CheckpointCallback))
        for cb in ordered:
            self._teardown_step(cb, "on_exception", lambda cb=cb: cb.on_exception(trainer, exc))

    def close(self) -> None:
        """Close every callback (each one, whatever the others do) and the event loop thread."""
        if self._closed:
            return
        self._closed = True
        for cb in self._every():
            self._teardown_step(cb, "close", cb.close)
        self._loop.close()

    def _teardown_step(self, cb: _CallbackBase, hook: str, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            health = self._health.get(id(cb))
            if health is not None:
                health.errors += 1
            self.logger.exception("callback %s failed in %s", cb.name, hook)

    # -------------------------------------------------------------------- state

    @staticmethod
    def _keys(registry: list[AnyCallback]) -> list[str]:
        seen: dict[str, int] = {}
        keys = []
        for cb in registry:
            seen[cb.name] = seen.get(cb.name, 0) + 1
            keys.append(cb.name if seen[cb.name] == 1 else f"{cb.name}#{seen[cb.name]}")
        return keys

    def _section(self, registry: list[AnyCallback]) -> str:
        return "async_callbacks" if registry is self.async_callbacks else "callbacks"

    def state_dict(self) -> dict[str, Any]:
        """The state of every registered callback, keyed by name (JSON-serialisable)."""
        state: dict[str, Any] = {}
        for registry in (self.callbacks, self.async_callbacks):
            state[self._section(registry)] = {
                key: {
                    "state": cb.state_dict(),
                    "schedule": None if cb.schedule is None else cb.schedule.state_dict(),
                }
                for key, cb in zip(self._keys(registry), registry, strict=True)
            }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore callback states; a state with no callback yet waits for one to be added."""
        self._unclaimed_state = {
            section: dict(state.get(section, {})) for section in ("callbacks", "async_callbacks")
        }
        for registry in (self.callbacks, self.async_callbacks):
            for cb in registry:
                self._claim_state(registry, cb)
        for section, leftovers in self._unclaimed_state.items():
            for key in leftovers:
                self.logger.info(
                    "saved state of %s callback %r waits for a matching callback", section, key
                )

    def _claim_state(self, registry: list[AnyCallback], cb: _CallbackBase) -> None:
        pending = self._unclaimed_state.get(self._section(registry))
        if not pending:
            return
        key = self._keys(registry)[next(i for i, c in enumerate(registry) if c is cb)]
        if key in pending:
            saved = pending.pop(key)
            cb.load_state_dict(saved.get("state", {}))
            if cb.schedule is not None and saved.get("schedule") is not None:
                cb.schedule.load_state_dict(saved["schedule"])
            self._dirty = True
