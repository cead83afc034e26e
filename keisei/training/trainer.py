"""The `Trainer`: self-play PPO, epoch by epoch, with callbacks at the end of each epoch.

An epoch plays `training.steps_per_epoch` environment steps (plies, over all games), runs the PPO
update, and only then advances `global_timestep`; then it dispatches the async and the sync
callbacks. The trainer owns the one teardown path: on any failure or Ctrl-C the callbacks hear
`on_exception` (the checkpoint callback writes the final checkpoint there), then everything the
run acquired is released, and the error propagates.

With several ranks (see `distributed.py`) every rank runs this same loop on its own games: the
update averages gradients across ranks, and at each epoch boundary the ranks send rank 0 their
game states (for checkpoints) and agree on what changes the control flow (a callback disabled, a
failure, a Ctrl-C), so every rank takes the same branch at the same step and none waits forever.

A final checkpoint after a failure records the failure in its manifest. When training stopped at
an epoch boundary (Ctrl-C once, a failing callback) it is a clean checkpoint and `latest` names it;
when it stopped mid-epoch (a second Ctrl-C or an error during collection or the update) it is
named `step_...-interrupted` and `latest` keeps naming the last clean one, so `--resume latest`
is exact.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keisei import log
from keisei.checkpoint import CheckpointStore, LoadedCheckpoint, TrainingState
from keisei.checkpoint.run_layout import RunLayout
from keisei.config import config_hash, config_to_dict
from keisei.evaluation.during_training.manager import EvaluationManager
from keisei.evaluation.during_training.rated import RatedCheckpoints
from keisei.model import ActorCritic, Architecture, choose_precision
from keisei.model.precision import allow_tf32
from keisei.rl.ppo import PPO
from keisei.rl.rollout import GameStats, SelfPlayCollector, self_play_search
from keisei.rl.versus import VersusGames
from keisei.shogi import VecShogiEnv
from keisei.timing import SectionTimer
from keisei.training.callback_manager import CallbackManager
from keisei.training.callback_system.event_loop import BackgroundEventLoop
from keisei.training.callback_system.extra import build_extra_callbacks
from keisei.training.callbacks import (
    AsyncCallback,
    CheckpointSaver,
    CriticalCallbackError,
    Evaluator,
)
from keisei.training.display import Display, LiveDisplay, NoDisplay, PlainDisplay
from keisei.training.distributed import World
from keisei.training.epoch_report import epoch_metrics, progress_snapshot
from keisei.training.interrupt import GracefulInterrupt
from keisei.training.past_opponents import PastOpponents
from keisei.training.ranks.agreement import agree_on_epoch_end, agreed, describe
from keisei.training.ranks.state import RankStates
from keisei.training.run_dir import RunPlan, open_run_outputs
from keisei.training.trainer_view import TrainerCallbackView


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class TrainingSummary:
    run_dir: Path
    final_step: int
    final_checkpoint: Path | None
    games: int
    seconds: float


class RunDirectoryError(RuntimeError):
    """The run directory cannot be written (read-only, full, not a directory)."""


class Trainer:
    """One training run in `plan.run_dir`, fresh or resumed.

    Construction first builds everything in memory and, for a resume, loads and checks the
    checkpoint: a run that cannot start leaves the run directory as it was. Only then does it
    take what a run holds (the run directory, the log file, `config.yaml`, metric sinks,
    evaluation workers), and it gives back whatever it took if that fails half-way.
    """

    def __init__(
        self,
        plan: RunPlan,
        *,
        live: bool = False,
        evaluator: Evaluator | None = None,
        world: World | None = None,
    ) -> None:
        config = plan.config
        self.config = config
        self.world = world = world or World()
        self.run_dir = plan.run_dir
        self.layout = RunLayout(self.run_dir)
        self.logger = log.get_logger("trainer")
        self.device = world.device(config.training.device)
        seed_everything(config.training.seed)  # the same initial weights on every rank

        env_cfg, model_cfg = config.env, config.model
        self.env = VecShogiEnv(
            env_cfg.num_envs,
            seed=config.training.seed + world.rank,
            max_plies=env_cfg.max_plies,
            declaration=env_cfg.declaration,
        )
        self.architecture = Architecture(
            blocks=model_cfg.blocks,
            channels=model_cfg.channels,
            squeeze_excitation=model_cfg.squeeze_excitation,
            value_hidden=model_cfg.value_hidden,
        )
        self.precision = choose_precision(config.ppo.amp, self.device)
        allow_tf32(self.device)
        self.model = ActorCritic(self.architecture, self.precision).to(self.device)
        if world.rank:  # each rank samples its own games (rank 0 goes on from the seed)
            seed_everything(config.training.seed + world.rank)
        steps_per_epoch = config.training.steps_per_epoch
        total_updates = math.ceil(config.training.total_timesteps / steps_per_epoch)
        self.ppo = PPO(
            self.model,
            config.ppo,
            total_updates,
            self.device,
            world.size,
            minibatches=max(steps_per_epoch // config.ppo.minibatch_size, 1),
            policy_target=config.selfplay.policy_target,
        )
        self.timer = SectionTimer()
        versus = VersusGames(round(config.selfplay.past_opponent_share * env_cfg.num_envs))
        self.collector = SelfPlayCollector(
            self.env,
            steps_per_epoch // world.size // env_cfg.num_envs,
            self.device,
            config.ppo.gamma,
            config.ppo.gae_lambda,
            self.timer,
            versus,
            self_play_search(self.model, config.selfplay, env_cfg.num_envs, self.device),
        )
        self.ranks = RankStates(world, self.collector)
        self.store = CheckpointStore.from_config(config.checkpoint, self.layout.checkpoints)
        self.checkpoint_saver: CheckpointSaver = self.store.saver(self._training_state)
        if evaluator is None and config.evaluation.enable_periodic_evaluation and world.is_main:
            evaluator = EvaluationManager(
                config.evaluation, self.run_dir, config.ladder, precision=config.ppo.amp
            )
        self.evaluator = evaluator
        self.manager = CallbackManager(config, self.run_dir, rank=world.rank, world_size=world.size)
        self.manager.setup_default_callbacks()
        self.manager.setup_async_callbacks()
        for callback, every in build_extra_callbacks(config.callbacks.extra):
            if isinstance(callback, AsyncCallback):
                self.manager.add_async_callback(callback, every=every)
            else:
                self.manager.add_callback(callback, every=every)
        # Retention keeps what evaluations wait for or play and, with keep_rated, every player.
        self.store.pin(self.manager.checkpoints_in_use)
        if callable(in_use := getattr(evaluator, "checkpoints_in_use", None)):
            self.store.pin(in_use)
        self.store.pin(RatedCheckpoints(self.run_dir), rated=True)
        self.past_opponents = PastOpponents(
            versus,
            self.store,
            architecture=self.architecture,
            precision=self.precision,
            device=self.device,
            pool_size=config.selfplay.past_opponents,
            interval=self.manager.checkpoint_interval,
            seed=config.training.seed,
            world=world,
            logger=self.logger,
        )
        self.view = TrainerCallbackView(self)
        self.global_timestep = 0
        self.updates = 0
        self._at_epoch_boundary = True
        self._failure: BaseException | None = None
        self._interrupt = GracefulInterrupt()
        self._bridge = BackgroundEventLoop()
        resumed = self._resume(plan) if plan.resume_from is not None else None

        self._release_steps: list[tuple[str, Callable[[], None]]] = []
        try:
            self._acquire(live, resumed=resumed is not None)
        except OSError as exc:
            self._release()
            raise RunDirectoryError(
                f"cannot write the run directory {self.run_dir}: {exc.strerror or exc} "
                f"({exc.filename or self.run_dir})"
            ) from exc
        except BaseException:
            self._release()
            raise
        if resumed is not None:
            self.logger.info("resumed from %s at step %d", resumed, self.global_timestep)
        self.logger.info(
            "run directory %s; device %s; model %s (%d parameters); precision %s (%s)",
            self.run_dir,
            self.device,
            self.architecture,
            sum(p.numel() for p in self.model.parameters()),
            self.precision.name,
            self.precision.reason,
        )

    def _acquire(self, live: bool, *, resumed: bool) -> None:
        """Take what a run holds; each piece is released by `_release`, newest first."""
        config = self.config
        release = self._release_steps
        release.append(("callbacks", self.manager.close))
        release.append(("callback event loop", self._bridge.close))
        release.append(("checkpoint store", self.store.close))
        if not self.world.is_main:  # rank 0 owns the run directory, the metrics and the display
            log.set_level(config.logging.level)
            log.attach_log_file(self.layout.rank_log(self.world.rank))  # this rank's own log
            release.append(("log file", log.detach_log_file))
            self.metrics = log.MetricsRecorder([])
            self.display: Display = NoDisplay()
            return
        self.metrics = open_run_outputs(
            config,
            self.layout,
            resume_step=self.global_timestep if resumed else None,
            hold=lambda what, close: release.append((what, close)),
        )
        closer = getattr(self.evaluator, "close", None)
        if callable(closer):
            release.append(("evaluator", closer))
        if isinstance(self.evaluator, EvaluationManager) and config.evaluation.async_mode:
            self.evaluator.start_workers()  # their start-up overlaps the first epochs
        self.display = LiveDisplay() if live else PlainDisplay()

    def _release(self) -> None:
        """The one teardown path: release everything acquired, each piece whatever the others
        do, newest first."""
        while self._release_steps:
            what, close = self._release_steps.pop()
            try:
                close()
            except Exception:
                self.logger.exception("closing the %s failed", what)

    # ------------------------------------------------------------------- state

    @property
    def stats(self) -> GameStats:
        """The game statistics of every rank together (this rank's own, on other ranks)."""
        return self.ranks.all_stats

    def record_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.metrics.record(metrics, self.global_timestep if step is None else step)

    def _training_state(self, step: int) -> TrainingState:
        # Evaluation metrics describe the checkpoints they rated (kept beside those), not this one.
        latest = {
            k: v
            for k, v in self.metrics.latest.items()
            if math.isfinite(v) and not k.startswith("evaluation/")
        }
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
                **self.ranks.checkpoint_extra(),
                "past_opponents": self.past_opponents.state_dict(),
                "config": config_to_dict(self.config),
            },
            clean=self._at_epoch_boundary,
            failure=None if self._failure is None else describe(self._failure),
        )

    def _resume(self, plan: RunPlan) -> Path:
        """Load the resume point and restore it into the objects built so far (no file written)."""
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
        restore_manifest_rng = self.ranks.restore(checkpoint.extra, self.logger)
        self.past_opponents.load_state_dict(checkpoint.extra.get("past_opponents", {}))
        self.ranks.share()
        self.manager.load_state_dict(checkpoint.callback_state)
        if checkpoint.config_hash != config_hash(self.config):
            self.logger.warning(
                "the configuration differs from the one checkpoint %s was written with",
                checkpoint.path,
            )
        if restore_manifest_rng:
            checkpoint.restore_rng()  # last: nothing below may draw random numbers first
        return checkpoint.path

    # -------------------------------------------------------------------- loop

    def train(self) -> TrainingSummary:
        """Train to `training.total_timesteps`. Whatever happens, the callbacks hear about it
        (the final checkpoint is theirs to write) and everything acquired is released."""
        total = self.config.training.total_timesteps
        started = time.monotonic()
        with self._interrupt.installed():  # until teardown is done
            try:
                self.display.start(self.global_timestep, total)
                try:
                    self._run(total)
                except BaseException as exc:
                    self.world.announce_failure(exc, self.global_timestep)  # before anything else
                    self._failure = exc
                    with self._interrupt.stopping():
                        self.manager.on_exception(self.view, exc)
                    raise
                finally:
                    self.display.stop()
            finally:
                self.world.tearing_down()
                with self._interrupt.stopping():
                    self._release()
        return TrainingSummary(
            self.run_dir,
            self.global_timestep,
            self.store.latest(),
            self.stats.games,
            time.monotonic() - started,
        )

    def _run(self, total: int) -> None:
        self.manager.on_train_start(self.view)
        while self.global_timestep < total:
            self._epoch()
        self._bridge.run(self.manager.on_train_end_async(self.view))
        self.manager.on_train_end(self.view)

    def _epoch(self) -> None:
        epoch_start = time.monotonic()
        self._at_epoch_boundary = False
        self.past_opponents.refresh(self.global_timestep)
        rollout = agreed(
            self.world,
            "self-play",
            self.global_timestep,
            lambda: self.collector.collect(self.model),
        )
        with self.timer.section("ppo"), self.world.lost_rank_reported("the PPO update"):
            update = self.ppo.update(rollout)
        self.updates += 1
        self.global_timestep += self.config.training.steps_per_epoch
        self._at_epoch_boundary = True
        self.ranks.share()
        elapsed = time.monotonic() - epoch_start
        steps_per_second = self.config.training.steps_per_epoch / max(elapsed, 1e-9)
        self.record_metrics(
            epoch_metrics(update, steps_per_second, self.stats, versus=self.past_opponents.enabled)
        )
        failure: CriticalCallbackError | None = None
        with self.timer.section("callbacks"):
            try:
                self._bridge.run(self.manager.execute_step_callbacks_async(self.view))
                self.manager.execute_step_callbacks(self.view)
            except CriticalCallbackError as exc:
                failure = exc
        self.display.update(
            progress_snapshot(
                self.global_timestep,
                self.config.training.total_timesteps,
                steps_per_second,
                update,
                self.stats,
                [*self.manager.get_callbacks(), *self.manager.get_async_callbacks()],
            )
        )
        agree_on_epoch_end(
            self.world, self.manager, self.global_timestep, failure, self._interrupt.requested
        )
