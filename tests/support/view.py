"""Small, real implementations of what callbacks use, for tests that drive a `CallbackManager`.

- `View` satisfies `TrainerView`: a tiny torch model and optimizer, a real `CheckpointStore` (in
  the test's temporary directory) behind a `StateSaver` whose states carry the manager's callback
  state, a real `MetricsRecorder` writing `metrics.jsonl`, the project logger and a run directory.
  It has no training loop: a test sets `global_timestep` and calls the manager's dispatch methods
  itself, as the `Trainer` does.
- `ProcessEvaluator` satisfies `Evaluator`: it loads the weights of a committed checkpoint and
  "plays" (scores the network on fixed probe positions) in this process, or in a spawned worker
  process, optionally after a delay; like the real evaluator it writes the checkpoint's
  `evaluation.json` when it is done. Cancelling a running evaluation's future stops its worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from keisei.checkpoint import (
    CheckpointStore,
    LoadedCheckpoint,
    StateSaver,
    TrainingState,
    checkpoint_name,
    load_model_weights,
    record_evaluation,
    step_of,
)
from keisei.checkpoint.run_layout import RunLayout
from keisei.evaluation.result import EloSnapshot, EvaluationResult, GameResult
from keisei.log import JsonlSink, MetricsRecorder, get_logger, read_metrics
from keisei.training.callback_manager import CallbackManager

PROBES = torch.linspace(-1.0, 1.0, 16).reshape(4, 4)
"""Fixed "positions": one game per probe row (repeated for more games)."""


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def play_checkpoint(checkpoint: str, step: int, games: int, delay_s: float) -> EvaluationResult:
    """Evaluate the committed checkpoint at `checkpoint` (runs in a worker process or in this
    one): wait `delay_s`, load its weights, score them on the probes, record the result beside
    the checkpoint (`evaluation.json`) and return it."""
    started = time.monotonic()
    time.sleep(delay_s)
    model = tiny_model()
    model.load_state_dict(load_model_weights(checkpoint))
    with torch.inference_mode():
        scores = model(PROBES.repeat(games // 4 + 1, 1)[:games]).flatten().tolist()
    results = [
        GameResult(
            opponent="probe",
            agent_color="black" if index % 2 == 0 else "white",
            outcome="win" if score > 0.05 else "loss" if score < -0.05 else "draw",
            reason="probe",
            plies=10 + index,
        )
        for index, score in enumerate(scores)
    ]
    wins = sum(result.outcome == "win" for result in results)
    result = EvaluationResult(
        step=step,
        games=results,
        elo=EloSnapshot(rating=100.0 * wins, opponent="probe", last_outcome=results[-1].outcome),
        worker_pid=os.getpid(),
        duration_s=time.monotonic() - started,
    )
    record_evaluation(checkpoint, result.metrics())
    return result


@dataclass
class _Job:
    """One background evaluation: what to run, the future handed out, the pool's future."""

    args: tuple[str, int, int, float]
    outer: Future[EvaluationResult]
    inner: Future[EvaluationResult] | None = None


