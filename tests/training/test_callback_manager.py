"""CallbackManager: the public API, registration checks, scheduling, metrics, failure policy,
lifecycle and state, driven step by step on a real `View` (real checkpoints, real metrics.jsonl).

Each test sets `view.global_timestep` and calls the manager's dispatch methods itself, in the
order the `Trainer` does (async dispatch, then sync dispatch, at each epoch end).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from keisei.checkpoint import read_evaluation
from keisei.config import ConfigError
from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    Callback,
    CheckpointCallback,
    CriticalCallbackError,
    EvaluationCallback,
    Metrics,
    TrainerView,
)
from keisei.training.schedule import EveryNSteps
from tests.support.view import ProcessEvaluator, View

MakeManager = Callable[..., CallbackManager]
MakeView = Callable[..., View]
MakeEvaluator = Callable[..., ProcessEvaluator]

Journal = list[tuple[str, str, Any]]


class Recorder(Callback):
    """Records every hook call into a shared journal; its state is the steps it ran at."""

    def __init__(self, journal: Journal, name: str = "Recorder", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.journal = journal

    def on_train_start(self, trainer: TrainerView) -> None:
        self.journal.append((self.name, "start", trainer.global_timestep))

    def on_step_end(self, trainer: TrainerView) -> None:
        self.journal.append((self.name, "step", trainer.global_timestep))

    def on_train_end(self, trainer: TrainerView) -> None:
        self.journal.append((self.name, "end", trainer.global_timestep))

    def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
        self.journal.append((self.name, "exception", type(exc).__name__))

    def close(self) -> None:
        self.journal.append((self.name, "close", None))

    def state_dict(self) -> dict[str, Any]:
        steps = [s for n, hook, s in self.journal if n == self.name and hook == "step"]
        return {"steps_seen": steps}


class SubRecorder(Recorder):
    pass


class Failing(Callback):
    def __init__(self, fail_on: set[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_on = fail_on
        self.calls = 0

    def on_step_end(self, trainer: TrainerView) -> None:
        self.calls += 1
        if self.fail_on is None or trainer.global_timestep in self.fail_on:
            raise ValueError(f"broken at {trainer.global_timestep}")


class Seen(Callback):
    """Remembers the steps its step hook ran at; that list is its state."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps: list[int] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        self.steps.append(trainer.global_timestep)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps)}

    def load_state_dict(self, state: Any) -> None:
        self.steps = list(state["steps"])


class AsyncSeen(AsyncCallback):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps: list[int] = []

    async def on_step_end_async(self, trainer: TrainerView) -> None:
        self.steps.append(trainer.global_timestep)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps)}

    def load_state_dict(self, state: Any) -> None:
        self.steps = list(state["steps"])


def end_epoch(manager: CallbackManager, view: View, step: int) -> None:
    """What the trainer does at the end of the epoch that reached `step`."""
    view.global_timestep = step
    asyncio.run(manager.execute_step_callbacks_async(view))
    manager.execute_step_callbacks(view)


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and text in r.getMessage()
    ]


# ------------------------------------------------------------------------ registration


def test_setup_default_callbacks_keeps_user_callbacks_in_order(make_manager: MakeManager):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    journal: Journal = []
    first = Recorder(journal, "first", state_key="first")
    second = Recorder(journal, "second", state_key="second")
    manager.add_callback(first)
    defaults = manager.setup_default_callbacks()
    manager.add_callback(second)
    again = manager.setup_default_callbacks()  # replaces only the earlier defaults
    assert [type(cb) for cb in defaults] == [Recorder, EvaluationCallback, CheckpointCallback]
    callbacks = manager.get_callbacks()
    assert callbacks[:2] == [first, second]
    assert [type(cb) for cb in callbacks[2:]] == [EvaluationCallback, CheckpointCallback]
    assert again == callbacks
    assert not set(map(id, defaults[1:])) & set(map(id, callbacks))


def test_getters_return_copies(make_manager: MakeManager):
    manager = make_manager()
    manager.setup_default_callbacks()
    manager.get_callbacks().clear()
    manager.get_async_callbacks().append(AsyncCallback())
    assert [type(cb) for cb in manager.get_callbacks()] == [CheckpointCallback]
    assert manager.get_async_callbacks() == []


