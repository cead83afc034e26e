"""Async dispatch and background evaluation of committed checkpoints.

Async dispatch is a coroutine awaited in the caller's event loop; the trainer reaches it through a
`BackgroundEventLoop`. Background evaluation rates the checkpoint written at the step it was due,
in a spawned worker process (`tests.support.view.ProcessEvaluator`), and reports on a later
dispatch, stamped with that step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from keisei.checkpoint import read_evaluation
from keisei.training.callback_manager import CallbackManager
from keisei.training.callback_system.event_loop import BackgroundEventLoop
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    CriticalCallbackError,
    Metrics,
    TrainerView,
)
from tests.support.view import ProcessEvaluator, View

MakeManager = Callable[..., CallbackManager]
MakeView = Callable[..., View]
MakeEvaluator = Callable[..., ProcessEvaluator]

WAIT_S = 120.0
"""Upper bound for waiting on a worker process (a guard against hanging, not a measurement)."""


class Reporter(AsyncCallback):
    def __init__(self, metrics: Metrics | None, name: str) -> None:
        super().__init__(name=name, state_key=name)
        self.metrics = metrics
        self.calls = 0

    async def on_step_end_async(self, trainer: TrainerView) -> Metrics | None:
        self.calls += 1
        await asyncio.sleep(0)
        return self.metrics


def end_epoch(manager: CallbackManager, view: View, step: int) -> Metrics:
    """What the trainer does at the end of the epoch that reached `step`; returns the async
    dispatch's metrics."""
    view.global_timestep = step
    metrics = asyncio.run(manager.execute_step_callbacks_async(view))
    manager.execute_step_callbacks(view)
    return metrics


def wait_for(futures: list[concurrent.futures.Future[Any]]) -> None:
    done, not_done = concurrent.futures.wait(futures, timeout=WAIT_S)
    assert not not_done, "the worker did not finish"


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# ------------------------------------------------------------------------- async dispatch


def test_async_dispatch_is_awaited_in_the_callers_loop_and_returns_a_dict(
    make_manager: MakeManager, make_view: MakeView
):
    loops: list[asyncio.AbstractEventLoop] = []

    class OriginalStyle(AsyncCallback):
        """Written against the original API: only this coroutine, no annotations, no return."""

        async def on_step_end_async(self, trainer):
            loops.append(asyncio.get_running_loop())

    manager = make_manager()
    view = make_view(manager)
    original = OriginalStyle()

    async def main() -> list[Metrics]:
        results = [await manager.execute_step_callbacks_async(view)]  # nothing registered
        manager.add_async_callback(original)
        view.global_timestep = 100
        results.append(await manager.execute_step_callbacks_async(view))
        manager.add_async_callback(Reporter({"r/x": 1.5}, "reporter"))
        view.global_timestep = 200
        results.append(await manager.execute_step_callbacks_async(view))
        assert loops == [asyncio.get_running_loop()] * 2  # ran in this very loop
        return results

    assert asyncio.run(main()) == [{}, {}, {"r/x": 1.5}]
    assert [(r["step"], r["r/x"]) for r in view.metric_records()] == [(200, 1.5)]


def test_the_trainers_bridge_works_from_plain_code_and_inside_a_running_loop(
    make_manager: MakeManager, make_view: MakeView
):
    manager = make_manager()
    reporter = Reporter({"r": 1.0}, "r")
    manager.add_async_callback(reporter)
    view = make_view(manager)
    bridge = BackgroundEventLoop()
    try:
        view.global_timestep = 100
        assert bridge.run(manager.execute_step_callbacks_async(view), timeout=WAIT_S) == {"r": 1.0}

        async def notebook_cell() -> list[Metrics]:  # a caller that already runs a loop
            outcomes = []
            for step in (200, 300):
                view.global_timestep = step
                outcomes.append(
                    bridge.run(manager.execute_step_callbacks_async(view), timeout=WAIT_S)
                )
            return outcomes

        assert asyncio.run(notebook_cell()) == [{"r": 1.0}] * 2
    finally:
        bridge.close()
    assert reporter.calls == 3


