"""Training callbacks: periodic and lifecycle work around the training loop.

Hooks, in the order training calls them:

- `on_train_start(trainer)`: once, before the first epoch (also after a resume).
- `poll(trainer)` / `async poll_async(trainer)`: after every epoch, only for a callback that says
  it must look at background work every epoch (`polls = True`); runs before the step hook.
- `on_step_end(trainer)` / `async on_step_end_async(trainer)`: after an epoch's PPO update, when
  the callback's `schedule` is due (every epoch when it has none), with `trainer.global_timestep`
  equal to the environment steps completed.
- `on_train_end(trainer)` / `async on_train_end_async(trainer)`: once, when training finishes
  normally.
- `on_exception(trainer, exc)`: when training stops on an error or Ctrl-C.
- `close()`: always last, whatever happened; releases resources.

A `Callback` implements the plain hooks, an `AsyncCallback` the `..._async` coroutines. Step and
end hooks may return metrics (`dict[str, float]`); the manager records them. A hook the manager
does not know (a misspelling, `on_step_end` on an `AsyncCallback`) is refused at registration.

When several ranks train (torchrun, `--nproc-per-node`), every rank runs the same manager with the
same schedules, and `runs_on` says where a callback's hooks run: `rank_zero` (the default: work
that touches files, such as checkpoints, evaluation, metrics; it must not call a collective) or
`all_ranks` (every rank at the same step, in the same order; collectives are allowed).

Callbacks never see the `Trainer` itself, only a `TrainerView`: the small, typed set of things a
callback may use. `state_dict()`/`load_state_dict()` carry a callback's state through checkpoints,
matched by `state_key` (the class name, plus an optional key of the caller's).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch

from keisei.checkpoint import WriteOutcome
from keisei.evaluation.result import EvaluationResult
from keisei.training.schedule import EveryNSteps

Metrics = dict[str, float]


class StampedMetrics(dict[str, float]):
    """Metrics about earlier steps than the one they are reported at: evaluation results, each
    stamped with the step whose checkpoint it rated. A hook returns them as any metrics; the
    manager records each row as a row of its own at its step (`rows`, oldest first), never
    merged with the others. As a mapping it reads as the newest row."""

    def __init__(self, rows: list[tuple[int, Mapping[str, float]]]) -> None:
        if not rows:
            raise ValueError("StampedMetrics needs at least one row")
        super().__init__(rows[-1][1])
        self.rows = [(step, dict(metrics)) for step, metrics in rows]


RunsOn = Literal["rank_zero", "all_ranks"]


class CriticalCallbackError(RuntimeError):
    """A callback marked critical failed: training stops (the cause is `__cause__`)."""

    def __init__(self, callback: str, hook: str, step: int) -> None:
        super().__init__(f"critical callback {callback} failed in {hook} at step {step}")
        self.callback = callback
        self.hook = hook
        self.step = step


class CheckpointSaver(Protocol):
    """Writes checkpoints of the whole training state; only `CheckpointCallback` calls `save`."""

    def save(self, step: int, *, wait: bool = False) -> Path:
        """Save the state at `step`; `wait=True` returns only once it is safely on disk."""
        ...

    def flush(self) -> None:
        """Wait for the write in flight; raise its error if it failed."""
        ...

    def committed(self, step: int) -> Path | None:
        """The checkpoint of `step` once it is on disk (waiting for a write in flight), or None
        when no checkpoint of that step was written."""
        ...

    def take_outcomes(self) -> list[WriteOutcome]:
        """How the writes that ended since the last call ended, oldest first."""
        ...


class Evaluator(Protocol):
    """Plays evaluation games for a committed checkpoint of the run."""

    def evaluate_checkpoint(self, checkpoint: Path, step: int) -> EvaluationResult:
        """Evaluate now, in this process."""
        ...

    def evaluate_checkpoint_async(self, checkpoint: Path, step: int) -> Future[EvaluationResult]:
        """Evaluate in another process; return at once. Cancelling the future stops the work."""
        ...


@runtime_checkable
class TrainerView(Protocol):
    """What a callback may see of the trainer."""

    @property
    def global_timestep(self) -> int: ...

    @property
    def total_episodes_completed(self) -> int: ...

    @property
    def black_wins(self) -> int: ...

    @property
    def white_wins(self) -> int: ...

    @property
    def draws(self) -> int: ...

    @property
    def model(self) -> torch.nn.Module: ...

    @property
    def checkpoint_saver(self) -> CheckpointSaver | None: ...

    @property
    def evaluator(self) -> Evaluator | None: ...

    @property
    def logger(self) -> logging.Logger: ...

    @property
    def run_dir(self) -> Path: ...

    def record_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record metrics at `step` (None: the current global step). The manager calls this
        with what hooks return; a callback returns its metrics rather than calling it."""
        ...