class ProcessEvaluator:
    """A real `Evaluator`: in-process, or in one spawned worker process, evaluations in order.

    `calls` lists ("sync" or "async", step, checkpoint path) for every request; `stopped` the
    steps whose running evaluation was stopped by cancelling its future (the worker process is
    terminated; evaluations queued behind it are restarted on a fresh worker).
    """

    def __init__(self, games: int = 4, delay_s: float = 0.0) -> None:
        self.games = games
        self.delay_s = delay_s
        self.calls: list[tuple[str, int, Path]] = []
        self.stopped: list[int] = []
        self._executor: ProcessPoolExecutor | None = None
        self._jobs: list[_Job] = []
        self._lock = threading.RLock()
        self._closed = False

    def evaluate_checkpoint(self, checkpoint: Path, step: int) -> EvaluationResult:
        self.calls.append(("sync", step, Path(checkpoint)))
        return play_checkpoint(str(checkpoint), step, self.games, self.delay_s)

    def evaluate_checkpoint_async(self, checkpoint: Path, step: int) -> Future[EvaluationResult]:
        self.calls.append(("async", step, Path(checkpoint)))
        outer: Future[EvaluationResult] = Future()
        job = _Job((str(checkpoint), step, self.games, self.delay_s), outer)
        with self._lock:
            if self._closed:
                raise RuntimeError("the evaluator is closed")
            self._jobs.append(job)
            self._start(job)
        outer.add_done_callback(lambda _: self._outer_done(job))
        return outer

    def _start(self, job: _Job) -> None:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        inner = self._executor.submit(play_checkpoint, *job.args)
        job.inner = inner
        inner.add_done_callback(lambda done: self._inner_done(job, done))

    def _inner_done(self, job: _Job, inner: Future[EvaluationResult]) -> None:
        with self._lock:
            if job.inner is not inner or inner.cancelled() or job.outer.done():
                return  # replaced by a restart, or given up by the caller
            if job in self._jobs:
                self._jobs.remove(job)
            try:
                exc = inner.exception()
                if exc is None:
                    job.outer.set_result(inner.result())
                else:
                    job.outer.set_exception(exc)
            except InvalidStateError:  # cancelled by the caller meanwhile
                pass

    def _outer_done(self, job: _Job) -> None:
        with self._lock:
            if job in self._jobs:
                self._jobs.remove(job)
            if not job.outer.cancelled() or self._closed or job.inner is None:
                return
            if job.inner.cancel() or job.inner.done():
                return
            self.stopped.append(job.args[1])  # running: stop its worker
            self._kill_workers()
            for other in list(self._jobs):
                self._start(other)

    def _kill_workers(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=30)
        executor.shutdown(wait=False, cancel_futures=True)

    def live_workers(self) -> list[int]:
        """Pids of the worker processes that are alive."""
        executor = self._executor
        processes = (getattr(executor, "_processes", None) or {}) if executor else {}
        return [pid for pid, process in dict(processes).items() if process.is_alive()]

    def close(self) -> None:
        """Stop every worker; outstanding futures are cancelled. Safe to call twice."""
        with self._lock:
            self._closed = True
            jobs, self._jobs = self._jobs, []
            self._kill_workers()
        for job in jobs:
            job.outer.cancel()


@dataclass
class View:
    """A real, minimal `TrainerView`. Set `manager` to have its state saved in checkpoints."""

    run_dir: Path
    manager: CallbackManager | None = None
    evaluator: ProcessEvaluator | None = None
    global_timestep: int = 0
    total_episodes_completed: int = 0
    black_wins: int = 0
    white_wins: int = 0
    draws: int = 0
    model: torch.nn.Module = field(default_factory=tiny_model)
    logger: logging.Logger = field(default_factory=lambda: get_logger("test-view"))
    keep_last: int = 100
    keep_rated: bool = True
    async_save: bool = True

    def __post_init__(self) -> None:
        self.layout = RunLayout(self.run_dir)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)
        self.store = CheckpointStore(
            self.layout.checkpoints,
            keep_last=self.keep_last,
            keep_rated=self.keep_rated,
            async_save=self.async_save,
        )
        self.checkpoint_saver: StateSaver | None = self.store.saver(self.training_state)
        self.metrics = MetricsRecorder([JsonlSink(self.layout.metrics)])

    def training_state(self, step: int) -> TrainingState:
        """What a checkpoint of this view holds (the `StateSaver`'s `make_state`)."""
        return TrainingState(
            step=step,
            model=self.model,
            optimizer=self.optimizer,
            counters={
                "episodes": self.total_episodes_completed,
                "black_wins": self.black_wins,
                "white_wins": self.white_wins,
                "draws": self.draws,
            },
            callback_state=self.manager.state_dict() if self.manager is not None else {},
        )

    def record_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.metrics.record(metrics, self.global_timestep if step is None else step)

    # ---- for assertions ------------------------------------------------------------------

    def metric_records(self) -> list[dict[str, Any]]:
        """Every record written to `metrics.jsonl` so far."""
        path = self.layout.metrics
        return read_metrics(path) if path.exists() else []

    def checkpoint_path(self, step: int) -> Path:
        return self.store.directory / checkpoint_name(step)

    def saved_steps(self) -> list[int]:
        """Steps of the committed checkpoints on disk (waits for a write in flight)."""
        self.store.flush()
        return [step_of(path.name) or 0 for path in self.store.checkpoints()]

    def load(self, step: int) -> LoadedCheckpoint:
        return self.store.load(checkpoint_name(step))

    def close(self) -> None:
        """Close the store (flushing) and the metric sinks. Safe to call twice."""
        try:
            self.store.close()
        finally:
            self.metrics.close()