def test_remove_callback_removes_every_instance_including_subclasses(make_manager: MakeManager):
    manager = make_manager()
    journal: Journal = []
    manager.add_callback(Recorder(journal, "a"))
    manager.add_callback(SubRecorder(journal, "b"))
    manager.add_callback(Failing())
    assert manager.remove_callback(Recorder) is True
    assert [type(cb) for cb in manager.get_callbacks()] == [Failing]
    assert manager.remove_callback(Recorder) is False
    manager.add_async_callback(AsyncEvaluationCallback(100))
    assert manager.remove_async_callback(AsyncCallback) is True
    assert manager.remove_async_callback(AsyncCallback) is False
    assert not manager.has_async_callbacks()


def test_a_removed_callback_is_no_longer_dispatched_nor_saved(
    make_manager: MakeManager, make_view: MakeView
):
    manager = make_manager()
    journal: Journal = []
    manager.add_callback(Recorder(journal))
    view = make_view(manager)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    manager.remove_callback(Recorder)
    end_epoch(manager, view, 200)
    assert [step for _, hook, step in journal if hook == "step"] == [100]
    assert manager.state_dict() == {"callbacks": {}}


def test_clear_and_has_async(make_manager: MakeManager):
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true", "evaluation.async_mode=true"
    )
    manager.setup_default_callbacks()
    manager.setup_async_callbacks()
    assert manager.has_async_callbacks()
    assert [type(cb) for cb in manager.get_async_callbacks()] == [AsyncEvaluationCallback]
    manager.clear_async_callbacks()
    assert not manager.has_async_callbacks()
    manager.clear_callbacks()
    assert manager.get_callbacks() == []


def test_wrong_kind_or_duplicate_registration_is_refused(make_manager: MakeManager):
    manager = make_manager()
    with pytest.raises(TypeError, match="add_async_callback"):
        manager.add_callback(AsyncEvaluationCallback(100))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="add_callback"):
        manager.add_async_callback(Recorder([]))  # type: ignore[arg-type]
    cb = Recorder([])
    manager.add_callback(cb)
    with pytest.raises(ValueError, match="already registered"):
        manager.add_callback(cb)
    assert manager.get_callbacks() == [cb]


class MisspelledHook(Callback):
    def on_step_edn(self, trainer: TrainerView) -> None:
        pass


class SyncHookOnAsync(AsyncCallback):
    def on_step_end(self, trainer: TrainerView) -> None:
        pass


class CoroutineOnSync(Callback):
    async def on_step_end(self, trainer: TrainerView) -> None:  # type: ignore[override]
        pass


class PlainDefOnAsync(AsyncCallback):
    def on_step_end_async(self, trainer: TrainerView) -> None:  # type: ignore[override]
        pass


class PollsWithoutSaying(AsyncCallback):
    async def poll_async(self, trainer: TrainerView) -> None:
        pass


class SyncPollsWithoutSaying(Callback):
    def poll(self, trainer: TrainerView) -> None:
        pass


