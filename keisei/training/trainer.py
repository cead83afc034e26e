"""The `Trainer`: self-play PPO, epoch by epoch, with callbacks at the end of each epoch.

An epoch plays `training.steps_per_epoch` environment steps (plies, over all games), runs the PPO
update, then dispatches the async and sync callbacks with `global_timestep` = environment steps
completed. On any failure or Ctrl-C the callbacks hear `on_exception`, a final checkpoint is
written, and teardown runs before the error propagates. The first Ctrl-C stops at the end of the
current epoch (a clean, exactly resumable checkpoint); a second one stops at once.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
import torch

from keisei import log
from keisei.checkpoint import CheckpointStore, LoadedCheckpoint, TrainingState
from keisei.checkpoint.run_layout import RunLayout
from keisei.config import config_hash, config_to_dict, dump_config
from keisei.evaluation.manager import EvaluationManager
from keisei.model import ActorCritic, Architecture
from keisei.rl.ppo import PPO
from keisei.rl.rollout import GameStats, SelfPlayCollector
from keisei.shogi import VecShogiEnv
from keisei.timing import SectionTimer
from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import CheckpointSaver, Evaluator
from keisei.training.display import Display, LiveDisplay, PlainDisplay, ProgressSnapshot
from keisei.training.run_dir import RunPlan


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else CPU; anything else must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"training.device = {name!r} but CUDA is not available here")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class StopRequested(KeyboardInterrupt):
    """Ctrl-C arrived; training stopped at the end of an epoch."""


class _GracefulInterrupt:
    """First SIGINT: ask to stop after the epoch. Second: raise KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.get_logger("trainer").warning(
            "Ctrl-C: stopping at the end of this epoch (press Ctrl-C again to stop now)"
        )

    @contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class TrainerCallbackView:
    """What callbacks see of the trainer (satisfies `TrainerView`)."""

    def __init__(self, trainer: Trainer) -> None:
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

    def record_metrics(self, metrics: Mapping[str, float]) -> None:
        self._trainer.record_metrics(metrics)


@dataclass(frozen=True)
class TrainingSummary:
    run_dir: Path
    final_step: int
    final_checkpoint: Path | None
    games: int
    seconds: float


