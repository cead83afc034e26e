"""What callbacks see of the trainer: the `TrainerView` the `Trainer` hands them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import torch

from keisei.rl.rollout import GameStats
from keisei.training.callbacks import CheckpointSaver, Evaluator


class _TrainerState(Protocol):
    """The parts of the `Trainer` the view reads (so this module need not import it)."""

    global_timestep: int
    model: torch.nn.Module
    checkpoint_saver: CheckpointSaver
    evaluator: Evaluator | None
    logger: logging.Logger
    run_dir: Path

    @property
    def stats(self) -> GameStats: ...

    def record_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...


class TrainerCallbackView:
    """What callbacks see of the trainer (satisfies `TrainerView`)."""

    def __init__(self, trainer: _TrainerState) -> None:
        self._trainer = trainer

    @property
    def global_timestep(self) -> int:
        return self._trainer.global_timestep

    @property
    def total_episodes_completed(self) -> int:
        return self._trainer.stats.games

    @property
    def black_wins(self) -> int:
        return self._trainer.stats.black_wins

    @property
    def white_wins(self) -> int:
        return self._trainer.stats.white_wins

    @property
    def draws(self) -> int:
        return self._trainer.stats.draws

    @property
    def model(self) -> torch.nn.Module:
        return self._trainer.model

    @property
    def checkpoint_saver(self) -> CheckpointSaver:
        return self._trainer.checkpoint_saver

    @property
    def evaluator(self) -> Evaluator | None:
        return self._trainer.evaluator

    @property
    def logger(self) -> logging.Logger:
        return self._trainer.logger

    @property
    def run_dir(self) -> Path:
        return self._trainer.run_dir

    def record_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._trainer.record_metrics(metrics, step)
