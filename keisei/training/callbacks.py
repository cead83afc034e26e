"""Training callbacks: periodic and lifecycle work around the training loop.

Hooks, in the order training calls them:

- `on_train_start(trainer)`: once, before the first epoch (also after a resume).
- `on_step_end(trainer)`: after every epoch's PPO update, with `trainer.global_timestep` equal to
  the environment steps completed. `AsyncCallback.on_step_end` is a coroutine that returns metrics.
- `on_train_end(trainer)`: once, when training finishes normally.
- `on_exception(trainer, exc)`: when training stops on an error or Ctrl-C.
- `close()`: always last, whatever happened; releases resources.

Callbacks never see the `Trainer` itself, only a `TrainerView`: the small, typed set of things a
callback may use. `state_dict()`/`load_state_dict()` carry a callback's state through checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from keisei.evaluation.result import EloSnapshot, EvaluationResult
from keisei.training.schedule import EveryNSteps

Metrics = dict[str, float]


class CheckpointSaver(Protocol):
    """Writes a checkpoint of the whole training state (model, optimizer, counters, callbacks)."""

    def save(self, step: int, *, wait: bool = False) -> Path:
        """Save the state at `step`; `wait=True` returns only once it is safely on disk."""
        ...


class Evaluator(Protocol):
    """Plays evaluation games for the agent's current weights."""

    def evaluate_current_agent(self, agent: torch.nn.Module, step: int) -> EvaluationResult:
        """Evaluate now, in this process (the model is already in eval mode)."""
        ...

    def evaluate_current_agent_async(
        self, agent: torch.nn.Module, step: int
    ) -> Future[EvaluationResult]:
        """Snapshot the weights now, evaluate them in another process, return at once.

        Cancelling the returned future must stop the work, even once it has started.
        """
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

    def record_metrics(self, metrics: Mapping[str, float]) -> None:
        """Record metrics at the current global step."""
        ...


class _CallbackBase:
    """What sync and async callbacks share: identity, criticality, lifecycle and state."""

    critical: bool = False
    """A critical callback that fails stops training (after a final checkpoint and teardown)."""
    schedule: EveryNSteps | None = None
    """For a sync callback: when set, the manager calls `on_step_end` only when it is due (and
    saves the schedule's state); when None, `on_step_end` runs after every epoch."""

    def __init__(self, *, critical: bool | None = None, name: str | None = None) -> None:
        if critical is not None:  # otherwise keep the class attribute
            self.critical = critical
        self._name = name

    @property
    def name(self) -> str:
        return getattr(self, "_name", None) or type(self).__name__

    def on_train_start(self, trainer: TrainerView) -> None:
        """Before the first epoch of this process (fresh run or resume)."""

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        """Training is stopping because of `exc`; called before `close()`."""

    def close(self) -> None:
        """Release resources. Always called last, even when training failed."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state saved in checkpoints."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned."""

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Callback(_CallbackBase):
    """A callback run synchronously in the training loop."""

    def on_step_end(self, trainer: TrainerView) -> None:
        """After each epoch (PPO update); the loop waits for it."""

    def on_train_end(self, trainer: TrainerView) -> None:
        """Training finished normally."""


class AsyncCallback(_CallbackBase):
    """A callback whose step work is a coroutine; async callbacks run concurrently.

    `on_step_end` should start long work in the background and return quickly; results of earlier
    work are returned as metrics on a later call.
    """

    async def on_step_end(self, trainer: TrainerView) -> Metrics | None:
        """After each epoch; returns metrics to record (or None)."""
        return None

    async def on_train_end(self, trainer: TrainerView) -> Metrics | None:
        """Training finished normally: finish or cancel background work."""
        return None