@pytest.mark.parametrize(
    ("callback", "hook", "register"),
    [
        (MisspelledHook(), "on_step_edn", "add_callback"),
        (SyncHookOnAsync(), "on_step_end", "add_async_callback"),
        (CoroutineOnSync(), "on_step_end", "add_callback"),
        (PlainDefOnAsync(), "on_step_end_async", "add_async_callback"),
        (PollsWithoutSaying(), "poll_async", "add_async_callback"),
        (SyncPollsWithoutSaying(), "poll", "add_callback"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)
def test_hooks_the_manager_would_not_call_as_written_are_refused_at_registration(
    make_manager: MakeManager, callback: Callback | AsyncCallback, hook: str, register: str
):
    manager = make_manager()
    with pytest.raises(TypeError, match=rf"{type(callback).__name__}\b.*\b{hook}\b"):
        getattr(manager, register)(callback)
    assert manager.get_callbacks() == [] and manager.get_async_callbacks() == []
    assert manager.state_dict() == {"callbacks": {}}


def test_refusals_say_what_to_do(make_manager: MakeManager):
    manager = make_manager()
    with pytest.raises(TypeError, match="on_step_end_async"):
        manager.add_async_callback(SyncHookOnAsync())
    with pytest.raises(TypeError, match="polls = True"):
        manager.add_async_callback(PollsWithoutSaying())

    class Polls(AsyncCallback):
        polls = True

        async def poll_async(self, trainer: TrainerView) -> None:
            pass

    manager.add_async_callback(Polls())  # saying so is enough
    assert len(manager.get_async_callbacks()) == 1


def test_use_async_evaluation_replaces_sync_evaluation_once(make_manager: MakeManager):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    manager.use_async_evaluation()
    manager.use_async_evaluation()
    assert [type(cb) for cb in manager.get_callbacks()] == [CheckpointCallback]
    asyncs = manager.get_async_callbacks()
    assert [type(cb) for cb in asyncs] == [AsyncEvaluationCallback]
    assert asyncs[0].schedule is not None and asyncs[0].schedule.interval == 200


def test_default_intervals_are_aligned_once_by_one_helper_for_every_path(
    make_manager: MakeManager, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.INFO, logger="keisei"):
        manager = make_manager(
            "evaluation.enable_periodic_evaluation=true",
            "evaluation.evaluation_interval_timesteps=250",
            "training.checkpoint_interval_timesteps=301",
        )
        sync_eval = manager.setup_default_callbacks()[0]
        manager.use_async_evaluation()
        async_eval = manager.get_async_callbacks()[0]
        manager.clear_async_callbacks()
        manager.setup_async_callbacks()  # not async mode: creates nothing, logs nothing
    checkpoint = manager.get_callbacks()[0]
    assert isinstance(sync_eval, EvaluationCallback)
    assert sync_eval.schedule is not None and async_eval.schedule is not None
    assert sync_eval.schedule.interval == async_eval.schedule.interval == 300
    assert checkpoint.schedule is not None and checkpoint.schedule.interval == 400
    notes = [r for r in caplog.records if "not a multiple" in r.getMessage()]
    assert sorted(r.getMessage() for r in notes) == [
        "evaluation.evaluation_interval_timesteps = 250 is not a multiple of "
        "steps_per_epoch = 100; using 300",
        "training.checkpoint_interval_timesteps = 301 is not a multiple of "
        "steps_per_epoch = 100; using 400",
    ]
    assert all(r.levelno == logging.INFO for r in notes)


def test_zero_steps_per_epoch_is_a_configuration_error_not_a_division_by_zero(
    make_manager: MakeManager,
):
    with pytest.raises(ConfigError, match="training.steps_per_epoch"):
        make_manager("training.steps_per_epoch=0")


@pytest.mark.parametrize("every", [0, -100])
def test_a_non_positive_every_is_refused(make_manager: MakeManager, every: int):
    manager = make_manager()
    with pytest.raises(ValueError, match="positive"):
        manager.add_callback(Seen(), every=every)
    assert manager.get_callbacks() == []


# --------------------------------------------------------------------------- scheduling


class Tick(Callback):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fired: list[int] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        self.fired.append(trainer.global_timestep)


class OwnSchedule(Tick):
    def __init__(self) -> None:
        super().__init__()
        self.schedule = EveryNSteps(250)


class AsyncTick(AsyncCallback):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fired: list[int] = []

    async def on_step_end_async(self, trainer: TrainerView) -> None:
        self.fired.append(trainer.global_timestep)


def test_sync_and_async_schedules_are_aligned_by_the_same_rule_and_fire_at_the_same_steps(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    """One queue, one alignment rule, for sync and async callbacks alike. (A sync and an async
    callback at the same position with the same interval once crashed the queue, which compared
    their schedules to break the tie.)"""
    manager = make_manager()
    sync_tick, async_tick, own = Tick(), AsyncTick(), OwnSchedule()
    with caplog.at_level(logging.INFO, logger="keisei"):
        manager.add_callback(sync_tick, every=250)
        manager.add_async_callback(async_tick, every=250)
        manager.add_callback(own)  # its own `schedule`, not `every=`: aligned the same way
    notes = sorted(r.getMessage() for r in caplog.records if "not a multiple" in r.getMessage())
    assert notes == [
        f"{name} interval = 250 is not a multiple of steps_per_epoch = 100; using 300"
        for name in ("AsyncTick", "OwnSchedule", "Tick")
    ]
    for cb in (sync_tick, async_tick, own):
        assert cb.schedule is not None and cb.schedule.interval == 300
    view = make_view(manager)
    manager.on_train_start(view)
    for step in range(100, 1001, 100):
        end_epoch(manager, view, step)
    assert sync_tick.fired == async_tick.fired == own.fired == [300, 600, 900]


def test_a_jump_over_several_multiples_fires_once(make_manager: MakeManager, make_view: MakeView):
    manager = make_manager()
    # An unscheduled callback too: it runs every epoch beside the scheduled ones.
    manager.add_callback(Seen())
    tick, async_tick = Tick(), AsyncTick()
    manager.add_callback(tick, every=200)
    manager.add_async_callback(async_tick, every=200)
    view = make_view(manager)
    manager.on_train_start(view)
    for step in (100, 700, 800, 900, 1000):
        end_epoch(manager, view, step)
    assert tick.fired == async_tick.fired == [700, 800, 1000]


def test_callbacks_without_a_schedule_run_every_epoch_and_pollers_poll_first(
    make_manager: MakeManager, make_view: MakeView
):
    journal: Journal = []

    class Poller(Callback):
        polls = True

        def poll(self, trainer: TrainerView) -> None:
            journal.append(("Poller", "poll", trainer.global_timestep))

        def on_step_end(self, trainer: TrainerView) -> None:
            journal.append(("Poller", "step", trainer.global_timestep))

    manager = make_manager()
    manager.add_callback(Recorder(journal))  # no schedule: every epoch
    manager.add_callback(Poller(), every=200)
    view = make_view(manager)
    manager.on_train_start(view)
    for step in (100, 200, 300, 400):
        end_epoch(manager, view, step)
    assert journal[1:] == [
        ("Poller", "poll", 100),
        ("Recorder", "step", 100),
        ("Poller", "poll", 200),
        ("Recorder", "step", 200),
        ("Poller", "step", 200),
        ("Poller", "poll", 300),
        ("Recorder", "step", 300),
        ("Poller", "poll", 400),
        ("Recorder", "step", 400),
        ("Poller", "step", 400),
    ]


def test_periodic_callbacks_fire_at_each_aligned_multiple(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    evaluator = make_evaluator()
    view = make_view(manager, evaluator)
    manager.on_train_start(view)
    for step in range(100, 701, 100):
        end_epoch(manager, view, step)
    manager.on_train_end(view)
    # Evaluations due at 200, 400, 600 rate the checkpoints of those steps (one epoch later).
    assert [(kind, step, path.name) for kind, step, path in evaluator.calls] == [
        ("sync", step, f"step_{step:09d}") for step in (200, 400, 600)
    ]
    # Checkpoints every 300, at each evaluation step, and the final one at 700.
    assert view.saved_steps() == [200, 300, 400, 600, 700]


def test_a_due_evaluation_forces_a_real_checkpoint_at_its_step_and_rates_it_next_epoch(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true",
        "evaluation.evaluation_interval_timesteps=200",
        "training.checkpoint_interval_timesteps=300",
    )
    manager.setup_default_callbacks()
    evaluator = make_evaluator(games=6)
    view = make_view(manager, evaluator)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    assert view.saved_steps() == []

    end_epoch(manager, view, 200)  # the checkpoint callback is not due at 200 (every 300)
    checkpoint = view.checkpoint_path(200)
    assert view.saved_steps() == [200]
    assert view.load(200).step == 200  # a real, verified checkpoint
    assert evaluator.calls == []  # not evaluated yet: at the next epoch
    assert read_evaluation(checkpoint) is None

    end_epoch(manager, view, 300)
    assert evaluator.calls == [("sync", 200, checkpoint)]
    stored = read_evaluation(checkpoint)
    assert stored is not None and stored["evaluation/step"] == 200.0
    assert stored["evaluation/total_games"] == 6.0
    recorded = [r for r in view.metric_records() if "evaluation/step" in r]
    assert [(r["step"], r["evaluation/step"]) for r in recorded] == [(200, 200.0)]
    assert recorded[0]["evaluation/win_rate"] == stored["evaluation/win_rate"]
    assert view.saved_steps() == [200, 300]  # the checkpoint callback's own schedule is kept


def test_checkpoint_runs_after_other_callbacks_at_the_same_step(
    make_manager: MakeManager, make_view: MakeView
):
    manager = make_manager()
    journal: Journal = []
    manager.setup_default_callbacks()  # the checkpoint callback is registered first
    manager.add_callback(Recorder(journal))
    view = make_view(manager)
    manager.on_train_start(view)
    for step in (100, 200, 300):
        end_epoch(manager, view, step)
    saved = view.load(300).callback_state["callbacks"]
    # The recorder, registered after it, had already run at step 300 when the checkpoint was taken.
    assert saved["Recorder"]["state"]["steps_seen"] == [100, 200, 300]


# ------------------------------------------------------------------------------ metrics


class SyncReporter(Callback):
    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    def on_step_end(self, trainer: TrainerView) -> Metrics:
        return dict(self.metrics)

    def on_train_end(self, trainer: TrainerView) -> Metrics:
        return {"final/sync": 3.0}


class AsyncReporter(AsyncCallback):
    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = metrics

    async def on_step_end_async(self, trainer: TrainerView) -> Metrics:
        await asyncio.sleep(0)
        return dict(self.metrics)


def test_metrics_of_sync_and_async_hooks_are_recorded_and_a_collision_keeps_the_first(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    manager.add_async_callback(AsyncReporter({"async/x": 1.0, "shared": 1.0}, name="early"))
    manager.add_callback(SyncReporter({"sync/y": 2.0, "shared": 2.0}, name="late"))
    view = make_view(manager)
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        for step in (100, 200, 300):
            end_epoch(manager, view, step)
        manager.on_train_end(view)
    records = view.metric_records()
    for key, value in (("async/x", 1.0), ("sync/y", 2.0), ("shared", 1.0)):
        assert [(r["step"], r[key]) for r in records if key in r] == [
            (100, value),
            (200, value),
            (300, value),
        ], key
    assert [(r["step"], r["final/sync"]) for r in records if "final/sync" in r] == [(300, 3.0)]
    collisions = warnings_about(caplog, "'shared'")
    assert len(collisions) == 1  # once for this pair, not once per step
    assert "early" in collisions[0] and "late" in collisions[0]


def test_a_key_reported_twice_by_one_callback_keeps_the_first_value(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    class Twice(Callback):
        polls = True

        def poll(self, trainer: TrainerView) -> Metrics:
            return {"twice/k": 1.0}

        def on_step_end(self, trainer: TrainerView) -> Metrics:
            return {"twice/k": 2.0, "twice/other": 5.0}

    manager = make_manager()
    manager.add_callback(Twice())
    view = make_view(manager)
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        end_epoch(manager, view, 100)
    records = view.metric_records()
    assert [r["twice/k"] for r in records if "twice/k" in r] == [1.0]
    assert [r["twice/other"] for r in records if "twice/other" in r] == [5.0]
    assert warnings_about(caplog, "'twice/k'") == [
        "metric 'twice/k' reported twice by Twice at step 100; keeping Twice's first value "
        "(logged once)"
    ]


def test_a_non_numeric_metric_is_dropped_with_a_warning(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    manager.add_callback(SyncReporter({"ok": 1.0, "bad": "n/a"}))  # type: ignore[dict-item]
    view = make_view(manager)
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        end_epoch(manager, view, 100)
    assert [(r["step"], r["ok"]) for r in view.metric_records() if "ok" in r] == [(100, 1.0)]
    assert not any("bad" in r for r in view.metric_records())
    assert len(warnings_about(caplog, "'bad'")) == 1


def test_the_final_evaluation_is_recorded_even_when_a_poll_reported_at_the_same_step(
    make_manager: MakeManager,
    make_view: MakeView,
    make_evaluator: MakeEvaluator,
    caplog: pytest.LogCaptureFixture,
):
    """With an evaluation every epoch, the poll at the last step S reports the evaluation of
    S - epoch, and `on_train_end` at the same step S reports the evaluation of S: the end of
    training is a report round of its own, so the final evaluation reaches metrics.jsonl and no
    collision is logged."""
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true",
        "evaluation.evaluation_interval_timesteps=100",
    )
    manager.setup_default_callbacks()
    view = make_view(manager, make_evaluator())
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        for step in (100, 200, 300):
            end_epoch(manager, view, step)
        manager.on_train_end(view)
    assert read_evaluation(view.checkpoint_path(300)) is not None  # it was evaluated
    evaluated = [r["evaluation/step"] for r in view.metric_records() if "evaluation/step" in r]
    assert evaluated == [100.0, 200.0, 300.0]
    assert warnings_about(caplog, "reported twice") == []


# ----------------------------------------------------------------------------- failures


def test_failing_callback_is_logged_with_traceback_counted_and_training_continues(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    journal: Journal = []
    failing = Failing(fail_on={200})
    manager.add_callback(failing)
    manager.add_callback(Recorder(journal))
    view = make_view(manager)
    manager.on_train_start(view)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        for step in (100, 200, 300):
            end_epoch(manager, view, step)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == "callback Failing failed in on_step_end at step 200"
    assert errors[0].exc_info is not None and "broken at 200" in str(errors[0].exc_info[1])
    assert [step for _, hook, step in journal if hook == "step"] == [100, 200, 300]
    assert failing.calls == 3
    counted = [r for r in view.metric_records() if "callbacks/errors/Failing" in r]
    assert [(r["step"], r["callbacks/errors/Failing"]) for r in counted] == [(200, 1.0)]
    assert manager.health(failing).errors == 1 and not manager.health(failing).disabled


def test_errors_are_visible_without_any_logging_setup(
    make_manager: MakeManager, make_view: MakeView, capsys: pytest.CaptureFixture[str]
):
    manager = make_manager()
    manager.add_callback(Failing(fail_on={100}))
    view = make_view(manager)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    captured = capsys.readouterr()
    assert captured.out == ""  # no print()
    assert "callback Failing failed in on_step_end at step 100" in captured.err
    assert "ValueError: broken at 100" in captured.err


def test_callback_is_disabled_after_consecutive_failures(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager("callbacks.max_consecutive_failures=3")
    flaky = Failing(fail_on={100, 300, 400, 500, 600, 700}, name="flaky")
    manager.add_callback(flaky)
    view = make_view(manager)
    manager.on_train_start(view)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        for step in range(100, 801, 100):
            end_epoch(manager, view, step)
    # 100 fails, 200 succeeds (resets), 300/400/500 fail -> disabled; 600+ never called.
    assert flaky.calls == 5
    assert manager.health(flaky).disabled
    assert manager.health(flaky).errors == 4
    disabled = warnings_about(caplog, "disabled")
    assert disabled == ["callback flaky disabled after 3 consecutive failures"]


def _critical_setup(
    make_manager: MakeManager, make_view: MakeView, failing: Callback | AsyncCallback
) -> tuple[CallbackManager, View, Journal]:
    manager = make_manager()
    journal: Journal = []
    manager.setup_default_callbacks()
    manager.add_callback(Recorder(journal, "before", state_key="before"))
    if isinstance(failing, AsyncCallback):
        manager.add_async_callback(failing)
    else:
        manager.add_callback(failing)
    manager.add_callback(Recorder(journal, "after", state_key="after"))
    view = make_view(manager)
    manager.on_train_start(view)
    return manager, view, journal


def test_critical_failure_raises_from_the_original_and_leaves_teardown_to_the_trainer(
    make_manager: MakeManager, make_view: MakeView
):
    manager, view, journal = _critical_setup(
        make_manager, make_view, Failing(fail_on={200}, critical=True)
    )
    end_epoch(manager, view, 100)
    with pytest.raises(CriticalCallbackError) as raised:
        end_epoch(manager, view, 200)
    error = raised.value
    assert isinstance(error.__cause__, ValueError) and str(error.__cause__) == "broken at 200"
    assert (error.callback, error.hook, error.step) == ("Failing", "on_step_end", 200)
    assert ("after", "step", 200) not in journal  # training stops at the failure
    # The manager tore nothing down itself: no on_exception, no close, no final checkpoint.
    assert not [entry for entry in journal if entry[1] in ("exception", "close")]
    assert view.saved_steps() == []

    # The trainer's one teardown path: every callback hears about it once, checkpoint last.
    manager.on_exception(view, error)
    manager.close()
    manager.close()
    exceptions = [entry for entry in journal if entry[1] == "exception"]
    assert exceptions == [
        ("before", "exception", "CriticalCallbackError"),
        ("after", "exception", "CriticalCallbackError"),
    ]
    assert journal[-2:] == [("before", "close", None), ("after", "close", None)]
    assert view.saved_steps() == [200]  # the final checkpoint, written in on_exception


def test_critical_async_failure_raises_from_the_original_and_tears_nothing_down(
    make_manager: MakeManager, make_view: MakeView
):
    class Crash(AsyncCallback):
        async def on_step_end_async(self, trainer: TrainerView) -> None:
            raise RuntimeError("async crash")

    manager, view, journal = _critical_setup(make_manager, make_view, Crash(critical=True))
    with pytest.raises(CriticalCallbackError) as raised:
        end_epoch(manager, view, 100)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert str(raised.value.__cause__) == "async crash"
    assert raised.value.hook == "on_step_end_async"
    # The async dispatch raised, so the trainer never reached the sync dispatch of that epoch.
    assert [entry for entry in journal if entry[1] != "start"] == []


def test_one_failing_teardown_does_not_skip_the_others(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    class BadTeardown(Callback):
        def on_train_end(self, trainer: TrainerView) -> None:
            raise OSError("cannot finish")

        def on_exception(self, trainer: TrainerView, exc: BaseException) -> None:
            raise OSError("cannot handle")

        def close(self) -> None:
            raise OSError("cannot close")

    manager = make_manager()
    journal: Journal = []
    bad = BadTeardown()
    manager.add_callback(bad)
    manager.add_callback(Recorder(journal))
    view = make_view(manager)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        manager.on_train_end(view)
        manager.on_exception(view, RuntimeError("later failure"))  # never raises
        manager.close()  # never raises
    assert ("Recorder", "end", 100) in journal
    assert ("Recorder", "exception", "RuntimeError") in journal
    assert ("Recorder", "close", None) in journal
    failed_in = sorted(
        r.getMessage() for r in caplog.records if r.getMessage().startswith("callback BadTeardown")
    )
    assert failed_in == [
        "callback BadTeardown failed in close",
        "callback BadTeardown failed in on_exception",
        "callback BadTeardown failed in on_train_end at step 100",
    ]
    assert manager.health(bad).errors == 3


def test_train_end_and_close_reach_every_callback_on_success(
    make_manager: MakeManager, make_view: MakeView
):
    manager = make_manager()
    journal: Journal = []
    manager.add_callback(Recorder(journal))
    view = make_view(manager)
    manager.on_train_start(view)
    end_epoch(manager, view, 100)
    end_epoch(manager, view, 200)
    asyncio.run(manager.on_train_end_async(view))
    manager.on_train_end(view)
    manager.close()
    assert journal == [
        ("Recorder", "start", 0),
        ("Recorder", "step", 100),
        ("Recorder", "step", 200),
        ("Recorder", "end", 200),
        ("Recorder", "close", None),
    ]


def test_keyboard_interrupt_propagates_and_the_trainer_teardown_reaches_every_callback(
    make_manager: MakeManager, make_view: MakeView
):
    class Interrupt(Callback):
        def on_step_end(self, trainer: TrainerView) -> None:
            raise KeyboardInterrupt

    manager = make_manager()
    journal: Journal = []
    manager.setup_default_callbacks()
    manager.add_callback(Recorder(journal))
    interrupt = Interrupt()
    manager.add_callback(interrupt)
    view = make_view(manager)
    manager.on_train_start(view)
    with pytest.raises(KeyboardInterrupt) as raised:
        end_epoch(manager, view, 100)
    assert manager.health(interrupt).errors == 0  # not a callback failure
    manager.on_exception(view, raised.value)
    manager.close()
    assert ("Recorder", "exception", "KeyboardInterrupt") in journal
    assert ("Recorder", "close", None) in journal
    assert view.saved_steps() == [100]


# -------------------------------------------------------------------------------- state


def test_state_is_restored_by_state_key_whatever_the_registration_order(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    manager.setup_default_callbacks()  # checkpoints every 300
    a, b, c = Seen(state_key="a"), Seen(state_key="b"), AsyncSeen()
    manager.add_callback(a, every=100)
    manager.add_callback(b, every=200)
    manager.add_async_callback(c, every=100)
    view = make_view(manager)
    manager.on_train_start(view)
    for step in (100, 200, 300, 400):
        end_epoch(manager, view, step)
    saved = view.load(300).callback_state
    assert set(saved["callbacks"]) == {"CheckpointCallback", "Seen[a]", "Seen[b]", "AsyncSeen"}

    resumed = make_manager()
    resumed.setup_default_callbacks()  # first here: another registration order than before
    new = Seen(state_key="new")
    c2, b2 = AsyncSeen(), Seen(state_key="b")
    resumed.add_async_callback(c2, every=100)
    resumed.add_callback(b2, every=200)
    resumed.load_state_dict(saved)  # the trainer loads after registering...
    resumed.add_callback(new, every=100)
    a2 = Seen(state_key="a")
    resumed.add_callback(a2, every=100)  # ...but a callback added later gets its state too
    assert (a2.steps, b2.steps, c2.steps, new.steps) == (
        [100, 200, 300],
        [200],
        [100, 200, 300],
        [],
    )
    view2 = make_view(resumed, step=300)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        resumed.on_train_start(view2)
    assert warnings_about(caplog, "match no registered callback") == []
    for step in (400, 500, 600):
        end_epoch(resumed, view2, step)
    # Each one's schedule came back with it: nothing repeated, nothing skipped.
    assert a2.steps == [100, 200, 300, 400, 500, 600]
    assert b2.steps == [200, 400, 600]
    assert c2.steps == [100, 200, 300, 400, 500, 600]
    assert new.steps == [400, 500, 600]  # anchored at the resume step
    assert view2.saved_steps() == [600]


def test_a_saved_state_that_matches_no_callback_is_reported_once_at_train_start(
    make_manager: MakeManager, make_view: MakeView, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    kept = Seen()
    manager.add_callback(kept)
    manager.load_state_dict(
        {
            "callbacks": {
                "Seen": {"state": {"steps": [100]}, "schedule": None},
                "Gone[x]": {"state": {"anything": 1}, "schedule": None},
            }
        }
    )
    assert kept.steps == [100]
    view = make_view(manager)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        manager.on_train_start(view)
        manager.on_train_start(view)
        end_epoch(manager, view, 100)
    reports = warnings_about(caplog, "match no registered callback")
    assert len(reports) == 1
    assert "Gone[x]" in reports[0] and "'Seen'" not in reports[0]


def test_two_callbacks_of_one_class_need_distinct_state_keys(make_manager: MakeManager):
    manager = make_manager()
    manager.add_callback(CheckpointCallback(100))
    with pytest.raises(ValueError, match="same state key 'CheckpointCallback'"):
        manager.add_callback(CheckpointCallback(200))
    manager.add_callback(Seen(state_key="k"))
    manager.add_async_callback(AsyncSeen())  # another class: no clash
    with pytest.raises(ValueError, match="same state key 'Seen\\[k\\]'"):
        manager.add_callback(Seen(state_key="k"))
    manager.add_callback(CheckpointCallback(200, state_key="slow"))
    assert list(manager.state_dict()["callbacks"]) == [
        "CheckpointCallback",
        "Seen[k]",
        "CheckpointCallback[slow]",
        "AsyncSeen",
    ]


def test_setup_default_callbacks_clashing_with_a_user_callback_changes_nothing(
    make_manager: MakeManager,
):
    """A user's own `CheckpointCallback` (no state key) clashes with the default one, so
    `setup_default_callbacks()` raises ValueError, and the refused call leaves the registry as
    it was."""
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    manager.remove_callback(CheckpointCallback)
    mine = CheckpointCallback(1000)
    manager.add_callback(mine)
    before = manager.get_callbacks()
    with pytest.raises(ValueError, match="same state key 'CheckpointCallback'"):
        manager.setup_default_callbacks()
    assert manager.get_callbacks() == before


def test_resume_neither_repeats_nor_skips(
    make_manager: MakeManager, make_view: MakeView, make_evaluator: MakeEvaluator
):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    first = make_view(manager, make_evaluator())
    manager.on_train_start(first)
    for step in range(100, 501, 100):  # evaluations at 200 and 400, checkpoints every 300
        end_epoch(manager, first, step)
    manager.on_train_end(first)
    assert first.saved_steps() == [200, 300, 400, 500]
    saved = first.load(300).callback_state

    resumed = make_manager("evaluation.enable_periodic_evaluation=true")
    resumed.setup_default_callbacks()
    resumed.load_state_dict(saved)
    evaluator = make_evaluator()
    second = make_view(resumed, evaluator, step=300)
    resumed.on_train_start(second)
    for step in range(400, 701, 100):
        end_epoch(resumed, second, step)
    resumed.on_train_end(second)
    assert [step for _, step, _ in evaluator.calls] == [400, 600]
    assert second.saved_steps() == [400, 600, 700]
