from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from keisei.config import Config, load_config
from keisei.training.callback_manager import CallbackManager
from tests.support.mini_trainer import MiniTrainer, ProcessEvaluator


@pytest.fixture
def make_config() -> Callable[..., Config]:
    def make(*overrides: str) -> Config:
        base = [
            "evaluation.enable_periodic_evaluation=false",
            "evaluation.async_mode=false",
            "env.num_envs=1",
            "ppo.minibatch_size=1",
            "training.steps_per_epoch=100",
            "training.checkpoint_interval_timesteps=300",
            "evaluation.evaluation_interval_timesteps=200",
        ]
        return load_config(overrides=[*base, *overrides])

    return make


@pytest.fixture
def make_manager(
    tmp_path: Path, make_config: Callable[..., Config]
) -> Callable[..., CallbackManager]:
    def make(*overrides: str) -> CallbackManager:
        return CallbackManager(make_config(*overrides), tmp_path)

    return make


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., MiniTrainer]:
    created: list[MiniTrainer] = []

    def make(manager: CallbackManager, evaluator: ProcessEvaluator | None = None) -> MiniTrainer:
        trainer = MiniTrainer(
            run_dir=tmp_path / f"run{len(created)}",
            manager=manager,
            steps_per_epoch=manager.config.training.steps_per_epoch,
            evaluator=evaluator,
        )
        created.append(trainer)
        return trainer

    yield make
    for trainer in created:
        if trainer.evaluator is not None:
            trainer.evaluator.close()
        trainer.manager.close()
        trainer.metrics.close()
