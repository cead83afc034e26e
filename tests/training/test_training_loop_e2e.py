"""A small real training loop with checkpoint and background evaluation callbacks."""

from __future__ import annotations

import os
from collections.abc import Callable

from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import AsyncEvaluationCallback
from tests.support.mini_trainer import FileSaver, MiniTrainer, ProcessEvaluator, play_games


def test_training_loop_with_checkpoints_and_background_evaluation(
    make_manager: Callable[..., CallbackManager], make_trainer: Callable[..., MiniTrainer]
):
    manager = make_manager(
        "evaluation.enable_periodic_evaluation=true",
        "evaluation.async_mode=true",
        "evaluation.evaluation_interval_timesteps=300",
        "training.checkpoint_interval_timesteps=300",
        # This loop outruns a worker process's start-up; queue rather than skip triggers.
        "evaluation.async_policy=queue",
        "evaluation.async_queue_size=3",
    )
    manager.setup_default_callbacks()
    manager.setup_async_callbacks()
    evaluator = ProcessEvaluator(games=8)
    trainer = make_trainer(manager, evaluator)
    callback = manager.get_async_callbacks()[0]
    assert isinstance(callback, AsyncEvaluationCallback)

    trainer.run(epochs=10)

    checkpoints = sorted(p.name for p in (trainer.run_dir / "checkpoints").iterdir())
    assert checkpoints == [f"step_{s:09d}" for s in (300, 600, 900, 1000)]
    records = trainer.metric_records()
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert len(losses) == 10 and losses[-1] < losses[0]  # it really trained

    evaluations = [r for r in records if "evaluation/step" in r]
    assert [r["evaluation/step"] for r in evaluations] == [300.0, 600.0, 900.0]
    # Each result arrived on a later step than the one whose weights it evaluated.
    assert all(r["step"] > r["evaluation/step"] for r in evaluations)
    assert callback.last_result is not None
    assert callback.last_result.worker_pid != os.getpid()
    # The worker evaluated a snapshot of the weights at its step: the same weights the checkpoint
    # of that step holds (a later, different model would give a different result).
    for record in evaluations:
        step = int(record["evaluation/step"])
        weights, manifest = FileSaver.load(trainer.run_dir / "checkpoints" / f"step_{step:09d}")
        expected = play_games(weights, step, 8, 0.0)
        assert record["evaluation/win_rate"] == expected.win_rate
        assert record["evaluation/avg_game_length"] == expected.avg_game_length
        saved = manifest["callbacks"]["async_callbacks"]["AsyncEvaluationCallback"]["state"]
        assert saved["trigger"]["last_multiple"] == step // 300
