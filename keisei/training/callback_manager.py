"""The `CallbackManager`: decides when callbacks run, runs them safely, keeps training going.

- **When**: one due-queue holds the `EveryNSteps` schedule of every callback, sync and async; a
  schedule is aligned to whole epochs once, at registration, by `align_interval` (the defaults'
  intervals and a user's alike). Callbacks without a schedule run after every epoch; callbacks
  with `polls = True` also get their poll hook after every epoch.
- **Order**: at each step, poll hooks first, then due step hooks in registration order with the
  checkpoint callbacks last. A callback whose step hook asks for a checkpoint (`wants_checkpoint`)
  makes the checkpoint callbacks save at that step too. The trainer dispatches async callbacks
  before sync ones.
- **Metrics**: every hook may return metrics; the manager records them through the trainer view.
  A key reported twice at one step keeps its first value and is logged once, with both names.
- **Failures**: a best-effort callback that raises is logged with its traceback, counted
  (`callbacks/errors/<name>`) and disabled after `callbacks.max_consecutive_failures` failures in
  a row. A critical one raises `CriticalCallbackError`; the manager never tears anything down
  itself: the trainer calls `on_exception` and `close` on its one teardown path.
- **Ranks**: with several ranks, each runs its own manager with the same callbacks and schedules;
  a callback's hooks run where its `runs_on` says (rank 0 only, or every rank). The trainer
  agrees failures across ranks at the epoch boundary (`disabled_keys`, `disable`).
- **State**: each callback's state is saved under its `state_key` and restored to the callback
  with the same key, whatever the registration order; a saved state that matches no callback is
  reported once, when training starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from keisei.config import Config
from keisei.log import get_logger
from keisei.training.callback_system.base import _CallbackBase
from keisei.training.callback_system.defaults import (
    async_evaluation_callback,
    default_async_callbacks,
    default_callbacks,
)
from keisei.training.callback_system.dispatch import DispatchPlan
from keisei.training.callback_system.health import CallbackHealth, FailurePolicy
from keisei.training.callback_system.metrics import StepMetrics
from keisei.training.callback_system.state import SavedStates, saved_state
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    Callback,
    CheckpointCallback,
    EvaluationCallback,
    Metrics,
    TrainerView,
    check_hooks,
)
from keisei.training.schedule import EveryNSteps, align_interval

__all__ = ["CallbackHealth", "CallbackManager"]

AnyCallback = TypeVar("AnyCallback", bound=_CallbackBase)


class CallbackManager:
    """Holds the sync and async callbacks of a training run and dispatches their hooks."""

    def __init__(
        self, config: Config, model_dir: str | Path, *, rank: int = 0, world_size: int = 1
    ) -> None:
        self.config = config
        self.rank = rank
        self.model_dir = Path(model_dir)
        self.logger = get_logger("callbacks")
        self.steps_per_epoch = config.training.steps_per_epoch
        self.checkpoint_interval = self.align(
            config.training.checkpoint_interval_timesteps, "training.checkpoint_interval_timesteps"
        )
        self.evaluation_interval = self.align(
            config.evaluation.evaluation_interval_timesteps,
            "evaluation.evaluation_interval_timesteps",
        )
        self.failures = FailurePolicy(
            config.callbacks.max_consecutive_failures, self.logger, on_disabled=self._changed
        )
        self.failures.guard_rank_zero = world_size > 1 and rank == 0
        self.callbacks: list[Callback] = []
        self.async_callbacks: list[AsyncCallback] = []
        self._defaults: set[int] = set()
        self._saved = SavedStates()
        self._closed = False
        self._dispatch = DispatchPlan()
        self._dirty = True
        self._metrics = StepMetrics(self.logger)

    def _changed(self) -> None:
        """The set of enabled callbacks changed: rebuild the dispatch plan before the next use."""
        self._dirty = True

    def align(self, interval: int, name: str) -> int:
        """`interval` rounded up to whole epochs; the one alignment rule for every schedule."""
        return align_interval(interval, self.steps_per_epoch, name, self.logger)

    # ----------------------------------------------------------------- defaults

    def _replace_defaults(self, registry: list[AnyCallback], new: list[AnyCallback]) -> None:
        old = [cb for cb in registry if id(cb) in self._defaults]
        staying = [cb for cb in self._every() if cb not in old]
        for index, cb in enumerate(new):  # refuse before changing anything
            self._check_registrable(cb, [*staying, *new[:index]])
        for cb in old:
            self._forget(registry, cb)
        for cb in new:
            self._register(registry, cb, default=True)

    def setup_default_callbacks(self) -> list[Callback]:
        """(Re)create the default sync callbacks; callbacks added by the user stay, in order.

        Defaults: a checkpoint callback, and a sync evaluation callback when periodic evaluation
        is on and not in async mode.
        """
        new = default_callbacks(
            self.config,
            self.model_dir,
            checkpoint_interval=self.checkpoint_interval,
            evaluation_interval=self.evaluation_interval,
        )
        self._replace_defaults(self.callbacks, new)
        return self.get_callbacks()

    def setup_async_callbacks(self) -> list[AsyncCallback]:
        """(Re)create the default async callbacks: background evaluation in async mode."""
        new = default_async_callbacks(self.config, evaluation_interval=self.evaluation_interval)
        self._replace_defaults(self.async_callbacks, new)
        return self.get_async_callbacks()

    def use_async_evaluation(self) -> None:
        """Replace sync evaluation by background evaluation. Calling it again changes nothing."""
        if self.remove_callback(EvaluationCallback):
            self.logger.info("evaluation switched to background mode")
        if not any(isinstance(cb, AsyncEvaluationCallback) for cb in self.async_callbacks):
            new = async_evaluation_callback(self.config.evaluation, self.evaluation_interval)
            self._register(self.async_callbacks, new, default=True)

    # ------------------------------------------------------------- registration

    def _register(
        self,
        registry: list[AnyCallback],
        cb: AnyCallback,
        *,
        default: bool,
        every: int | None = None,
    ) -> None:
        self._check_registrable(cb, self._every())
        if every is not None:
            cb.schedule = EveryNSteps(every)
        if cb.schedule is not None:
            cb.schedule.realign(self.align(cb.schedule.interval, f"{cb.name} interval"))
        registry.append(cb)
        self._dirty = True
        self.failures.track(cb)
        if default:
            self._defaults.add(id(cb))
        self._claim_state(cb)

    @staticmethod
    def _check_registrable(cb: _CallbackBase, registered: list[_CallbackBase]) -> None:
        """Refuse unknown hooks, a second registration, and a state key already taken."""
        check_hooks(cb)
        if any(existing is cb for existing in registered):
            raise ValueError(f"callback {cb!r} is already registered")
        clash = next((other for other in registered if other.state_key == cb.state_key), None)
        if clash is not None:
            raise ValueError(
                f"callback {cb!r} has the same state key {cb.state_key!r} as {clash!r}; give "
                "one of them its own key (state_key='...' in its constructor) so each one's "
                "state is restored to it"
            )

    def add_callback(self, callback: Callback, *, every: int | None = None) -> None:
        """Register a sync callback; `every`: run its `on_step_end` every that many steps."""
        if not isinstance(callback, Callback):
            raise TypeError(
                f"add_callback() takes a Callback, got {type(callback).__name__}; "
                "use add_async_callback() for an AsyncCallback"
            )
        self._register(self.callbacks, callback, default=False, every=every)

    def add_async_callback(self, callback: AsyncCallback, *, every: int | None = None) -> None:
        """Register an async callback; `every`: run its `on_step_end_async` every that many
        steps."""
        if not isinstance(callback, AsyncCallback):
            raise TypeError(
                f"add_async_callback() takes an AsyncCallback, got {type(callback).__name__}; "
                "use add_callback() for a Callback"
            )
        self._register(self.async_callbacks, callback, default=False, every=every)

    def _forget(self, registry: list[AnyCallback], cb: AnyCallback) -> None:
        registry[:] = [other for other in registry if other is not cb]
        self._defaults.discard(id(cb))
        self.failures.forget(cb)
        self._dirty = True

    def _remove(self, registry: list[AnyCallback], callback_type: type) -> bool:
        removed = [cb for cb in registry if isinstance(cb, callback_type)]
        for cb in removed:
            self._forget(registry, cb)
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
        return self.failures.health(callback)

    def disabled_keys(self) -> set[str]:
        """The state keys of the callbacks disabled so far (after too many failures)."""
        return {cb.state_key for cb in self._every() if not self.failures.enabled(cb)}

    def disable(self, keys: set[str], why: str) -> None:
        """Disable the callbacks with these state keys (failures agreed across ranks)."""
        for cb in self._every():
            if cb.state_key in keys and self.failures.enabled(cb):
                self.failures.health(cb).disabled = True
                self.logger.warning("callback %s disabled: %s", cb.name, why)
                self._changed()

    # ----------------------------------------------------------------- dispatch

    def _plan(self) -> DispatchPlan:
        """The dispatch plan, rebuilt first if the enabled callbacks changed."""
        if self._dirty:
            enabled, here = self.failures.enabled, self._runs_here
            self._dispatch.rebuild(
                [
                    [cb for cb in registry if enabled(cb) and here(cb)]
                    for registry in (self.callbacks, self.async_callbacks)
                ]  # fmt: skip
            )
            self._dirty = False
        return self._dispatch

    def execute_step_callbacks(self, trainer: TrainerView) -> None:
        """Run the sync callbacks for the epoch that just ended: every poll hook, then the
        `on_step_end` of each one that is due (checkpoints last); record their metrics.

        Scheduled callbacks that are not due are not called at all.
        """
        plan = self._plan() if self._dirty else self._dispatch
        step = trainer.global_timestep
        others, due_checkpoints = plan.step_hooks(step, is_async=False)
        pollers = plan.sync_pollers
        if not (others or due_checkpoints or pollers or plan.checkpoint_wanted_at == step):
            return
        call = self.failures.call
        reports = []
        for cb in pollers:
            if (metrics := call(cb, "poll", trainer)) is not None:
                reports.append((cb, metrics))
        for cb in others:
            if (metrics := call(cb, "on_step_end", trainer)) is not None:
                reports.append((cb, metrics))
            if cb.needs_checkpoint and cb.wants_checkpoint(step):
                plan.want_checkpoint(step)
        if due_checkpoints or plan.checkpoint_wanted_at == step:  # usually neither
            for cb in plan.checkpoints(step, due_checkpoints):
                if (metrics := call(cb, "on_step_end", trainer)) is not None:
                    reports.append((cb, metrics))
        if reports:
            self._metrics.record(trainer, reports)

    async def execute_step_callbacks_async(self, trainer: TrainerView) -> Metrics:
        """Run the async callbacks for the epoch that just ended: every `poll_async`, then the
        `on_step_end_async` of each one that is due, concurrently; record their metrics.

        A coroutine: `await manager.execute_step_callbacks_async(trainer)` in the caller's event
        loop. Returns the metrics recorded (`{}` when none were reported).
        """
        plan = self._plan() if self._dirty else self._dispatch
        step = trainer.global_timestep
        callbacks, _ = plan.step_hooks(step, is_async=True)  # checkpoint callbacks are sync
        pollers = plan.async_pollers
        if not callbacks and not pollers:
            return {}
        reports = await self.failures.call_all([(cb, "poll_async") for cb in pollers], trainer)
        reports += await self.failures.call_all(
            [(cb, "on_step_end_async") for cb in callbacks], trainer
        )
        if any(cb.needs_checkpoint and cb.wants_checkpoint(step) for cb in callbacks):
            plan.want_checkpoint(step)
        return self._metrics.record(trainer, reports)

    # ---------------------------------------------------------------- lifecycle

    def _every(self) -> list[_CallbackBase]:
        return [*self.callbacks, *self.async_callbacks]

    def _runs_here(self, cb: _CallbackBase) -> bool:
        return self.rank == 0 or cb.runs_on == "all_ranks"

    def _here(self) -> list[_CallbackBase]:
        """The callbacks whose hooks run on this rank."""
        return [cb for cb in self._every() if self._runs_here(cb)]

    def on_train_start(self, trainer: TrainerView) -> None:
        """Anchor schedules at the current step (unless restored), report saved states that
        matched no callback, then each callback's `on_train_start`."""
        self._closed = False
        for cb in self._every():
            if cb.schedule is not None:
                cb.schedule.start(trainer.global_timestep)
        self._dirty = True
        self._saved.report_unclaimed(self.logger)
        for cb in self._here():
            self.failures.call_lifecycle(cb, "on_train_start", trainer)

    async def on_train_end_async(self, trainer: TrainerView) -> Metrics:
        """Training finished normally: every async callback's `on_train_end_async`, together."""
        enabled, here = self.failures.enabled, self._runs_here
        calls = [
            (cb, "on_train_end_async") for cb in self.async_callbacks if enabled(cb) and here(cb)
        ]
        if not calls:
            return {}
        return self._metrics.record(trainer, await self.failures.call_all(calls, trainer), end=True)

    def on_train_end(self, trainer: TrainerView) -> None:
        """Training finished normally: every sync callback's `on_train_end`, checkpoints last
        (after `on_train_end_async`, so the final checkpoint holds the async callbacks' state)."""
        ordered = sorted(
            (cb for cb in self.callbacks if self.failures.enabled(cb) and self._runs_here(cb)),
            key=lambda cb: isinstance(cb, CheckpointCallback),
        )
        reports = [(cb, self.failures.call(cb, "on_train_end", trainer)) for cb in ordered]
        self._metrics.record(trainer, reports, end=True)

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        """Tell every callback that training is stopping (checkpoints last); never raises."""
        ordered = sorted(self._here(), key=lambda cb: isinstance(cb, CheckpointCallback))
        for cb in ordered:
            self.failures.teardown(cb, "on_exception", lambda cb=cb: cb.on_exception(trainer, exc))

    def close(self) -> None:
        """Close every callback, each one whatever the others do. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for cb in self._here():
            self.failures.teardown(cb, "close", cb.close)

    def checkpoints_in_use(self) -> set[int]:
        """The steps whose checkpoints an enabled callback here still needs; the trainer pins
        them in its checkpoint store (see `Callback.checkpoints_in_use`)."""
        steps: set[int] = set()
        for cb in self._here():
            if self.failures.enabled(cb):
                steps.update(cb.checkpoints_in_use())
        return steps

    # -------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Every registered callback's state and schedule, keyed by `state_key`."""
        return saved_state(self._every())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore each callback's state by key; a state whose callback is not registered yet
        waits for it (and is reported when training starts if none comes)."""
        self._saved.load(state)
        for cb in self._every():
            self._claim_state(cb)

    def _claim_state(self, cb: _CallbackBase) -> None:
        if self._saved.claim(cb):
            self._dirty = True