class CheckpointCallback(Callback):
    """Saves a checkpoint every `interval` steps, and a final one when training stops.

    The manager runs checkpoint callbacks after all others at the same step, so a checkpoint
    holds the freshest state of everything else.
    """

    def __init__(self, interval: int, model_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = EveryNSteps(interval)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.last_saved_step: int | None = None

    def _save(self, trainer: TrainerView, *, final: bool) -> None:
        saver = trainer.checkpoint_saver
        step = trainer.global_timestep
        if saver is None:
            raise RuntimeError(
                f"{self.name}: a checkpoint is due at step {step} but the trainer "
                "has no checkpoint saver"
            )
        path = saver.save(step, wait=final)
        self.last_saved_step = step
        trainer.logger.info("%scheckpoint for step %d: %s", "final " if final else "", step, path)

    def on_step_end(self, trainer: TrainerView) -> None:
        self._save(trainer, final=False)

    def _save_final(self, trainer: TrainerView) -> None:
        if trainer.checkpoint_saver is not None and self.last_saved_step != trainer.global_timestep:
            self._save(trainer, final=True)

    def on_train_end(self, trainer: TrainerView) -> None:
        self._save_final(trainer)

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        self._save_final(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"last_saved_step": self.last_saved_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_saved_step = state.get("last_saved_step")


def _report_evaluation(trainer: TrainerView, name: str, result: EvaluationResult) -> Metrics:
    trainer.logger.info("%s: %s", name, result.summary())
    return result.metrics()


class EvaluationCallback(Callback):
    """Runs the evaluator every `interval` steps; the loop waits for it."""

    def __init__(self, interval: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = EveryNSteps(interval)
        self.last_result: EvaluationResult | None = None
        self.elo_snapshot: EloSnapshot | None = None

    def on_step_end(self, trainer: TrainerView) -> None:
        step = trainer.global_timestep
        evaluator = trainer.evaluator
        if evaluator is None:
            raise RuntimeError(
                f"{self.name}: evaluation is due at step {step} but the trainer has no evaluator"
            )
        model = trainer.model
        was_training = model.training
        model.eval()
        try:
            result = evaluator.evaluate_current_agent(model, step)
        finally:
            model.train(was_training)
        self.last_result = result
        self.elo_snapshot = result.elo or self.elo_snapshot
        trainer.record_metrics(_report_evaluation(trainer, self.name, result))


class AsyncEvaluationCallback(AsyncCallback):
    """Starts an evaluation every `interval` steps without making the loop wait.

    The evaluator snapshots the weights and plays in another process; the result is returned as
    metrics on a later call, stamped (`evaluation/step`) with the step of the weights it used.
    A trigger that arrives while an evaluation is still running is dropped (`policy="skip"`) or
    waits in a queue of at most `queue_size` (`policy="queue"`; beyond that it is dropped).
    At the end of training, running work gets `shutdown_timeout_s`, then is cancelled.
    """

    def __init__(
        self,
        interval: int,
        *,
        policy: Literal["skip", "queue"] = "skip",
        queue_size: int = 2,
        shutdown_timeout_s: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if policy not in ("skip", "queue"):
            raise ValueError(f"policy must be 'skip' or 'queue', got {policy!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.trigger = EveryNSteps(interval)
        self.policy = policy
        self.capacity = 1 if policy == "skip" else 1 + queue_size
        self.shutdown_timeout_s = shutdown_timeout_s
        self.pending: list[tuple[int, Future[EvaluationResult]]] = []
        self.skipped = 0
        self.failed = 0
        self.last_result: EvaluationResult | None = None
        self.elo_snapshot: EloSnapshot | None = None
        self._interrupted_steps: list[int] = []

    @property
    def running_steps(self) -> list[int]:
        return [step for step, _ in self.pending]

    def _launch(self, trainer: TrainerView, step: int) -> None:
        evaluator = trainer.evaluator
        if evaluator is None:
            raise RuntimeError(
                f"{self.name}: evaluation is due at step {step} but the trainer has no evaluator"
            )
        if len(self.pending) >= self.capacity:
            self.skipped += 1
            trainer.logger.warning(
                "%s: evaluation due at step %d skipped (policy %s): evaluations of steps %s are "
                "still running",
                self.name,
                step,
                self.policy,
                self.running_steps,
            )
            return
        self.pending.append((step, evaluator.evaluate_current_agent_async(trainer.model, step)))

    def _take_result(
        self, trainer: TrainerView, step: int, future: Future[EvaluationResult]
    ) -> Metrics:
        exc = future.exception()
        if exc is not None:
            self.failed += 1
            trainer.logger.error(
                "%s: background evaluation of step %d failed", self.name, step, exc_info=exc
            )
            return {"evaluation/failed": float(self.failed)}
        result = future.result()
        self.last_result = result
        self.elo_snapshot = result.elo or self.elo_snapshot
        return _report_evaluation(trainer, self.name, result)

    def _collect(self, trainer: TrainerView, *, limit: int | None) -> list[Metrics]:
        reports = []
        while (
            self.pending and self.pending[0][1].done() and (limit is None or len(reports) < limit)
        ):
            step, future = self.pending.pop(0)
            reports.append(self._take_result(trainer, step, future))
        return reports

    def on_train_start(self, trainer: TrainerView) -> None:
        self.trigger.start(trainer.global_timestep)
        interrupted, self._interrupted_steps = self._interrupted_steps, []
        for step in interrupted:
            if step == trainer.global_timestep:
                trainer.logger.info(
                    "%s: the evaluation of step %d was running when the checkpoint was written; "
                    "running it again on the restored weights",
                    self.name,
                    step,
                )
                self._launch(trainer, step)
            else:
                trainer.logger.warning(
                    "%s: the evaluation of step %d was running when the checkpoint was written "
                    "and its weights are gone; it is lost",
                    self.name,
                    step,
                )

    async def on_step_end(self, trainer: TrainerView) -> Metrics | None:
        # One finished result per call, oldest first, so a result never shadows another's keys.
        reports = self._collect(trainer, limit=1)
        if self.trigger.due(trainer.global_timestep):
            self._launch(trainer, trainer.global_timestep)
        metrics = reports[0] if reports else {}
        if self.skipped:
            metrics["evaluation/skipped"] = float(self.skipped)
        return metrics or None

    async def on_train_end(self, trainer: TrainerView) -> Metrics | None:
        if self.pending:
            trainer.logger.info(
                "%s: waiting up to %.0f s for evaluations of steps %s",
                self.name,
                self.shutdown_timeout_s,
                self.running_steps,
            )
            futures = [asyncio.wrap_future(future) for _, future in self.pending]
            await asyncio.wait(futures, timeout=self.shutdown_timeout_s)
        reports = self._collect(trainer, limit=None)
        self._cancel_pending(trainer.logger, f"still running after {self.shutdown_timeout_s:g} s")
        for report in reports[:-1]:
            trainer.record_metrics(report)
        return reports[-1] if reports else None

    def _cancel_pending(self, logger: logging.Logger, why: str) -> None:
        for step, future in self.pending:
            future.cancel()
            logger.warning("%s: cancelled the evaluation of step %d: %s", self.name, step, why)
        self.pending.clear()

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        self._cancel_pending(trainer.logger, "training stopped")

    def close(self) -> None:
        for _, future in self.pending:
            future.cancel()
        self.pending.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.state_dict(),
            "running_steps": self.running_steps,
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "trigger" in state:
            self.trigger.load_state_dict(state["trigger"])
        self.skipped = int(state.get("skipped", 0))
        self.failed = int(state.get("failed", 0))
        self._interrupted_steps = [int(step) for step in state.get("running_steps", [])]
