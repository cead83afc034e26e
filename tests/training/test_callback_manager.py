"""CallbackManager: the public API, scheduling, failure policy and lifecycle.

Each defect of the original design has a test here that fails on the defective behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from keisei.config import ConfigError
from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    Callback,
    CheckpointCallback,
    EvaluationCallback,
    TrainerView,
)
from tests.support.mini_trainer import MiniTrainer, ProcessEvaluator

MakeManager = Callable[..., CallbackManager]
MakeTrainer = Callable[..., MiniTrainer]


class Recorder(Callback):
    """Records every hook call into a shared journal."""

    def __init__(self, journal: list, name: str = "Recorder", **kwargs) -> None:
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

    def state_dict(self) -> dict:
        return {
            "steps_seen": [s for n, hook, s in self.journal if n == self.name and hook == "step"]
        }


class Failing(Callback):
    def __init__(self, fail_on: set[int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fail_on = fail_on
        self.calls = 0

    def on_step_end(self, trainer: TrainerView) -> None:
        self.calls += 1
        if self.fail_on is None or trainer.global_timestep in self.fail_on:
            raise ValueError(f"broken at {trainer.global_timestep}")


class SubRecorder(Recorder):
    pass


# ------------------------------------------------------------------------ registration


def test_setup_default_callbacks_keeps_user_callbacks_in_order(make_manager: MakeManager):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    journal: list = []
    first, second = Recorder(journal, "first"), Recorder(journal, "second")
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
    assert len(manager.get_callbacks()) == 1
    assert manager.get_async_callbacks() == []


def test_remove_callback_removes_every_instance_including_subclasses(make_manager: MakeManager):
    manager = make_manager()
    journal: list = []
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
    with pytest.raises(TypeError, match="AsyncCallback"):
        manager.add_async_callback(Recorder([]))  # type: ignore[arg-type]
    cb = Recorder([])
    manager.add_callback(cb)
    with pytest.raises(ValueError, match="already registered"):
        manager.add_callback(cb)


def test_use_async_evaluation_replaces_sync_evaluation_once(make_manager: MakeManager):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    manager.use_async_evaluation()
    manager.use_async_evaluation()
    assert [type(cb) for cb in manager.get_callbacks()] == [CheckpointCallback]
    asyncs = manager.get_async_callbacks()
    assert [type(cb) for cb in asyncs] == [AsyncEvaluationCallback]
    assert asyncs[0].trigger.interval == 200


def test_intervals_are_aligned_once_by_one_helper_for_every_path(
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
    assert sync_eval.schedule.interval == async_eval.trigger.interval == 300
    assert checkpoint.schedule.interval == 400
    notes = [r.getMessage() for r in caplog.records if "not a multiple" in r.getMessage()]
    assert len(notes) == 2
    assert all(r.levelno == logging.INFO for r in caplog.records if "not a multiple" in r.message)


def test_zero_steps_per_epoch_is_a_configuration_error_not_a_division_by_zero(
    make_manager: MakeManager,
):
    with pytest.raises(ConfigError, match="training.steps_per_epoch"):
        make_manager("training.steps_per_epoch=0")


# ---------------------------------------------------------------------------- dispatch


def test_periodic_callbacks_fire_at_each_aligned_multiple(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    evaluator = ProcessEvaluator()
    trainer = make_trainer(manager, evaluator)
    trainer.run(epochs=7)
    assert [step for step, _ in evaluator.sync_calls] == [200, 400, 600]
    assert all(training is False for _, training in evaluator.sync_calls)  # eval mode
    assert trainer.model.training  # train mode restored
    assert trainer.checkpoint_saver.saved_steps == [300, 600, 700]  # 700: the final one


def test_checkpoint_runs_after_other_callbacks_at_the_same_step(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = make_manager()
    journal: list = []
    manager.setup_default_callbacks()  # the checkpoint callback is registered first
    manager.add_callback(Recorder(journal))
    trainer = make_trainer(manager)
    trainer.run(epochs=3)
    _, manifest = trainer.checkpoint_saver.load(trainer.run_dir / "checkpoints" / "step_000000300")
    # The recorder, registered after it, had already run at step 300 when the checkpoint was taken.
    assert manifest["callbacks"]["callbacks"]["Recorder"]["state"]["steps_seen"] == [100, 200, 300]


def test_failing_callback_is_logged_with_traceback_counted_and_training_continues(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    manager = make_manager()
    journal: list = []
    failing = Failing(fail_on={200})
    manager.add_callback(failing)
    manager.add_callback(Recorder(journal))
    trainer = make_trainer(manager)
    with caplog.at_level(logging.ERROR, logger="keisei"):
        trainer.run(epochs=3)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == "callback Failing failed in on_step_end at step 200"
    assert errors[0].exc_info is not None and "broken at 200" in str(errors[0].exc_info[1])
    assert [step for name, hook, step in journal if hook == "step"] == [100, 200, 300]
    assert failing.calls == 3
    counted = [r for r in trainer.metric_records() if "callbacks/errors/Failing" in r]
    assert [(r["step"], r["callbacks/errors/Failing"]) for r in counted] == [(200, 1.0)]


def test_errors_are_visible_without_any_logging_setup(
    make_manager: MakeManager, make_trainer: MakeTrainer, capsys: pytest.CaptureFixture[str]
):
    manager = make_manager()
    manager.add_callback(Failing(fail_on={100}))
    make_trainer(manager).run(epochs=1)
    captured = capsys.readouterr()
    assert captured.out == ""  # no print()
    assert "callback Failing failed in on_step_end at step 100" in captured.err
    assert "ValueError: broken at 100" in captured.err


def test_callback_is_disabled_after_consecutive_failures(
    make_manager: MakeManager, make_trainer: MakeTrainer, caplog: pytest.LogCaptureFixture
):
    manager = make_manager("callbacks.max_consecutive_failures=3")
    flaky = Failing(fail_on={100, 300, 400, 500, 600, 700}, name="flaky")
    manager.add_callback(flaky)
    trainer = make_trainer(manager)
    with caplog.at_level(logging.WARNING, logger="keisei"):
        trainer.run(epochs=8)
    # 100 fails, 200 succeeds (resets), 300/400/500 fail -> disabled; 600+ never called.
    assert flaky.calls == 5
    assert manager.health(flaky).disabled
    assert manager.health(flaky).errors == 4
    assert any("flaky disabled after 3 consecutive failures" in r.message for r in caplog.records)


def test_critical_failure_stops_training_after_exception_hooks_and_teardown(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = make_manager()
    journal: list = []
    manager.setup_default_callbacks()
    manager.add_callback(Recorder(journal, "before"))
    manager.add_callback(Failing(fail_on={200}, critical=True))
    manager.add_callback(Recorder(journal, "after"))
    trainer = make_trainer(manager)
    with pytest.raises(ValueError, match="broken at 200"):
        trainer.run(epochs=5)
    assert ("before", "exception", "ValueError") in journal
    assert ("after", "exception", "ValueError") in journal
    assert journal.count(("before", "exception", "ValueError")) == 1  # not twice
    assert ("before", "close", None) in journal and ("after", "close", None) in journal
    assert ("after", "step", 200) not in journal  # training stopped at the failure
    assert trainer.checkpoint_saver.saved_steps == [200]  # the final checkpoint


def test_one_failing_teardown_does_not_skip_the_others(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    class BadTeardown(Callback):
        def on_train_end(self, trainer: TrainerView) -> None:
            raise OSError("cannot finish")

        def close(self) -> None:
            raise OSError("cannot close")

    manager = make_manager()
    journal: list = []
    manager.add_callback(BadTeardown())
    manager.add_callback(Recorder(journal))
    make_trainer(manager).run(epochs=1)
    assert ("Recorder", "end", 100) in journal
    assert ("Recorder", "close", None) in journal


def test_train_end_and_close_reach_every_callback_on_success(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    manager = make_manager()
    journal: list = []
    manager.add_callback(Recorder(journal))
    make_trainer(manager).run(epochs=2)
    assert journal == [
        ("Recorder", "start", 0),
        ("Recorder", "step", 100),
        ("Recorder", "step", 200),
        ("Recorder", "end", 200),
        ("Recorder", "close", None),
    ]


def test_keyboard_interrupt_reaches_on_exception_and_teardown(
    make_manager: MakeManager, make_trainer: MakeTrainer
):
    class Interrupt(Callback):
        def on_step_end(self, trainer: TrainerView) -> None:
            raise KeyboardInterrupt

    manager = make_manager()
    journal: list = []
    manager.setup_default_callbacks()
    manager.add_callback(Recorder(journal))
    manager.add_callback(Interrupt())
    trainer = make_trainer(manager)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(epochs=3)
    assert ("Recorder", "exception", "KeyboardInterrupt") in journal
    assert ("Recorder", "close", None) in journal
    assert trainer.checkpoint_saver.saved_steps == [100]


# ------------------------------------------------------------------------------- state


def test_resume_neither_repeats_nor_skips(
    make_manager: MakeManager, make_trainer: MakeTrainer, tmp_path: Path
):
    manager = make_manager("evaluation.enable_periodic_evaluation=true")
    manager.setup_default_callbacks()
    first = make_trainer(manager, ProcessEvaluator())
    first.run(epochs=5)  # checkpoints at 300 and the final 500; evaluations at 200, 400
    _, manifest = first.checkpoint_saver.load(first.run_dir / "checkpoints" / "step_000000300")

    resumed_manager = make_manager("evaluation.enable_periodic_evaluation=true")
    resumed_manager.load_state_dict(manifest["callbacks"])  # before the callbacks exist
    resumed_manager.setup_default_callbacks()
    evaluator = ProcessEvaluator()
    resumed = make_trainer(resumed_manager, evaluator)
    resumed.global_timestep = 300
    resumed.run(epochs=4)
    assert [step for step, _ in evaluator.sync_calls] == [400, 600]
    assert resumed.checkpoint_saver.saved_steps == [600, 700]


def test_state_dict_keys_duplicate_names_apart(make_manager: MakeManager):
    manager = make_manager()
    manager.add_callback(CheckpointCallback(100))
    manager.add_callback(CheckpointCallback(200))
    state = manager.state_dict()
    assert list(state["callbacks"]) == ["CheckpointCallback", "CheckpointCallback#2"]
    assert state["async_callbacks"] == {}