class _CallbackBase:
    """What sync and async callbacks share: identity, scheduling, lifecycle and state."""

    critical: bool = False
    """A critical callback that fails stops training (`CriticalCallbackError`)."""
    schedule: EveryNSteps | None = None
    """When the step hook is due; None: after every epoch. Aligned to whole epochs (and its
    state saved) by the manager."""
    polls: bool = False
    """True: the manager also calls the poll hook after every epoch, due or not (for callbacks
    that must report finished background work)."""
    runs_on: RunsOn = "rank_zero"
    """With several ranks: `rank_zero` runs the hooks on rank 0 only (collectives inside them
    raise), `all_ranks` on every rank at the same step. One process is rank 0."""
    needs_checkpoint: bool = False
    """True for a callback that may need a checkpoint at the steps its step hook runs (evaluation
    rates committed checkpoints); the manager then asks `wants_checkpoint` after the hook."""

    STEP_HOOKS: ClassVar[tuple[str, ...]] = ()
    """The hooks of this kind of callback that the manager calls (besides the shared ones)."""
    _SHARED_HOOKS: ClassVar[tuple[str, ...]] = ("on_train_start", "on_exception")

    def __init__(
        self,
        *,
        critical: bool | None = None,
        name: str | None = None,
        state_key: str | None = None,
    ) -> None:
        if critical is not None:  # otherwise keep the class attribute
            self.critical = critical
        self._name = name
        self._state_key = state_key

    @property
    def name(self) -> str:
        return getattr(self, "_name", None) or type(self).__name__

    @property
    def state_key(self) -> str:
        """Identifies this callback's state in checkpoints: the class name, plus the key given
        to the constructor when there are several callbacks of one class."""
        key = getattr(self, "_state_key", None)
        return type(self).__qualname__ + (f"[{key}]" if key else "")

    def on_train_start(self, trainer: TrainerView) -> None:
        """Before the first epoch of this process (fresh run or resume)."""

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        """Training is stopping because of `exc`; called before `close()`."""

    def close(self) -> None:
        """Release resources. Always called last, even when training failed."""

    def wants_checkpoint(self, step: int) -> bool:
        """After its step hook ran at `step`: should the checkpoint callbacks save at this step,
        due or not? Asked only when `needs_checkpoint` is True."""
        return self.needs_checkpoint

    def checkpoints_in_use(self) -> set[int]:
        """Steps whose checkpoints this callback still needs (e.g. an evaluation asked for them
        and has not finished): retention does not delete them. Called from the thread that
        writes checkpoints, while the loop runs: it reads a copy of the callback's state."""
        return set()

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state saved in checkpoints."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned."""

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Callback(_CallbackBase):
    """A callback run synchronously in the training loop."""

    STEP_HOOKS = ("on_step_end", "on_train_end", "poll")

    def on_step_end(self, trainer: TrainerView) -> Metrics | None:
        """After an epoch, when due; the loop waits for it."""
        return None

    def on_train_end(self, trainer: TrainerView) -> Metrics | None:
        """Training finished normally."""
        return None

    def poll(self, trainer: TrainerView) -> Metrics | None:
        """After every epoch, before `on_step_end`; called only when `polls` is True."""
        return None


class AsyncCallback(_CallbackBase):
    """A callback whose step work is a coroutine; async callbacks due together run concurrently.

    `on_step_end_async` should start long work in the background and return quickly; results of
    earlier work are returned as metrics by a later call (usually of `poll_async`).
    """

    STEP_HOOKS = ("on_step_end_async", "on_train_end_async", "poll_async")

    async def on_step_end_async(self, trainer: TrainerView) -> Metrics | None:
        """After an epoch, when due; returns metrics to record (or None)."""
        return None

    async def on_train_end_async(self, trainer: TrainerView) -> Metrics | None:
        """Training finished normally: finish or cancel background work."""
        return None

    async def poll_async(self, trainer: TrainerView) -> Metrics | None:
        """After every epoch, before `on_step_end_async`; called only when `polls` is True."""
        return None


def check_hooks(callback: _CallbackBase) -> None:
    """Refuse a callback whose hooks the manager would never call, or call wrongly.

    Raises `TypeError` naming the hook: an `on_...` method the manager does not know for this
    kind of callback (a misspelling, a sync hook on an `AsyncCallback`), a hook that is a coroutine
    where a plain function is expected or the reverse, or a poll hook without `polls = True`.
    """
    if not isinstance(callback, Callback | AsyncCallback):
        raise TypeError(f"{type(callback).__name__} is not a Callback or an AsyncCallback")
    if callback.runs_on not in ("rank_zero", "all_ranks"):
        raise TypeError(
            f"{type(callback).__name__}.runs_on = {callback.runs_on!r}: expected 'rank_zero' "
            "or 'all_ranks'"
        )
    kind = AsyncCallback if isinstance(callback, AsyncCallback) else Callback
    cls = type(callback)
    known = {*kind.STEP_HOOKS, *kind._SHARED_HOOKS}
    for attribute in dir(cls):
        is_hook_name = attribute.startswith("on_") or attribute in ("poll", "poll_async")
        if not is_hook_name or not callable(getattr(cls, attribute)):
            continue
        if attribute not in known:
            hint = (
                f"; an AsyncCallback implements {attribute}_async"
                if f"{attribute}_async" in AsyncCallback.STEP_HOOKS and kind is AsyncCallback
                else ""
            )
            raise TypeError(
                f"{cls.__name__}.{attribute} is not a hook the callback manager calls "
                f"(a {kind.__name__} has {', '.join(sorted(known))}){hint}"
            )
        is_coroutine = inspect.iscoroutinefunction(getattr(cls, attribute))
        should_be = attribute in AsyncCallback.STEP_HOOKS
        if is_coroutine != should_be:
            want = "an `async def`" if should_be else "a plain `def`, not a coroutine"
            raise TypeError(f"{cls.__name__}.{attribute} must be {want}")
    poll = "poll_async" if kind is AsyncCallback else "poll"
    overrides_poll = getattr(cls, poll) is not getattr(kind, poll)
    if overrides_poll and not callback.polls:
        raise TypeError(f"{cls.__name__} defines {poll} but `polls` is False: set polls = True")
