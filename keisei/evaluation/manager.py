"""The `EvaluationManager`: plays evaluation games for the trainer, now or in the background.

Each evaluation plays `evaluation.num_games` games, shared out among the fixed opponents (e.g.
random) and members sampled from the opponent pool (this run's past checkpoints), records every
game in the run's Elo registry, and returns an `EvaluationResult` with an Elo snapshot.

`evaluate_current_agent` plays in this process with the model in eval mode under
`torch.inference_mode()` (train mode restored afterwards). `evaluate_current_agent_async` copies
the weights at call time and plays in a worker process; the result is stamped with that step.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keisei.checkpoint.run_layout import RunLayout
from keisei.config import EvaluationConfig
from keisei.evaluation.elo import EloRegistry
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players import NeuralPlayer, Player, load_checkpoint_player, make_opponent
from keisei.evaluation.pool import OpponentPool, PoolMember
from keisei.evaluation.result import EloSnapshot, EvaluationResult, GameResult
from keisei.evaluation.worker_pool import WorkerPool
from keisei.log import get_logger
from keisei.model import ActorCritic, Architecture

_log = get_logger("evaluation")


@dataclass(frozen=True)
class EvaluationJob:
    """Everything a worker needs to run one evaluation (picklable)."""

    run_dir: str
    step: int
    fixed_opponents: tuple[str, ...]
    pool_members: tuple[PoolMember, ...]
    settings: EvaluationConfig
    seed: int
    usi_options: Mapping[str, str] = field(default_factory=dict)


def agent_name(step: int) -> str:
    return f"agent@{step:09d}"


def _share(total: int, parts: int) -> list[int]:
    """`total` games over `parts` opponents, as evenly as possible (the first get the rest)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _opponents(job: EvaluationJob) -> list[Player]:
    cfg = job.settings
    players: list[Player] = [
        make_opponent(
            spec,
            seed=job.seed + i,
            options=job.usi_options,
            usi_byoyomi_ms=cfg.usi_byoyomi_ms,
            usi_nodes=cfg.usi_nodes,
            usi_timeout_s=cfg.usi_timeout_s,
        )
        for i, spec in enumerate(job.fixed_opponents)
    ]
    from keisei.checkpoint.errors import CheckpointError

    for member in job.pool_members:
        try:
            players.append(load_checkpoint_player(member.path, seed=job.seed))
        except CheckpointError as exc:  # e.g. removed by the retention policy meanwhile
            _log.warning("pool opponent %s is unavailable and skipped: %s", member.name, exc)
    return players


def run_evaluation(job: EvaluationJob, model: torch.nn.Module) -> EvaluationResult:
    """Play the job's games with `model` (already in eval mode) and record them."""
    started = time.monotonic()
    cfg = job.settings
    run = RunLayout(job.run_dir)
    agent = NeuralPlayer(
        model,
        name=agent_name(job.step),
        kind="agent",
        greedy=cfg.greedy,
        seed=job.seed,
        device=next(model.parameters()).device,
        step=job.step,
    )
    registry = EloRegistry(
        run.elo_database, k=cfg.elo_k, anchor="random", anchor_rating=cfg.elo_anchor_rating
    )
    opponents = _opponents(job)
    games: list[GameResult] = []
    try:
        previous = registry.latest_agent()
        registry.ensure_player(
            agent.name,
            "agent",
            step=job.step,
            initial_rating=None if previous is None else previous.rating,
        )
        for opponent in opponents:
            registry.ensure_player(opponent.name, opponent.kind, path=opponent.path,
                                   step=opponent.step)  # fmt: skip
        record_dir = run.games_of_step(job.step) if cfg.save_records else None
        shares = _share(cfg.num_games, len(opponents))
        for index, (opponent, count) in enumerate(zip(opponents, shares, strict=True)):
            if count == 0:
                continue
            settings = MatchSettings(
                games=count,
                max_plies=cfg.max_plies,
                random_opening_plies=cfg.random_opening_plies,
                seed=job.seed * 1000 + index,
                record_dir=record_dir,
            )
            games += play_match(
                agent,
                opponent,
                settings,
                on_game=lambda result: registry.record_result(agent.name, result, step=job.step),
            )
        last = games[-1] if games else None
        elo = EloSnapshot(
            rating=registry.rating(agent.name),
            opponent=last.opponent if last else "",
            last_outcome=last.outcome if last else None,
            top=tuple(registry.top(3)),
        )
    finally:
        for opponent in opponents:
            opponent.close()
        registry.close()
    return EvaluationResult(
        step=job.step,
        games=games,
        elo=elo,
        worker_pid=os.getpid(),
        duration_s=time.monotonic() - started,
    )


def _run_in_worker(
    job: EvaluationJob, weights: dict[str, torch.Tensor], architecture: dict[str, Any]
) -> EvaluationResult:
    """Worker-process entry point: rebuild the model from the snapshot and evaluate it."""
    model = ActorCritic(Architecture.from_dict(architecture))
    model.load_state_dict(weights)
    model.eval()
    with torch.inference_mode():
        return run_evaluation(job, model)


class EvaluationManager:
    """Evaluates a training run's agent (satisfies the `Evaluator` protocol)."""

    def __init__(self, config: EvaluationConfig, run_dir: str | Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.pool = OpponentPool(
            config.pool_size, config.pool_sampling, np.random.default_rng(config.seed)
        )
        self._workers: WorkerPool | None = None
        self._evaluations = 0

    def _job(self, step: int) -> EvaluationJob:
        cfg = self.config
        self.pool.refresh(RunLayout(self.run_dir).checkpoints, before_step=step)
        ratings: dict[str, float] = {}
        current = None
        database = RunLayout(self.run_dir).elo_database
        if database.exists():
            with EloRegistry(database, anchor_rating=cfg.elo_anchor_rating) as registry:
                ratings = {p.name: p.rating for p in registry.players()}
                latest = registry.latest_agent()
                current = latest.rating if latest else None
        members = self.pool.sample(cfg.pool_opponents, ratings=ratings, current_rating=current)
        self._evaluations += 1
        return EvaluationJob(
            run_dir=str(self.run_dir),
            step=step,
            fixed_opponents=tuple(cfg.opponents),
            pool_members=tuple(members),
            settings=cfg,
            seed=cfg.seed + 7919 * self._evaluations,
            usi_options=dict(cfg.usi_options),
        )

    def evaluate_current_agent(self, agent: torch.nn.Module, step: int) -> EvaluationResult:
        """Play now, in this process; the model is in eval mode meanwhile."""
        job = self._job(step)
        was_training = agent.training
        agent.eval()
        try:
            with torch.inference_mode():
                return run_evaluation(job, agent)
        finally:
            agent.train(was_training)

    def evaluate_current_agent_async(
        self, agent: torch.nn.Module, step: int
    ) -> Future[EvaluationResult]:
        """Copy the weights now; play in a worker process; return at once."""
        weights = {k: v.detach().to("cpu", copy=True) for k, v in agent.state_dict().items()}
        architecture = getattr(agent, "architecture", None)
        if architecture is None:
            raise TypeError("background evaluation needs a Keisei ActorCritic model")
        return self.start_workers().submit(
            _run_in_worker, self._job(step), weights, architecture.to_dict()
        )

    def start_workers(self) -> WorkerPool:
        """Start the background worker processes now (their start-up then overlaps training)."""
        if self._workers is None:
            self._workers = WorkerPool(self.config.workers)
        return self._workers

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown()
            self._workers = None