def test_metrics_merge_in_registration_order_and_collisions_are_reported(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    manager.add_async_callback(Reporter({"a/x": 1.0, "shared": 1.0}, "first"))
    manager.add_async_callback(Reporter({"b/y": 2.0, "shared": 2.0}, "second"))
    view = make_view(manager)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        merged = end_epoch(manager, view, 100)
    assert list(merged) == ["a/x", "shared", "b/y"]
    assert merged["shared"] == 1.0
    collisions = [r.getMessage() for r in caplog.records if "'shared'" in r.getMessage()]
    assert len(collisions) == 1 and "by both first and second" in collisions[0]


def test_async_callbacks_due_together_run_concurrently(
    make_manager: MakeManager, make_view: MakeView
):
    # The first waits for an event only the second sets: run one after the other, it times out.
    events: dict[str, asyncio.Event] = {}

    class Waiter(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView) -> Metrics:
            event = events.setdefault("e", asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout=WAIT_S)
            return {"waited": 1.0}

    class Setter(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView) -> Metrics:
            events.setdefault("e", asyncio.Event()).set()
            return {"set": 1.0}

    manager = make_manager()
    manager.add_async_callback(Waiter())
    manager.add_async_callback(Setter())
    assert end_epoch(manager, make_view(manager), 100) == {"waited": 1.0, "set": 1.0}


def test_poll_async_runs_every_epoch_before_the_step_hook_when_due(
    make_manager: MakeManager, make_view: MakeView
):
    calls: list[tuple[str, int]] = []

    class Watcher(AsyncCallback):
        polls = True

        async def poll_async(self, trainer: TrainerView) -> None:
            calls.append(("poll", trainer.global_timestep))

        async def on_step_end_async(self, trainer: TrainerView) -> None:
            calls.append(("step", trainer.global_timestep))

    manager = make_manager()
    manager.add_async_callback(Watcher(), every=200)
    view = make_view(manager)
    manager.on_train_start(view)
    for step in (100, 200, 300, 400):
        end_epoch(manager, view, step)
    assert calls == [
        ("poll", 100),
        ("poll", 200),
        ("step", 200),
        ("poll", 300),
        ("poll", 400),
        ("step", 400),
    ]


def test_a_bad_return_value_counts_as_a_failure(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    class Bad(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView):  # type: ignore[override]
            return [1, 2]

    manager = make_manager()
    bad = Bad()
    manager.add_async_callback(bad)
    view = make_view(manager)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        assert end_epoch(manager, view, 100) == {}
    assert manager.health(bad).errors == 1
    assert "Bad.on_step_end_async returned list, expected a dict of metrics" in caplog.text
    assert [r["callbacks/errors/Bad"] for r in view.metric_records()] == [1.0]


def test_a_best_effort_async_failure_does_not_stop_the_others(
    make_manager: MakeManager, make_view: MakeView
):
    class Crash(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView) -> None:
            raise RuntimeError("async crash")

    manager = make_manager()
    crash = Crash()
    manager.add_async_callback(crash)
    manager.add_async_callback(Reporter({"ok": 1.0}, "ok"))
    view = make_view(manager)
    assert end_epoch(manager, view, 100) == {"ok": 1.0}
    assert manager.health(crash).errors == 1


def test_critical_async_failure_raises_critical_callback_error_from_the_original(
    make_manager: MakeManager, make_view: MakeView
):
    closed: list[str] = []

    class Crash(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView) -> None:
            raise RuntimeError("async crash")

        def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
            closed.append("on_exception")

        def close(self) -> None:
            closed.append("close")

    manager = make_manager()
    manager.add_async_callback(Crash(critical=True))
    view = make_view(manager)
    with pytest.raises(CriticalCallbackError, match="critical callback Crash failed") as raised:
        end_epoch(manager, view, 100)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert str(raised.value.__cause__) == "async crash"
    assert closed == []  # teardown is the trainer's


# ------------------------------------------------------------------ background evaluation


def async_evaluation(make_manager: MakeManager, *extra: str) -> CallbackManager:
    """A manager with the default callbacks in background-evaluation mode."""
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true", "evaluation.async_mode=true", *extra
    )
    manager.setup_default_callbacks()
    manager.setup_async_callbacks()
    return manager


def the_callback(manager: CallbackManager) -> AsyncEvaluationCallback:
    (callback,) = manager.get_async_callbacks()
    assert isinstance(callback, AsyncEvaluationCallback)
    return callback


def test_background_evaluation_rates_the_checkpoint_of_its_step_in_another_process_later(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = async_evaluation(make_manager)  # evaluation every 200, checkpoints every 300
    callback = the_callback(manager)
    evaluator = make_evaluator(games=6)
    view = make_view(manager, evaluator)
    manager.on_train_start(view)
    assert end_epoch(manager, view, 100) == {}
    assert end_epoch(manager, view, 200) == {}  # due: waits for the checkpoint of step 200
    assert callback.waiting_steps == [200] and view.saved_steps() == [200]
    assert end_epoch(manager, view, 300) == {}  # committed: starts, the call returns at once
    assert callback.running_steps == [200]
    assert [(kind, step, path) for kind, step, path in evaluator.calls] == [
        ("async", 200, view.checkpoint_path(200))
    ]
    wait_for([future for _, future in callback.pending])
    metrics = end_epoch(manager, view, 400)  # the result arrives: a row at step 200
    assert metrics["evaluation/step"] == 200.0
    assert metrics["evaluation/total_games"] == 6.0
    recorded = [r for r in view.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in recorded] == [(200, 200.0)]
    stored = read_evaluation(view.checkpoint_path(200))
    assert stored is not None and stored["evaluation/win_rate"] == metrics["evaluation/win_rate"]
    assert callback.last_result is not None
    assert callback.last_result.worker_pid not in (None, os.getpid())
    assert callback.elo_snapshot is not None


def test_evaluations_finishing_together_are_each_recorded_at_their_own_step(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    """Two evaluations still to finish when training ends: two metrics rows, each at the step it
    rated with its own values (the newest one's values used to stand for both). A poll that
    collects several results does the same (`..._run_again_after_a_restore`)."""
    manager = async_evaluation(
        make_manager,
        "evaluation.evaluation_interval_timesteps=100",
        "training.checkpoint_interval_timesteps=100",
        "evaluation.async_policy=queue",
    )
    callback = the_callback(manager)
    view = make_view(manager, make_evaluator(games=2))
    manager.on_train_start(view)
    for step in (100, 200):
        end_epoch(manager, view, step)
    assert callback.running_steps + callback.waiting_steps == [100, 200]
    final = asyncio.run(manager.on_train_end_async(view))  # waits for both
    assert final["evaluation/step"] == 200.0
    rows = [r for r in view.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in rows] == [(100, 100.0), (200, 200.0)]
    for row in rows:
        stored = read_evaluation(view.checkpoint_path(row["step"]))
        assert stored is not None
        assert {key: row[key] for key in stored} == stored


def test_skip_policy_drops_triggers_while_an_evaluation_waits_or_runs(
    make_manager: MakeManager,
    make_view: MakeView,
    make_evaluator: MakeEvaluator,
    caplog: pytest.LogCaptureFixture,
):
    manager = async_evaluation(make_manager, "evaluation.evaluation_interval_timesteps=100")
    callback = the_callback(manager)
    view = make_view(manager, make_evaluator(delay_s=600.0))
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        metrics = [end_epoch(manager, view, step) for step in (100, 200, 300)]
    assert callback.running_steps == [100]
    assert callback.skipped == 2
    assert metrics == [{}, {"evaluation/skipped": 1.0}, {"evaluation/skipped": 2.0}]
    assert "evaluation due at step 300 skipped (policy skip)" in caplog.text
    assert callback.state_dict()["waiting"] == [100]
    # A skipped trigger asks for no checkpoint: 100 for the evaluation, 300 on schedule.
    assert view.saved_steps() == [100, 300]


def test_queue_policy_keeps_a_bounded_queue(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = async_evaluation(
        make_manager,
        "evaluation.evaluation_interval_timesteps=100",
        "evaluation.async_policy=queue",
        "evaluation.async_queue_size=2",
    )
    callback = the_callback(manager)
    view = make_view(manager, make_evaluator(delay_s=600.0))
    manager.on_train_start(view)
    for step in (100, 200, 300, 400, 500):
        end_epoch(manager, view, step)
    assert callback.running_steps == [100, 200, 300]  # one running, two queued behind it
    assert callback.skipped == 2  # 400 and 500
    assert callback.state_dict()["waiting"] == [100, 200, 300]


def test_shutdown_waits_for_running_work_within_the_limit(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = async_evaluation(make_manager)
    view = make_view(manager, make_evaluator(delay_s=0.5))
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    end_epoch(manager, view, 200)  # due at the last step: it starts at the end of training
    final = asyncio.run(manager.on_train_end_async(view))
    manager.on_train_end(view)
    assert final["evaluation/step"] == 200.0
    finals = [r for r in view.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in finals] == [(200, 200.0)]
    assert read_evaluation(view.checkpoint_path(200)) is not None


def test_shutdown_cancels_work_past_the_limit_and_says_so(
    make_manager: MakeManager,
    make_view: MakeView,
    make_evaluator: MakeEvaluator,
    caplog: pytest.LogCaptureFixture,
):
    manager = async_evaluation(make_manager, "evaluation.async_shutdown_timeout_s=0.5")
    callback = the_callback(manager)
    evaluator = make_evaluator(delay_s=600.0)
    view = make_view(manager, evaluator)
    manager.on_train_start(view)
    for step in (100, 200, 300):
        end_epoch(manager, view, step)
    (future,) = [future for _, future in callback.pending]
    wait_until(lambda: bool(evaluator.live_workers()))  # the worker is up and has the job
    with caplog.at_level(logging.INFO, logger="keisei"):
        assert asyncio.run(manager.on_train_end_async(view)) == {}
    assert future.cancelled()
    assert evaluator.stopped == [200]  # its worker process was stopped, not left running
    assert callback.pending == []
    assert "cancelled the evaluation of step 200: still running after 0.5 s" in caplog.text
    assert "waiting up to 0.5 s" in caplog.text
    assert read_evaluation(view.checkpoint_path(200)) is None
    # Not forgotten: the final checkpoint's state keeps it, so extending the run rates it.
    assert callback.state_dict()["waiting"] == [200]
    assert "the evaluation of step 200 did not finish; it runs if this run is resumed" in (
        caplog.text
    )


def test_retention_keeps_a_checkpoint_until_its_evaluation_has_loaded_it(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    """keep_last 1, a checkpoint every epoch, an evaluation slower than an epoch: the checkpoint
    it rates outlives the commits after it (even with keep_rated off), the others go."""
    every_epoch = ("evaluation.evaluation_interval_timesteps=100",
                   "training.checkpoint_interval_timesteps=100")  # fmt: skip
    manager = async_evaluation(make_manager, *every_epoch)
    callback = the_callback(manager)
    view = make_view(manager, make_evaluator(delay_s=600.0), keep_last=1, keep_rated=False)
    view.store.pin(manager.checkpoints_in_use)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)  # due: waits for the checkpoint of 100
    assert manager.checkpoints_in_use() == {100}
    for step in (200, 300, 400):  # 100 runs; the triggers meanwhile are skipped
        end_epoch(manager, view, step)
    assert callback.running_steps == [100]
    assert manager.checkpoints_in_use() == {100}
    assert view.saved_steps() == [100, 400]
    callback.close()  # given up: no longer in use
    assert manager.checkpoints_in_use() == set()


@pytest.mark.parametrize("keep_rated", [True, False])
def test_a_rated_checkpoint_is_kept_only_with_keep_rated(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator, keep_rated: bool
):
    every_epoch = ("evaluation.evaluation_interval_timesteps=100",
                   "training.checkpoint_interval_timesteps=100")  # fmt: skip
    manager = async_evaluation(make_manager, *every_epoch)
    callback = the_callback(manager)
    view = make_view(manager, make_evaluator(), keep_last=1, keep_rated=keep_rated)
    view.store.pin(manager.checkpoints_in_use)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    end_epoch(manager, view, 200)  # 100 starts, 200 is skipped
    wait_for([future for _, future in callback.pending])
    assert manager.checkpoints_in_use() == {100}  # finished, but not yet collected
    metrics = end_epoch(manager, view, 300)  # collected: over; then 300 is written
    assert metrics["evaluation/step"] == 100.0
    assert manager.checkpoints_in_use() == {300}  # it waits: keep_last 1 keeps 200 beside
    end_epoch(manager, view, 400)  # 300 starts, 400 is skipped
    assert callback.running_steps == [300]
    assert view.saved_steps() == ([100, 300, 400] if keep_rated else [300, 400])


def test_waiting_and_running_evaluations_run_again_after_a_restore(
    make_manager: MakeManager,
    make_view: MakeView,
    make_evaluator: MakeEvaluator,
    caplog: pytest.LogCaptureFixture,
):
    overrides = (
        "training.checkpoint_interval_timesteps=400",
        "evaluation.async_policy=queue",
        "evaluation.async_queue_size=2",
    )
    manager = async_evaluation(make_manager, *overrides)
    callback = the_callback(manager)
    first = make_view(manager, make_evaluator(delay_s=600.0))
    manager.on_train_start(first)
    for step in (100, 200, 300, 400):
        end_epoch(manager, first, step)
    # The checkpoint of step 400 was written while 200 was running and 400 waiting.
    assert (callback.running_steps, callback.waiting_steps) == ([200], [400])
    saved = first.load(400).callback_state
    assert saved["callbacks"]["AsyncEvaluationCallback"]["state"]["waiting"] == [200, 400]
    # Training fails: the trainer's teardown cancels the running evaluation.
    manager.on_exception(first, RuntimeError("crash"))
    manager.close()
    first.close()
    assert read_evaluation(first.checkpoint_path(200)) is None

    resumed = async_evaluation(make_manager, *overrides)
    resumed.load_state_dict(saved)
    evaluator = make_evaluator()
    second = make_view(resumed, evaluator, run_dir=first.run_dir, step=400)
    callback = the_callback(resumed)
    with caplog.at_level(logging.INFO, logger="keisei"):
        resumed.on_train_start(second)
    assert "evaluations of steps [200, 400] had not finished" in caplog.text
    end_epoch(resumed, second, 500)  # both checkpoints are committed: both start
    assert [(step, path) for _, step, path in evaluator.calls] == [
        (200, first.checkpoint_path(200)),
        (400, first.checkpoint_path(400)),
    ]
    wait_for([future for _, future in callback.pending])
    end_epoch(resumed, second, 600)  # both results arrive, each a row at its own step
    rows = [r for r in second.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in rows] == [(200, 200.0), (400, 400.0)]
    for step in (200, 400):
        stored = read_evaluation(second.checkpoint_path(step))
        assert stored is not None and stored["evaluation/step"] == float(step)


def test_a_checkpoint_already_evaluated_is_not_evaluated_again_after_a_restore(
    make_manager: MakeManager,
    make_view: MakeView,
    make_evaluator: MakeEvaluator,
    caplog: pytest.LogCaptureFixture,
):
    manager = async_evaluation(make_manager)
    first = make_view(manager)
    manager.on_train_start(first)
    end_epoch(manager, first, 100)
    end_epoch(manager, first, 200)  # checkpoint 200 is written with 200 waiting in its state
    saved = first.load(200).callback_state
    manager.close()
    first.close()
    # The evaluation finished after the checkpoint was written (its result is on disk).
    make_evaluator().evaluate_checkpoint(first.checkpoint_path(200), 200)

    resumed = async_evaluation(make_manager)
    resumed.load_state_dict(saved)
    evaluator = make_evaluator()
    second = make_view(resumed, evaluator, run_dir=first.run_dir, step=200)
    resumed.on_train_start(second)
    with caplog.at_level(logging.INFO, logger="keisei"):
        assert end_epoch(resumed, second, 300) == {}
    assert evaluator.calls == []
    assert "step_000000200 is already evaluated" in caplog.text
    assert the_callback(resumed).state_dict()["waiting"] == []