class Trainer:
    """One training run in `plan.run_dir`, fresh or resumed."""

    def __init__(
        self, plan: RunPlan, *, live: bool = False, evaluator: Evaluator | None = None
    ) -> None:
        config = plan.config
        self.config = config
        self.run_dir = plan.run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log.set_level(config.logging.level)
        layout = RunLayout(self.run_dir)
        log.attach_log_file(layout.log)
        self.logger = log.get_logger("trainer")
        dump_config(config, layout.config)
        seed_everything(config.training.seed)
        self.device = pick_device(config.training.device)

        env_cfg, model_cfg = config.env, config.model
        self.env = VecShogiEnv(
            env_cfg.num_envs,
            seed=config.training.seed,
            max_plies=env_cfg.max_plies,
            declaration=env_cfg.declaration,
        )
        self.architecture = Architecture(
            blocks=model_cfg.blocks,
            channels=model_cfg.channels,
            squeeze_excitation=model_cfg.squeeze_excitation,
            value_hidden=model_cfg.value_hidden,
        )
        self.model = ActorCritic(self.architecture).to(self.device)
        steps_per_epoch = config.training.steps_per_epoch
        total_updates = math.ceil(config.training.total_timesteps / steps_per_epoch)
        self.ppo = PPO(self.model, config.ppo, total_updates, self.device)
        self.timer = SectionTimer()
        self.collector = SelfPlayCollector(
            self.env,
            steps_per_epoch // env_cfg.num_envs,
            self.device,
            config.ppo.gamma,
            config.ppo.gae_lambda,
            self.timer,
        )
        self.store = CheckpointStore.from_config(config.checkpoint, layout.checkpoints)
        self.checkpoint_saver: CheckpointSaver = self.store.saver(self._training_state)
        self.metrics = log.MetricsRecorder([log.JsonlSink(layout.metrics)])
        if config.logging.tensorboard:
            self.metrics.add_sink(log.TensorBoardSink(layout.tensorboard))
        if config.logging.wandb:
            self.metrics.add_sink(
                log.WandbSink(
                    self.run_dir,
                    config.logging.wandb_project,
                    self.run_dir.name,
                    config.logging.wandb_mode,
                )
            )
        if evaluator is None and config.evaluation.enable_periodic_evaluation:
            evaluator = EvaluationManager(config.evaluation, self.run_dir)
            if config.evaluation.async_mode:
                evaluator.start_workers()
        self.evaluator = evaluator
        self.manager = CallbackManager(config, self.run_dir)
        self.manager.setup_default_callbacks()
        self.manager.setup_async_callbacks()
        self.view = TrainerCallbackView(self)
        self.display: Display = LiveDisplay() if live else PlainDisplay()
        self.global_timestep = 0
        self.updates = 0
        self.last_saved_step: int | None = None
        self._interrupt = _GracefulInterrupt()
        self._latest_evaluation: str | None = None
        if plan.resume_from is not None:
            self._resume(plan)
        self.logger.info(
            "run directory %s; device %s; model %s (%d parameters)",
            self.run_dir,
            self.device,
            self.architecture,
            sum(p.numel() for p in self.model.parameters()),
        )

    # ------------------------------------------------------------------- state

    @property
    def stats(self) -> GameStats:
        return self.collector.stats

    def record_metrics(self, metrics: Mapping[str, float]) -> None:
        self.metrics.record(metrics, self.global_timestep)

    def _training_state(self, step: int) -> TrainingState:
        self.last_saved_step = step
        latest = {k: v for k, v in self.metrics.latest.items() if math.isfinite(v)}
        return TrainingState(
            step=step,
            model=self.model,
            optimizer=self.ppo.optimizer,
            scheduler=self.ppo.scheduler,
            scaler=self.ppo.scaler,
            counters={
                "episodes": self.stats.games,
                "black_wins": self.stats.black_wins,
                "white_wins": self.stats.white_wins,
                "draws": self.stats.draws,
                "updates": self.updates,
            },
            callback_state=self.manager.state_dict(),
            config_hash=config_hash(self.config),
            architecture=self.architecture.to_dict(),
            metrics=latest,
            extra={
                "env": self.env.state_dict(),
                "game_stats": self.stats.state_dict(),
                "config": config_to_dict(self.config),
            },
        )

    def _resume(self, plan: RunPlan) -> None:
        architecture = self.architecture.to_dict()
        checkpoint: LoadedCheckpoint = (
            self.store.load_latest(architecture=architecture)
            if plan.resume_latest
            else self.store.load(plan.resume_from, architecture=architecture)
        )
        checkpoint.restore_model(self.model, architecture=architecture)
        checkpoint.restore_optimizer(self.ppo.optimizer)
        if self.ppo.scheduler is not None:
            checkpoint.restore_scheduler(self.ppo.scheduler)
        if self.ppo.scaler is not None:
            checkpoint.restore_scaler(self.ppo.scaler)
        self.global_timestep = checkpoint.step
        self.updates = int(checkpoint.counters.get("updates", 0))
        self.last_saved_step = checkpoint.step
        extra = checkpoint.extra
        self.collector.stats = GameStats.from_state(extra["game_stats"])
        self.env.load_state_dict(extra["env"])
        self.manager.load_state_dict(checkpoint.callback_state)
        if checkpoint.config_hash != config_hash(self.config):
            self.logger.warning(
                "the configuration differs from the one checkpoint %s was written with",
                checkpoint.path,
            )
        checkpoint.restore_rng()  # last: nothing below may draw random numbers first
        self.logger.info("resumed from %s at step %d", checkpoint.path, self.global_timestep)

    # -------------------------------------------------------------------- loop

    def train(self) -> TrainingSummary:
        """Train to `training.total_timesteps`; always leaves a final checkpoint."""
        total = self.config.training.total_timesteps
        started = time.monotonic()
        self.display.start(self.global_timestep, total)
        try:
            with self._interrupt.installed():
                self.manager.on_train_start(self.view)
                while self.global_timestep < total:
                    self._epoch(started)
                    if self._interrupt.requested:
                        raise StopRequested(f"stopped by Ctrl-C at step {self.global_timestep}")
                self.manager.on_train_end(self.view)
                self._save_final()
        except BaseException as exc:
            self.manager.on_exception(self.view, exc)
            self._save_final_after_failure()
            raise
        finally:
            self.display.stop()
            self._teardown()
        return TrainingSummary(
            self.run_dir,
            self.global_timestep,
            self.store.latest(),
            self.stats.games,
            time.monotonic() - started,
        )

    def _epoch(self, started: float) -> None:
        epoch_start = time.monotonic()
        rollout = self.collector.collect(self.model)
        self.global_timestep += self.config.training.steps_per_epoch
        with self.timer.section("ppo"):
            update = self.ppo.update(rollout)
        self.updates += 1
        elapsed = time.monotonic() - epoch_start
        steps_per_second = self.config.training.steps_per_epoch / max(elapsed, 1e-9)
        stats = self.stats
        self.record_metrics(
            {
                **update,
                "train/steps_per_second": steps_per_second,
                "games/finished": float(stats.games),
                "games/black_wins": float(stats.black_wins),
                "games/white_wins": float(stats.white_wins),
                "games/draws": float(stats.draws),
                "games/mean_length": stats.mean_length,
                "games/decisive_share_recent": stats.recent_decisive_share,
            }
        )
        with self.timer.section("callbacks"):
            self.record_metrics(self.manager.execute_step_callbacks_async(self.view))
            self.manager.execute_step_callbacks(self.view)
        self.display.update(self._snapshot(steps_per_second, update))

    def _snapshot(self, steps_per_second: float, update: Mapping[str, float]) -> ProgressSnapshot:
        stats = self.stats
        elo = None
        evaluation = None
        for cb in [*self.manager.get_callbacks(), *self.manager.get_async_callbacks()]:
            result = getattr(cb, "last_result", None)
            if result is not None:
                evaluation = result.summary()
            elo = getattr(cb, "elo_snapshot", None) or elo
        return ProgressSnapshot(
            step=self.global_timestep,
            total_steps=self.config.training.total_timesteps,
            steps_per_second=steps_per_second,
            losses=dict(update),
            games=stats.games,
            black_wins=stats.black_wins,
            white_wins=stats.white_wins,
            draws=stats.draws,
            mean_game_length=stats.mean_length,
            end_reasons=dict(stats.reasons),
            evaluation=evaluation,
            elo=elo,
        )

    # ---------------------------------------------------------------- teardown

    def _save_final(self) -> None:
        """A final checkpoint at the current step, unless a callback already wrote it."""
        if self.last_saved_step != self.global_timestep:
            path = self.checkpoint_saver.save(self.global_timestep, wait=True)
            self.logger.info("final checkpoint for step %d: %s", self.global_timestep, path)

    def _save_final_after_failure(self) -> None:
        try:
            self.store.flush()
        except Exception:
            self.logger.exception("an earlier checkpoint write failed")
        try:
            self._save_final()
        except Exception:
            self.logger.exception("writing the final checkpoint failed")

    def _teardown(self) -> None:
        steps = [
            ("callbacks", self.manager.close),
            ("checkpoint store", self.store.close),
            ("metrics", self.metrics.close),
        ]
        closer = getattr(self.evaluator, "close", None)
        if callable(closer):
            steps.insert(1, ("evaluator", closer))
        for what, close in steps:
            try:
                close()
            except Exception:
                self.logger.exception("closing the %s failed", what)
        log.detach_log_file()
