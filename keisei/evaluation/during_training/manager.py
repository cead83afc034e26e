"""The `EvaluationManager`: plays evaluation games for the trainer, now or in the background.

Each evaluation plays `evaluation.num_games` games, shared out among the fixed opponents (e.g.
random), the ladder references around the agent's rating (`evaluation.reference_opponents`; see
`ladder/reference_opponents.py`) and members sampled from the opponent pool (this run's past
checkpoints), records every game in the run's Elo registry, and returns an `EvaluationResult`
with an Elo snapshot. Which references is decided in the worker (it reads the registries), so
training does not pay for it.

What is evaluated is always a committed checkpoint of the run, loaded from disk, so every rated
player is a checkpoint one can load, play and resume from. `evaluate_checkpoint` plays in this
process, `evaluate_checkpoint_async` in a background worker process. When the games are over,
the results are written beside the checkpoint (`evaluation.json`, for best-by-metric retention).
Until an evaluation is over, the checkpoints it plays (the one it rates and its pool opponents)
are in `checkpoints_in_use()`, which the trainer pins in its checkpoint store: retention deletes
none of them before the worker has loaded them and named them in the Elo registry.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from keisei.checkpoint import record_evaluation
from keisei.checkpoint.run_layout import RunLayout
from keisei.config import EvaluationConfig, LadderConfig, LadderReference
from keisei.evaluation.during_training.pool import OpponentPool, PoolMember
from keisei.evaluation.during_training.worker_pool import WorkerPool
from keisei.evaluation.ladder.reference_opponents import (
    Choice,
    run_ladder_settings,
    select_references,
    usable_references,
)
from keisei.evaluation.ladder.registry import LadderRegistryError
from keisei.evaluation.ladder.setup import reference_player
from keisei.evaluation.match import MatchSettings, play_match
from keisei.evaluation.players.base import Player
from keisei.evaluation.players.network import load_checkpoint_player
from keisei.evaluation.players.opponents import make_opponent
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.evaluation.result import EloSnapshot, EvaluationResult, GameResult
from keisei.log import get_logger

_log = get_logger("evaluation")


@dataclass(frozen=True)
class EvaluationJob:
    """Everything a worker needs to run one evaluation (picklable)."""

    run_dir: str
    checkpoint: str
    step: int
    fixed_opponents: tuple[str, ...]
    pool_members: tuple[PoolMember, ...]
    settings: EvaluationConfig
    seed: int
    usi_options: Mapping[str, str] = field(default_factory=dict)
    references: tuple[LadderReference, ...] = ()
    """The ladder references whose programs exist, weakest first; the worker picks
    `settings.reference_opponents` of them."""
    ladder: LadderConfig | None = None
    """The ladder settings of the sequential test that decides which references are passed."""
    precision: str = "auto"
    """What the networks compute in (a `ppo.amp` setting: the training run's)."""


def _share(total: int, parts: int) -> list[int]:
    """`total` games over `parts` opponents, as evenly as possible (the first get the rest)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _fixed_opponents(job: EvaluationJob) -> list[Player]:
    cfg = job.settings
    return [
        make_opponent(
            spec,
            seed=job.seed + i,
            options=job.usi_options,
            usi_byoyomi_ms=cfg.usi_byoyomi_ms,
            usi_nodes=cfg.usi_nodes,
            usi_timeout_s=cfg.usi_timeout_s,
            precision=job.precision,
        )
        for i, spec in enumerate(job.fixed_opponents)
    ]


def _pool_opponents(job: EvaluationJob) -> list[Player]:
    from keisei.checkpoint.errors import CheckpointError

    players: list[Player] = []
    for member in job.pool_members:
        try:
            players.append(
                load_checkpoint_player(member.path, seed=job.seed, precision=job.precision)
            )
        except CheckpointError as exc:  # e.g. removed by the retention policy meanwhile
            _log.warning("pool opponent %s is unavailable and skipped: %s", member.name, exc)
    return players


def _reference_opponents(
    job: EvaluationJob, registry: EloRegistry, taken: set[str]
) -> list[tuple[Player, Choice]]:
    """The ladder references this evaluation plays (none already among `taken` player names),
    chosen from the registries as `ladder/reference_opponents.py` describes."""
    ladder = job.ladder
    if ladder is None or not job.references or job.settings.reference_opponents <= 0:
        return []
    shared = RunLayout(job.run_dir).shared_ladder_database
    try:
        chosen = select_references(registry, job.references, ladder, shared,
                                   job.settings.reference_opponents)  # fmt: skip
    except LadderRegistryError as exc:  # e.g. locked for longer than its timeout
        _log.warning("no reference opponents in this evaluation: %s", exc)
        return []
    listed = [reference.name for reference in ladder.references]
    players: list[tuple[Player, Choice]] = []
    for choice in chosen:
        if choice.player in taken:
            continue
        name = choice.reference.name
        place = listed.index(name) if name in listed else len(listed)
        player = reference_player(choice.reference, seed=job.seed + 1 + place,
                                  timeout_s=ladder.usi_timeout_s)  # fmt: skip
        players.append((player, choice))
    return players


def run_evaluation(job: EvaluationJob) -> EvaluationResult:
    """Play the job's games with its checkpoint and record them (registry, game records and the
    checkpoint's `evaluation.json`)."""
    started = time.monotonic()
    cfg = job.settings
    run = RunLayout(job.run_dir)
    agent = load_checkpoint_player(
        job.checkpoint,
        greedy=cfg.greedy,
        seed=job.seed,
        kind="agent",
        playouts=cfg.playouts,
        precision=job.precision,
    )
    registry = EloRegistry(
        run.elo_database, k=cfg.elo_k, anchor="random", anchor_rating=cfg.elo_anchor_rating
    )
    opponents = _fixed_opponents(job)
    games: list[GameResult] = []
    try:
        references = _reference_opponents(job, registry, {p.name for p in opponents})
        opponents += [player for player, _ in references]
        opponents += _pool_opponents(job)
        initial = {player.name: choice.stored for player, choice in references}
        previous = registry.latest_agent()
        registry.ensure_player(
            agent.name,
            "agent",
            path=agent.path,
            step=job.step,
            initial_rating=None if previous is None else previous.rating,
        )
        for opponent in opponents:  # a reference starts at its stored rating, if any
            registry.ensure_player(opponent.name, opponent.kind, path=opponent.path,
                                   step=opponent.step,
                                   initial_rating=initial.get(opponent.name))  # fmt: skip
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
    result = EvaluationResult(
        step=job.step,
        games=games,
        elo=elo,
        worker_pid=os.getpid(),
        duration_s=time.monotonic() - started,
    )
    try:
        record_evaluation(job.checkpoint, result.metrics())
    except OSError as exc:  # e.g. removed by the retention policy meanwhile
        _log.warning("could not write the evaluation results beside %s: %s", job.checkpoint, exc)
    return result


def _run_in_worker(job: EvaluationJob) -> EvaluationResult:
    """Worker-process entry point."""
    with torch.inference_mode():
        return run_evaluation(job)


class EvaluationManager:
    """Evaluates a training run's agent (satisfies the `Evaluator` protocol)."""

    def __init__(
        self,
        config: EvaluationConfig,
        run_dir: str | Path,
        ladder: LadderConfig | None = None,
        precision: str = "auto",
    ) -> None:
        """`ladder` gives the reference opponents (default: the run's `config.yaml`, read at the
        first evaluation, else the defaults); `precision` is what the networks compute in (the
        training run's `ppo.amp`)."""
        self.config = config
        self.precision = precision
        self.run_dir = Path(run_dir)
        self._ladder = ladder
        self._references: tuple[LadderReference, ...] | None = None
        self.pool = OpponentPool(
            config.pool_size, config.pool_sampling, np.random.default_rng(config.seed)
        )
        self._workers: WorkerPool | None = None
        self._evaluations = 0
        self._in_use: dict[int, frozenset[int]] = {}
        """The checkpoint steps each unfinished evaluation plays, by evaluation number (read by
        the thread that writes checkpoints, hence the lock)."""
        self._lock = threading.Lock()

    def _reference_settings(self) -> tuple[LadderConfig | None, tuple[LadderReference, ...]]:
        """The ladder settings and the references with their programs installed (the missing
        programs named in one warning, the first time)."""
        if self.config.reference_opponents <= 0:
            return None, ()
        if self._ladder is None:
            self._ladder = run_ladder_settings(self.run_dir)
        if self._references is None:
            usable, missing = usable_references(self._ladder.references)
            if missing:
                skipped = [r.name for r in self._ladder.references if r not in usable]
                _log.warning(
                    "reference opponents need %s, which is not installed: %s skipped "
                    "(evaluation goes on against the others)",
                    ", ".join(missing), ", ".join(skipped),
                )  # fmt: skip
            self._references = tuple(usable)
        return self._ladder, self._references

    def _job(self, checkpoint: Path, step: int) -> EvaluationJob:
        cfg = self.config
        ladder, references = self._reference_settings()
        run = RunLayout(self.run_dir)
        self.pool.refresh(run.checkpoints, before_step=step)
        ratings: dict[str, float] = {}
        current = None
        if run.elo_database.exists():
            with EloRegistry(run.elo_database, anchor_rating=cfg.elo_anchor_rating) as registry:
                ratings = {p.name: p.rating for p in registry.players()}
                latest = registry.latest_agent()
                current = latest.rating if latest else None
        members = self.pool.sample(cfg.pool_opponents, ratings=ratings, current_rating=current)
        return EvaluationJob(
            run_dir=str(self.run_dir),
            checkpoint=str(checkpoint),
            step=step,
            fixed_opponents=tuple(cfg.opponents),
            pool_members=tuple(members),
            settings=cfg,
            seed=cfg.seed + step,
            usi_options=dict(cfg.usi_options),
            references=references,
            ladder=ladder,
            precision=self.precision,
        )

    def evaluate_checkpoint(self, checkpoint: Path, step: int) -> EvaluationResult:
        """Play now, in this process."""
        job = self._job(checkpoint, step)
        number = self._hold(job)
        try:
            with torch.inference_mode():
                return run_evaluation(job)
        finally:
            self._release(number)

    def evaluate_checkpoint_async(self, checkpoint: Path, step: int) -> Future[EvaluationResult]:
        """Play in a worker process; return at once."""
        job = self._job(checkpoint, step)
        number = self._hold(job)
        try:
            future = self.start_workers().submit(_run_in_worker, job)
        except BaseException:
            self._release(number)
            raise
        future.add_done_callback(lambda _: self._release(number))
        return future

    def checkpoints_in_use(self) -> set[int]:
        """The steps of the run's checkpoints that unfinished evaluations play (a pin source for
        the checkpoint store)."""
        with self._lock:
            return {step for steps in self._in_use.values() for step in steps}

    def _hold(self, job: EvaluationJob) -> int:
        with self._lock:
            self._evaluations += 1
            steps = {job.step, *(member.step for member in job.pool_members)}
            self._in_use[self._evaluations] = frozenset(steps)
            return self._evaluations

    def _release(self, number: int) -> None:
        with self._lock:
            self._in_use.pop(number, None)

    def start_workers(self) -> WorkerPool:
        """Start the background worker processes now (their start-up then overlaps training)."""
        if self._workers is None:
            self._workers = WorkerPool(self.config.workers, nice=self.config.worker_nice)
        return self._workers

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown()
            self._workers = None
