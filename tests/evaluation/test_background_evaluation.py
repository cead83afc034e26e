"""Background evaluation during real training: committed checkpoints are rated in another process,
results come back on a later step, and every rated player is a checkpoint one can load and play."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keisei.checkpoint import read_evaluation, read_manifest
from keisei.cli import main
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.log import read_metrics
from keisei.training.callbacks import AsyncEvaluationCallback
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer
from tests.support.tiny_config import TINY

OVERRIDES = [
    *TINY,
    "training.total_timesteps=384",
    "training.checkpoint_interval_timesteps=256",
    "ppo.update_epochs=1",
    "checkpoint.keep_last=10",
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AsyncEvaluationCallback]:
    root = tmp_path_factory.mktemp("bg")
    plan = plan_run(None, [*OVERRIDES, f"logging.model_dir={root}"], "bg", None)
    trainer = Trainer(plan)
    callback = trainer.manager.get_async_callbacks()[0]
    assert isinstance(callback, AsyncEvaluationCallback)
    trainer.train()
    return plan.run_dir, callback


def test_evaluations_rate_committed_checkpoints_in_another_process(
    trained: tuple[Path, AsyncEvaluationCallback],
):
    run_dir, callback = trained
    records = read_metrics(run_dir / "metrics.jsonl")
    evaluations = [r for r in records if "evaluation/step" in r]
    # One result per epoch while training goes on; results that finish together at the end are
    # one report, the newest (each summary is in the log, each result beside its checkpoint).
    assert evaluations and evaluations[-1]["evaluation/step"] == 384.0
    assert all(r["step"] >= r["evaluation/step"] for r in evaluations)
    assert callback.last_result is not None
    assert callback.last_result.worker_pid not in (None, os.getpid())
    log_text = (run_dir / "train.log").read_text()
    for step in (128, 256, 384):
        assert f"AsyncEvaluationCallback: step {step}: 4 games" in log_text

    checkpoints = run_dir / "checkpoints"
    # 128 and 384 are not on the checkpoint schedule (every 256): the evaluation asked for them.
    names = sorted(p.name for p in checkpoints.glob("step_*"))
    assert names == ["step_000000128", "step_000000256", "step_000000384"]
    for step in (128, 256, 384):
        saved = read_evaluation(checkpoints / f"step_{step:09d}")
        assert saved is not None, step  # the results sit beside the checkpoint they rate
        assert saved["evaluation/step"] == step
        # ...and a checkpoint's own metrics never carry another checkpoint's evaluation.
        manifest = read_manifest(checkpoints / f"step_{step:09d}")
        assert not any(key.startswith("evaluation/") for key in manifest["metrics"])
    for record in evaluations:
        step = int(record["evaluation/step"])
        saved = read_evaluation(checkpoints / f"step_{step:09d}")
        assert saved is not None and saved["evaluation/win_rate"] == record["evaluation/win_rate"]


def test_every_rated_player_is_a_checkpoint_that_loads_and_plays(
    trained: tuple[Path, AsyncEvaluationCallback], capsys: pytest.CaptureFixture[str]
):
    run_dir, _ = trained
    with EloRegistry(run_dir / "elo.sqlite") as registry:
        players = registry.players()
        games = registry.games()
    agents = [p for p in players if p.kind == "agent"]
    assert sorted(p.step for p in agents if p.step is not None) == [128, 256, 384]
    assert len(games) == 12
    assert all(Path(g.record_path).is_file() for g in games if g.record_path)
    # From the second evaluation on, an earlier checkpoint of this run is an opponent: the same
    # player (same name) as when it was rated itself.
    assert any(g.black.startswith("bg/") and g.white.startswith("bg/") for g in games)
    for player in players:
        if player.kind in ("random", "greedy", "usi"):
            continue
        assert player.path is not None, player
        assert Path(player.path).is_dir(), player
        code = main(["evaluate", player.path, "--opponent", "random", "--games", "2",
                     "--max-plies", "40", "--run-dir", str(run_dir.parent / "cli")])  # fmt: skip
        assert code == 0, player
    assert "2 " in capsys.readouterr().out
