"""Background evaluation during real training: another process, results on a later step."""

from __future__ import annotations

import os
from pathlib import Path

from keisei.evaluation.elo import EloRegistry
from keisei.log import read_metrics
from keisei.training.callbacks import AsyncEvaluationCallback
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

OVERRIDES = [
    *TINY,
    "training.total_timesteps=384",
    "training.checkpoint_interval_timesteps=64",
    "ppo.update_epochs=1",
    "evaluation.enable_periodic_evaluation=true",
    "evaluation.async_mode=true",
    "evaluation.async_policy=queue",
    "evaluation.async_queue_size=6",
    "evaluation.evaluation_interval_timesteps=128",
    "evaluation.num_games=4",
    "evaluation.max_plies=40",
    "evaluation.pool_size=2",
    "evaluation.pool_opponents=1",
]


def test_background_evaluation_during_training(tmp_path: Path):
    plan = plan_run(None, [*OVERRIDES, f"logging.model_dir={tmp_path}"], "bg", None)
    trainer = Trainer(plan)
    callback = trainer.manager.get_async_callbacks()[0]
    assert isinstance(callback, AsyncEvaluationCallback)
    trainer.train()

    records = read_metrics(plan.run_dir / "metrics.jsonl")
    evaluations = [r for r in records if "evaluation/step" in r]
    assert sorted(r["evaluation/step"] for r in evaluations) == [128.0, 256.0, 384.0]
    # Results come back on a later step than the weights they evaluated (or at the end).
    assert all(r["step"] >= r["evaluation/step"] for r in evaluations)
    assert any(r["step"] > r["evaluation/step"] for r in evaluations)
    assert callback.last_result is not None
    assert callback.last_result.worker_pid not in (None, os.getpid())

    with EloRegistry(plan.run_dir / "elo.sqlite") as registry:
        players = {p.name: p for p in registry.players()}
        games = registry.games()
    assert {"agent@000000128", "agent@000000256", "agent@000000384", "random"} <= set(players)
    # From the second evaluation on, a past checkpoint of this run joins as an opponent.
    assert any(p.kind == "checkpoint" for p in players.values())
    assert len(games) == 12
    assert all(Path(g.record_path).is_file() for g in games if g.record_path)
