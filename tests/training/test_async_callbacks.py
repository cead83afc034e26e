"""Async dispatch and background evaluation: never skipped, never blocking, results come later."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

import pytest

from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import AsyncCallback, AsyncEvaluationCallback, TrainerView
from tests.support.mini_trainer import MiniTrainer, ProcessEvaluator

MakeManager = Callable[..., CallbackManager]
MakeTrainer = Callable[..., MiniTrainer]


class Reporter(AsyncCallback):
    def __init__(self, metrics: dict[str, float] | None, name: str) -> None:
        super().__init__(name=name)
        self.metrics = metrics
        self.calls = 0

    async def on_step_end(self, trainer: TrainerView) -> dict[str, float] | None:
        self.calls += 1
        await asyncio.sleep(0)
        return self.metrics


def test_async_dispatch_always_returns_a_dict(make_manager: MakeManager, make_trainer: MakeTrainer):
    manager = make_manager()
    trainer = make_trainer(manager)
    assert manager.execute_step_callbacks_async(trainer) == {}
    manager.add_async_callback(Reporter(None, "quiet"))
    assert manager.execute_step_callbacks_async(trainer) == {}


def test_metrics_merge_in_registration_order_and_collisions_are_reported(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    manager.add_async_callback(Reporter({"a/x": 1.0, "shared": 1.0}, "first"))
    manager.add_async_callback(Reporter({"b/y": 2.0, "shared": 2.0}, "second"))
    trainer = make_trainer(manager)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        merged = manager.execute_step_callbacks_async(trainer)
    assert list(merged) == ["a/x", "shared", "b/y"]
    assert merged["shared"] == 1.0
    assert any(
        "'shared' reported by both first and second" in r.getMessage() for r in caplog.records
    )


def test_async_callbacks_run_concurrently(make_manager: MakeManager, make_trainer: MakeTrainer):
    # The first waits for an event only the second sets: run one after the other, it times out.
    event_holder: dict[str, asyncio.Event] = {}

    class Waiter(AsyncCallback):
        async def on_step_end(self, trainer: TrainerView) -> dict[str, float]:
            event_holder.setdefault("e", asyncio.Event())
            await asyncio.wait_for(event_holder["e"].wait(), timeout=5)
            return {"waited": 1.0}

    class Setter(AsyncCallback):
        async def on_step_end(self, trainer: TrainerView) -> dict[str, float]:
            event_holder.setdefault("e", asyncio.Event()).set()
            return {"set": 1.0}

    manager = make_manager()
    manager.add_async_callback(Waiter())
    manager.add_async_callback(Setter())
    assert manager.execute_step_callbacks_async(make_trainer(manager)) == {
        "waited": 1.0,
        "set": 1.0,
    }


def test_dispatch_works_inside_a_running_event_loop(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    # The original skipped async callbacks whenever an event loop was already running.
    manager = make_manager()
    reporter = Reporter({"r": 1.0}, "r")
    manager.add_async_callback(reporter)
    trainer = make_trainer(manager)

    async def main() -> list[dict[str, float]]:
        assert asyncio.get_running_loop().is_running()
        return [manager.execute_step_callbacks_async(trainer) for _ in range(3)]

    assert asyncio.run(main()) == [{"r": 1.0}] * 3
    assert reporter.calls == 3


def test_a_bad_return_value_counts_as_a_failure(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    class Bad(AsyncCallback):
        async def on_step_end(self, trainer: TrainerView):  # type: ignore[override]
            return [1, 2]

    manager = make_manager()
    bad = Bad()
    manager.add_async_callback(bad)
    trainer = make_trainer(manager)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        assert manager.execute_step_callbacks_async(trainer) == {}
    assert manager.health(bad).errors == 1
    assert "expected a dict of metrics" in caplog.text


def test_critical_async_failure_is_reraised(make_manager: MakeManager, make_trainer: MakeTrainer):
    class Crash(AsyncCallback):
        async def on_step_end(self, trainer: TrainerView) -> None:
            raise RuntimeError("async crash")

    manager = make_manager()
    manager.add_async_callback(Crash(critical=True))
    with pytest.raises(RuntimeError, match="async crash"):
        make_trainer(manager).run(epochs=2)


# ------------------------------------------------------------------ background evaluation


def _async_eval_manager(make_manager: MakeManager, *extra: str) -> CallbackManager:
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true", "evaluation.async_mode=true", *extra
    )
    manager.setup_default_callbacks()
    manager.setup_async_callbacks()
    return manager


def _wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_background_evaluation_runs_in_another_process_and_reports_later(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = _async_eval_manager(make_manager)
    callback = manager.get_async_callbacks()[0]
    assert isinstance(callback, AsyncEvaluationCallback)
    trainer = make_trainer(manager, ProcessEvaluator(games=6))
    manager.on_train_start(trainer)
    trainer.train_epoch()  # step 100
    assert manager.execute_step_callbacks_async(trainer) == {}
    trainer.train_epoch()  # step 200: evaluation starts, the call returns at once
    assert manager.execute_step_callbacks_async(trainer) == {}
    assert callback.running_steps == [200]
    _wait_until(lambda: callback.pending[0][1].done())
    trainer.train_epoch()  # step 300: the result arrives, stamped with step 200's weights
    metrics = manager.execute_step_callbacks_async(trainer)
    assert metrics["evaluation/step"] == 200.0
    assert metrics["evaluation/total_games"] == 6.0
    assert callback.last_result is not None
    assert callback.last_result.worker_pid not in (None, os.getpid())
    assert callback.elo_snapshot is not None


def test_skip_policy_drops_triggers_while_an_evaluation_runs(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    manager = _async_eval_manager(make_manager, "evaluation.evaluation_interval_timesteps=100")
    callback = manager.get_async_callbacks()[0]
    evaluator = ProcessEvaluator(delay_s=30.0)
    trainer = make_trainer(manager, evaluator)
    manager.on_train_start(trainer)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        for _ in range(3):
            trainer.train_epoch()
            metrics = manager.execute_step_callbacks_async(trainer)
    assert callback.running_steps == [100]
    assert callback.skipped == 2
    assert metrics == {"evaluation/skipped": 2.0}
    assert "evaluation due at step 300 skipped (policy skip)" in caplog.text


def test_queue_policy_keeps_a_bounded_queue(make_manager: MakeManager, make_trainer: MakeTrainer):
    manager = _async_eval_manager(
        make_manager,
        "evaluation.evaluation_interval_timesteps=100",
        "evaluation.async_policy=queue",
        "evaluation.async_queue_size=2",
    )
    callback = manager.get_async_callbacks()[0]
    trainer = make_trainer(manager, ProcessEvaluator(delay_s=30.0))
    manager.on_train_start(trainer)
    for _ in range(5):
        trainer.train_epoch()
        manager.execute_step_callbacks_async(trainer)
    assert callback.running_steps == [100, 200, 300]
    assert callback.skipped == 2


def test_shutdown_waits_for_running_work_within_the_limit(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = _async_eval_manager(make_manager)
    trainer = make_trainer(manager, ProcessEvaluator(delay_s=0.5))
    trainer.run(epochs=2)  # the evaluation of step 200 starts in the last epoch
    finals = [r for r in trainer.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in finals] == [(200, 200.0)]


def test_shutdown_cancels_work_past_the_limit_and_says_so(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    manager = _async_eval_manager(make_manager, "evaluation.async_shutdown_timeout_s=0.2")
    callback = manager.get_async_callbacks()[0]
    trainer = make_trainer(manager, ProcessEvaluator(delay_s=30.0))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="keisei"):
        trainer.run(epochs=2)
    assert time.monotonic() - started < 25  # did not wait for the 30 s evaluation
    assert callback.pending == []
    assert "cancelled the evaluation of step 200: still running after 0.2 s" in caplog.text


def test_an_evaluation_running_at_checkpoint_time_is_rerun_after_resume(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = _async_eval_manager(make_manager, "training.checkpoint_interval_timesteps=200")
    trainer = make_trainer(manager, ProcessEvaluator(delay_s=30.0))
    manager.on_train_start(trainer)
    for _ in range(2):
        trainer.train_epoch()
        manager.execute_step_callbacks_async(trainer)
        manager.execute_step_callbacks(trainer)
    _, manifest = trainer.checkpoint_saver.load(trainer.run_dir / "checkpoints" / "step_000000200")
    assert manifest["callbacks"]["async_callbacks"]["AsyncEvaluationCallback"]["state"][
        "running_steps"
    ] == [200]
    manager.close()

    resumed_manager = _async_eval_manager(
        make_manager, "training.checkpoint_interval_timesteps=200"
    )
    resumed_manager.load_state_dict(manifest["callbacks"])
    resumed = make_trainer(resumed_manager, ProcessEvaluator())
    resumed.global_timestep = 200
    resumed_manager.on_train_start(resumed)
    callback = resumed_manager.get_async_callbacks()[0]
    assert callback.running_steps == [200]
    _wait_until(lambda: callback.pending[0][1].done())
    resumed.train_epoch()
    metrics = resumed_manager.execute_step_callbacks_async(resumed)
    assert metrics["evaluation/step"] == 200.0
    assert callback.running_steps == []  # step 300 is not an evaluation step
