"""The evaluation callbacks: `EvaluationCallback` (in the training process) and
`AsyncEvaluationCallback` (in a background process, without making the loop wait).

Both rate committed checkpoints: when due at step S they queue S and ask for a checkpoint at S
(`wants_checkpoint`); once it is on disk (checked after every epoch, `polls = True`) its
evaluation runs, so every rated player is a checkpoint that loads. Each result is a metrics row of
its own at the step it rated (`StampedMetrics`), however many finish together. From the step's
trigger until its evaluation has finished, the step is in `checkpoints_in_use()`, so retention
does not delete the checkpoint before the evaluation has loaded it. Importable from
`keisei.training.callbacks` like every callback Keisei ships.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from keisei.checkpoint import read_evaluation
from keisei.evaluation.result import EloSnapshot, EvaluationResult
from keisei.training.callback_system.base import (
    AsyncCallback,
    Callback,
    Evaluator,
    Metrics,
    StampedMetrics,
    TrainerView,
)
from keisei.training.schedule import EveryNSteps


def _report(trainer: TrainerView, name: str, result: EvaluationResult) -> Metrics:
    trainer.logger.info("%s: %s", name, result.summary())
    return result.metrics()


Row = tuple[int, Metrics]
"""The metrics of the evaluation of one step, and that step."""


def _stamped(rows: list[Row]) -> StampedMetrics | None:
    """The rows to report, each at its own step (None when there are none)."""
    rows = [(step, metrics) for step, metrics in rows if metrics]
    return StampedMetrics(rows) if rows else None


class _CheckpointEvaluations:
    """Bookkeeping both evaluation callbacks share: steps whose evaluation waits for the
    checkpoint written at that step, and the latest result for the display."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.waiting: list[int] = []
        self.restored: list[int] = []
        """Steps read from a checkpoint's state, queued again when training starts."""
        self.last_result: EvaluationResult | None = None
        self.elo_snapshot: EloSnapshot | None = None
        self._held: set[int] = set()
        """Steps from their trigger until their evaluation has finished (read by the thread
        that writes checkpoints, hence the lock)."""
        self._lock = threading.Lock()

    def add(self, step: int) -> None:
        if step not in self.waiting:
            self.waiting.append(step)
        with self._lock:
            self._held.add(step)

    def release(self, step: int) -> None:
        """The evaluation of `step` is over (finished, failed or given up): its checkpoint is
        no longer in use."""
        with self._lock:
            self._held.discard(step)

    def held(self) -> set[int]:
        """The steps whose evaluation has not finished."""
        with self._lock:
            return set(self._held)

    def restore(self, logger: logging.Logger) -> None:
        """After a resume: evaluations not finished when the checkpoint was written run again."""
        steps, self.restored = self.restored, []
        for step in sorted(steps):
            self.add(step)
        if steps:
            logger.info(
                "%s: evaluations of steps %s had not finished when the checkpoint was written; "
                "they run again on their checkpoints",
                self.name,
                sorted(steps),
            )

    def take_ready(
        self, trainer: TrainerView, *, limit: int | None = None
    ) -> list[tuple[int, Path]]:
        """Waiting steps whose checkpoint is committed, oldest first (at most `limit`).

        A step with no checkpoint, or whose checkpoint was already evaluated, is dropped with a
        log line; nothing waits forever.
        """
        ready: list[tuple[int, Path]] = []
        saver = trainer.checkpoint_saver
        while self.waiting and (limit is None or len(ready) < limit):
            step = self.waiting.pop(0)
            path = saver.committed(step) if saver is not None else None
            if path is None:
                trainer.logger.warning(
                    "%s: no checkpoint was written at step %d, so it is not evaluated "
                    "(is a CheckpointCallback registered, and are async callbacks dispatched "
                    "before sync ones?)",
                    self.name,
                    step,
                )
                self.release(step)
            elif read_evaluation(path) is not None:
                trainer.logger.info("%s: %s is already evaluated", self.name, path.name)
                self.release(step)
            else:
                ready.append((step, path))
        return ready

    def report(self, trainer: TrainerView, result: EvaluationResult) -> Metrics:
        self.last_result = result
        self.elo_snapshot = result.elo or self.elo_snapshot
        return _report(trainer, self.name, result)


