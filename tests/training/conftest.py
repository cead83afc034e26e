"""Fixtures for driving a `CallbackManager` by hand: a config with overrides, managers built from
it, real views (`tests.support.view.View`) and real evaluators; all closed at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keisei.config import Config, load_config
from keisei.training.callback_manager import CallbackManager
from tests.support.view import ProcessEvaluator, View

BASE_OVERRIDES = [
    "evaluation.enable_periodic_evaluation=false",
    "evaluation.async_mode=false",
    "env.num_envs=1",
    "ppo.minibatch_size=1",
    "training.steps_per_epoch=100",
    "training.checkpoint_interval_timesteps=300",
    "evaluation.evaluation_interval_timesteps=200",
    "evaluation.async_shutdown_timeout_s=120",
]


@pytest.fixture
def make_config() -> Callable[..., Config]:
    """`make_config("section.key=value", ...)`: the test base config with these overrides."""

    def make(*overrides: str) -> Config:
        return load_config(overrides=[*BASE_OVERRIDES, *overrides])

    return make


@pytest.fixture
def make_manager(
    tmp_path: Path, make_config: Callable[..., Config]
) -> Iterator[Callable[..., CallbackManager]]:
    """`make_manager(*overrides)`: a manager with no callbacks yet; closed at teardown."""
    created: list[CallbackManager] = []

    def make(*overrides: str) -> CallbackManager:
        manager = CallbackManager(make_config(*overrides), tmp_path)
        created.append(manager)
        return manager

    yield make
    for manager in created:
        manager.close()


@pytest.fixture
def make_evaluator() -> Iterator[Callable[..., ProcessEvaluator]]:
    """`make_evaluator(games=4, delay_s=0.0)`: a real evaluator; its workers stop at teardown."""
    created: list[ProcessEvaluator] = []

    def make(games: int = 4, delay_s: float = 0.0) -> ProcessEvaluator:
        evaluator = ProcessEvaluator(games=games, delay_s=delay_s)
        created.append(evaluator)
        return evaluator

    yield make
    for evaluator in created:
        evaluator.close()


@pytest.fixture
def make_view(tmp_path: Path) -> Iterator[Callable[..., View]]:
    """`make_view(manager, evaluator, run_dir=..., keep_last=..., keep_rated=...)`: a real view in
    its own run directory (or in `run_dir`, e.g. to resume a run), its store retaining as told;
    its store and metric sinks are closed at teardown."""
    created: list[View] = []

    def make(
        manager: CallbackManager | None = None,
        evaluator: ProcessEvaluator | None = None,
        *,
        run_dir: Path | None = None,
        step: int = 0,
        keep_last: int = 100,
        keep_rated: bool = True,
    ) -> View:
        view = View(
            run_dir=run_dir or tmp_path / f"run{len(created)}",
            manager=manager,
            evaluator=evaluator,
            global_timestep=step,
            keep_last=keep_last,
            keep_rated=keep_rated,
        )
        created.append(view)
        return view

    yield make
    for view in created:
        view.close()
