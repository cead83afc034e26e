"""Property-based checks of the manager's registry and of firing once per crossed multiple."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from keisei.config import load_config
from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import (
    AsyncCallback,
    AsyncEvaluationCallback,
    Callback,
    CheckpointCallback,
    EvaluationCallback,
    TrainerView,
)
from keisei.training.schedule import EveryNSteps
from tests.support.mini_trainer import MiniTrainer


class Alpha(Callback):
    pass


class Beta(Alpha):
    pass


class Gamma(AsyncCallback):
    pass


SYNC_TYPES = [Alpha, Beta, CheckpointCallback, EvaluationCallback]
ASYNC_TYPES = [Gamma, AsyncEvaluationCallback]


def _make(kind: type) -> Callback | AsyncCallback:
    if kind in (CheckpointCallback, EvaluationCallback, AsyncEvaluationCallback):
        return kind(100)
    return kind()


class RegistryMachine(RuleBasedStateMachine):
    """The manager's registry behaves like two ordered lists (a model kept beside it)."""

    def __init__(self) -> None:
        super().__init__()
        config = load_config(
            overrides=[
                "env.num_envs=1",
                "ppo.minibatch_size=1",
                "training.steps_per_epoch=50",
                "evaluation.enable_periodic_evaluation=true",
                "evaluation.async_mode=false",
            ]
        )
        self.manager = CallbackManager(config, Path("unused"))
        self.sync_model: list = []
        self.async_model: list = []
        self.defaults: list = []  # strong references: ids of dead objects get reused

    @rule(kind=st.sampled_from(SYNC_TYPES))
    def add(self, kind: type) -> None:
        cb = _make(kind)
        self.manager.add_callback(cb)
        self.sync_model.append(cb)

    @rule(kind=st.sampled_from(ASYNC_TYPES))
    def add_async(self, kind: type) -> None:
        cb = _make(kind)
        self.manager.add_async_callback(cb)
        self.async_model.append(cb)

    @rule(kind=st.sampled_from([*SYNC_TYPES, Callback]))
    def remove(self, kind: type) -> None:
        expected = any(isinstance(cb, kind) for cb in self.sync_model)
        assert self.manager.remove_callback(kind) is expected
        self.sync_model = [cb for cb in self.sync_model if not isinstance(cb, kind)]

    @rule(kind=st.sampled_from([*ASYNC_TYPES, AsyncCallback]))
    def remove_async(self, kind: type) -> None:
        expected = any(isinstance(cb, kind) for cb in self.async_model)
        assert self.manager.remove_async_callback(kind) is expected
        self.async_model = [cb for cb in self.async_model if not isinstance(cb, kind)]

    @rule()
    def clear(self) -> None:
        self.manager.clear_callbacks()
        self.sync_model = []

    @rule()
    def clear_async(self) -> None:
        self.manager.clear_async_callbacks()
        self.async_model = []

    @rule()
    def setup_defaults(self) -> None:
        user = [cb for cb in self.sync_model if not any(cb is d for d in self.defaults)]
        result = self.manager.setup_default_callbacks()
        defaults = result[len(user) :]
        assert result[: len(user)] == user
        assert [type(cb) for cb in defaults] == [EvaluationCallback, CheckpointCallback]
        self.defaults += defaults
        self.sync_model = result

    @rule()
    def use_async(self) -> None:
        self.manager.use_async_evaluation()
        self.sync_model = [cb for cb in self.sync_model if not isinstance(cb, EvaluationCallback)]
        if not any(isinstance(cb, AsyncEvaluationCallback) for cb in self.async_model):
            self.async_model.append(self.manager.get_async_callbacks()[-1])

    @rule()
    def mutate_copies(self) -> None:
        self.manager.get_callbacks().clear()
        self.manager.get_async_callbacks().append(Gamma())

    @invariant()
    def matches_model(self) -> None:
        assert self.manager.get_callbacks() == self.sync_model
        assert self.manager.get_async_callbacks() == self.async_model
        assert self.manager.has_async_callbacks() == bool(self.async_model)
        keys = self.manager.state_dict()
        assert len(keys["callbacks"]) == len(self.sync_model)
        assert len(keys["async_callbacks"]) == len(self.async_model)

    def teardown(self) -> None:
        self.manager.close()


TestRegistry = RegistryMachine.TestCase
TestRegistry.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


class Counter(Callback):
    def __init__(self, interval: int) -> None:
        super().__init__()
        self.schedule = EveryNSteps(interval)
        self.fired: list[int] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        # Called by the manager only when due.
        self.fired.append(trainer.global_timestep)


@settings(max_examples=60, deadline=None)
@given(
    interval=st.integers(1, 400),
    jumps=st.lists(st.integers(0, 900), min_size=1, max_size=40),
    resume_at=st.integers(0, 40),
)
def test_dispatch_fires_once_per_crossed_multiple_across_a_resume(
    tmp_path_factory, interval: int, jumps: list[int], resume_at: int
):
    config = load_config(
        overrides=["env.num_envs=1", "ppo.minibatch_size=1", "training.steps_per_epoch=1"]
    )
    run_dir = tmp_path_factory.mktemp("run")
    manager = CallbackManager(config, run_dir)
    counter = Counter(interval)
    manager.add_callback(counter)
    trainer = MiniTrainer(run_dir=run_dir, manager=manager, steps_per_epoch=1)
    manager.on_train_start(trainer)
    fired: list[int] = []
    for index, jump in enumerate(jumps):
        if index == resume_at:  # simulate a resume from a checkpoint taken here
            state = manager.state_dict()
            fired += counter.fired
            manager.close()
            manager = CallbackManager(config, run_dir)
            counter = Counter(interval)
            manager.add_callback(counter)
            manager.load_state_dict(state)
            trainer.manager = manager
            manager.on_train_start(trainer)
        previous, fired_before = trainer.global_timestep, len(counter.fired)
        trainer.global_timestep += jump
        manager.execute_step_callbacks(trainer)
        crossed = trainer.global_timestep // interval > previous // interval
        assert len(counter.fired) - fired_before == int(crossed)
    fired += counter.fired
    manager.close()
    trainer.metrics.close()
    expected = []
    step = 0
    for jump in jumps:
        if (step + jump) // interval > step // interval:
            expected.append(step + jump)
        step += jump
    assert fired == expected