class _RatesCheckpoints:
    """What both evaluation callbacks share: when due they queue the step (and ask for its
    checkpoint); after a resume, what was not finished runs again; the display reads the latest
    result. The class using it sets `self._evaluations`."""

    polls = True
    needs_checkpoint = True
    _evaluations: _CheckpointEvaluations

    @property
    def last_result(self) -> EvaluationResult | None:
        return self._evaluations.last_result

    @property
    def elo_snapshot(self) -> EloSnapshot | None:
        return self._evaluations.elo_snapshot

    def on_train_start(self, trainer: TrainerView) -> None:
        self._evaluations.restore(trainer.logger)

    def wants_checkpoint(self, step: int) -> bool:
        return step in self._evaluations.waiting  # not when the trigger was skipped

    def checkpoints_in_use(self) -> set[int]:
        return self._evaluations.held()


def _evaluator(trainer: TrainerView, name: str) -> Evaluator:
    evaluator = trainer.evaluator
    if evaluator is None:
        raise RuntimeError(f"{name}: an evaluation is due but the trainer has no evaluator")
    return evaluator


class EvaluationCallback(_RatesCheckpoints, Callback):
    """Evaluates the checkpoint of every `interval`-th step in the training process.

    When due at step S it asks for a checkpoint at S (`wants_checkpoint`); the evaluation runs at
    the next epoch end (or at the end of training), once that checkpoint is committed. The loop
    waits for it.
    """

    def __init__(self, interval: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = EveryNSteps(interval)
        self._evaluations = _CheckpointEvaluations(self.name)

    def on_step_end(self, trainer: TrainerView) -> None:
        self._evaluations.add(trainer.global_timestep)

    def _run_ready(self, trainer: TrainerView) -> Metrics | None:
        rows: list[Row] = []
        ready = self._evaluations.take_ready(trainer)
        try:
            for step, path in ready:
                result = _evaluator(trainer, self.name).evaluate_checkpoint(path, step)
                rows.append((step, self._evaluations.report(trainer, result)))
        finally:
            for step, _ in ready:
                self._evaluations.release(step)
        return _stamped(rows)

    def poll(self, trainer: TrainerView) -> Metrics | None:
        return self._run_ready(trainer)

    def on_train_end(self, trainer: TrainerView) -> Metrics | None:
        return self._run_ready(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"waiting": list(self._evaluations.waiting)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._evaluations.restored = [int(step) for step in state.get("waiting", [])]


class AsyncEvaluationCallback(_RatesCheckpoints, AsyncCallback):
    """Evaluates the checkpoint of every `interval`-th step in a background process.

    When due at step S it asks for a checkpoint at S (`wants_checkpoint`; not when the trigger is
    skipped); once that is committed (checked after every epoch) the evaluation starts in a
    worker process and the loop goes on. Its result is returned by a later poll, a metrics row
    of its own at step S (stamped `evaluation/step` = S). A trigger that arrives while
    evaluations are waiting or running is dropped (`policy="skip"`) or waits in a queue of at
    most `queue_size` (`policy="queue"`; beyond that it is dropped). At the end of training,
    running work gets `shutdown_timeout_s`, then is cancelled.
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
        self.schedule = EveryNSteps(interval)
        self.policy = policy
        self.capacity = 1 if policy == "skip" else 1 + queue_size
        self.shutdown_timeout_s = shutdown_timeout_s
        self.pending: list[tuple[int, Future[EvaluationResult]]] = []
        self.skipped = 0
        self.failed = 0
        self._evaluations = _CheckpointEvaluations(self.name)

    @property
    def running_steps(self) -> list[int]:
        return [step for step, _ in self.pending]

    @property
    def waiting_steps(self) -> list[int]:
        return list(self._evaluations.waiting)

    def _launch_ready(self, trainer: TrainerView) -> None:
        room = self.capacity - len(self.pending)
        if room <= 0:
            return
        ready = self._evaluations.take_ready(trainer, limit=room)
        try:
            for step, path in ready:
                future = _evaluator(trainer, self.name).evaluate_checkpoint_async(path, step)
                self.pending.append((step, future))
        finally:
            launched = set(self.running_steps)
            for step, _ in ready:
                if step not in launched:
                    self._evaluations.release(step)

    def _take_result(
        self, trainer: TrainerView, step: int, future: Future[EvaluationResult]
    ) -> Row:
        self._evaluations.release(step)  # done: its results and its player are written
        if future.cancelled():
            trainer.logger.warning(
                "%s: the evaluation of step %d was cancelled elsewhere", self.name, step
            )
            return step, {}
        exc = future.exception()
        if exc is not None:
            self.failed += 1
            trainer.logger.error(
                "%s: background evaluation of step %d failed", self.name, step, exc_info=exc
            )
            return step, {"evaluation/failed": float(self.failed)}
        return step, self._evaluations.report(trainer, future.result())

    def _collect(self, trainer: TrainerView) -> list[Row]:
        """The results finished so far, in the order the evaluations started."""
        rows = []
        while self.pending and self.pending[0][1].done():
            step, future = self.pending.pop(0)
            rows.append(self._take_result(trainer, step, future))
        return rows

    async def poll_async(self, trainer: TrainerView) -> Metrics | None:
        rows = self._collect(trainer)  # each a row of its own: none shadows another's keys
        self._launch_ready(trainer)
        return _stamped(rows)

    async def on_step_end_async(self, trainer: TrainerView) -> Metrics | None:
        step = trainer.global_timestep
        if len(self.pending) + len(self._evaluations.waiting) >= self.capacity:
            self.skipped += 1
            trainer.logger.warning(
                "%s: evaluation due at step %d skipped (policy %s): evaluations of steps %s are "
                "still waiting or running",
                self.name,
                step,
                self.policy,
                sorted(self.running_steps + self.waiting_steps),
            )
            return {"evaluation/skipped": float(self.skipped)}
        self._evaluations.add(step)
        return None

    async def on_train_end_async(self, trainer: TrainerView) -> Metrics | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout_s
        rows: list[Row] = []
        self._launch_ready(trainer)
        if self.pending or self._evaluations.waiting:
            trainer.logger.info(
                "%s: waiting up to %g s for evaluations of steps %s",
                self.name,
                self.shutdown_timeout_s,
                sorted(self.running_steps + self.waiting_steps),
            )
        while self.pending and loop.time() < deadline:
            futures = [asyncio.wrap_future(future) for _, future in self.pending]
            await asyncio.wait(
                futures, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            rows += self._collect(trainer)
            self._launch_ready(trainer)
        self._stop_running(trainer.logger, f"still running after {self.shutdown_timeout_s:g} s")
        for step in self._evaluations.waiting:  # kept in the state for a resume
            trainer.logger.warning(
                "%s: the evaluation of step %d did not finish; it runs if this run is resumed",
                self.name,
                step,
            )
        return _stamped(rows)

    def _stop_running(self, logger: logging.Logger, why: str) -> None:
        """Cancel running evaluations; their steps wait again (in the state, for a resume)."""
        for step, future in self.pending:
            if future.cancel():
                logger.warning("%s: cancelled the evaluation of step %d: %s", self.name, step, why)
            else:
                logger.warning(
                    "%s: the evaluation of step %d could not be cancelled (%s); its result will "
                    "not be reported",
                    self.name,
                    step,
                    why,
                )
            self._evaluations.add(step)
        self.pending.clear()

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        self._stop_running(trainer.logger, "training stopped")

    def close(self) -> None:
        for step, future in self.pending:
            future.cancel()
            self._evaluations.release(step)
        self.pending.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "waiting": sorted(self.running_steps + self.waiting_steps),
            "skipped": self.skipped,
            "failed": self.failed,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.failed = int(state.get("failed", 0))
        self._evaluations.restored = [
            int(s) for s in [*state.get("waiting", []), *state.get("running_steps", [])]
        ]
